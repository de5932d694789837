// Runs the compiled helpers (tsc --outDir) against a fake gateway: a ticket per connection,
// a new ticket after a connection error, the last event id carried over, stop on `complete`.
import assert from "node:assert/strict";

const [, , built] = process.argv;
const { streamJob, mediaUrl, keyframeUrl, createStoryCoreClient } = await import(`${built}/index.js`);

const tickets = [];
const fetch = async (url, init) => {
  assert.equal(init.method, "POST");
  assert.equal(init.headers.Authorization, "Bearer t0ken");
  assert.match(url, /^http:\/\/gw\.test\/api\/sequences\/j1\/stream-ticket$/);
  const ticket = `ticket-${tickets.length + 1}`;
  tickets.push(ticket);
  return new Response(JSON.stringify({ ticket, expires_in: 60 }), { status: 200 });
};

const sources = [];
class FakeEventSource {
  constructor(url) {
    this.url = new URL(url);
    this.listeners = {};
    this.closed = false;
    sources.push(this);
  }
  addEventListener(name, listener) {
    (this.listeners[name] ??= []).push(listener);
  }
  emit(name, data, id) {
    const event = new MessageEvent(name, { data: JSON.stringify(data), lastEventId: id });
    for (const listener of this.listeners[name] ?? []) listener(event);
  }
  fail() {
    for (const listener of this.listeners.error ?? []) listener(new Event("error"));
  }
  close() {
    this.closed = true;
  }
}

const client = createStoryCoreClient({ baseUrl: "http://gw.test/", getToken: () => "t0ken", fetch });
const events = [];
const tick = () => new Promise((resolve) => setTimeout(resolve, 5));
streamJob(client, "/api/sequences/j1", (event) => events.push(event), {
  EventSource: FakeEventSource,
  retryDelayMs: 1,
});
await tick();
assert.equal(sources.length, 1);
assert.equal(sources[0].url.pathname, "/api/sequences/j1/stream");
assert.equal(sources[0].url.searchParams.get("ticket"), "ticket-1");
sources[0].emit("progress", { status: "processing", progress: 20, current_step: "rendering" }, "3");
sources[0].fail(); // the connection drops: the ticket is spent, so a new one
await tick();
await tick();
assert.equal(sources[0].closed, true);
assert.equal(sources.length, 2);
assert.equal(sources[1].url.searchParams.get("ticket"), "ticket-2");
assert.equal(sources[1].url.searchParams.get("last_event_id"), "3");
sources[1].emit("progress", { status: "processing", progress: 20, current_step: "rendering" }, "3");
sources[1].emit("complete", { status: "completed", progress: 100, result: {}, error: null }, "9");
assert.equal(sources[1].closed, true);
assert.deepEqual(
  events.map((e) => [e.event, e.id, e.data.progress]),
  [
    ["progress", "3", 20],
    ["complete", "9", 100],
  ],
);

assert.equal(mediaUrl(client, "/api/media/k?sig=a"), "http://gw.test/api/media/k?sig=a");
assert.equal(mediaUrl(client, null), null);
const result = { shots: [{ order_index: 0, keyframe_url: "/api/sequences/j1/keyframes/0?sig=x" }] };
assert.equal(keyframeUrl(client, result, 0), "http://gw.test/api/sequences/j1/keyframes/0?sig=x");
assert.equal(keyframeUrl(client, result, 5), null);
console.log("stream and media helpers: ok");
