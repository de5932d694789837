// A page a frontend developer could write: the generated client, EventSource and a plain <img>,
// served from http://localhost:5173 against the gateway named by ?gw=. It reports to
// window.__result, which the test reads through the DevTools protocol.
import { createStoryCoreClient, streamJob } from "/client/index.js";

const gateway = new URLSearchParams(location.search).get("gw");
let token = null;
const client = createStoryCoreClient({ baseUrl: gateway, getToken: () => token });
const result = { steps: [] };
const step = (name, value) => {
  result.steps.push(name);
  if (value !== undefined) result[name] = value;
};

function collect(url, until) {
  // Raw EventSource: frames until `until(frames)` is true, then close.
  return new Promise((resolve, reject) => {
    const frames = [];
    const source = new EventSource(url);
    const onFrame = (event) => {
      frames.push({ event: event.type, id: event.lastEventId, data: JSON.parse(event.data) });
      if (until(frames)) {
        source.close();
        resolve(frames);
      }
    };
    source.addEventListener("progress", onFrame);
    source.addEventListener("complete", onFrame);
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) reject(new Error("stream closed"));
    };
  });
}

async function run() {
  const email = `browser-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const password = "a long enough password";
  const registered = await client.api.POST("/api/auth/register", {
    body: { email, password, name: "Browser" },
  });
  step("registered", registered.response.status);
  const login = await client.api.POST("/api/auth/login", { body: { email, password } });
  token = login.data.access_token;
  step("logged_in", login.response.status);
  const project = await client.api.POST("/api/projects", {
    body: { name: "From the browser", resolution_width: 320, resolution_height: 180 },
  });
  step("project", project.response.status);
  const job = await client.api.POST("/api/sequences/generate", {
    body: {
      project_id: project.data.id,
      prompt: "A keeper climbs the stairs. The lamp flares. The ship turns away.",
      shot_count: 3,
      settings: { image_backend: "comfyui" },
    },
  });
  step("generated", job.response.status);
  const jobPath = `/api/sequences/${job.data.job_id}`;

  // A forced reconnect: read two frames, drop the connection, reconnect where we were.
  const ticket = await client.api.POST(`/api/sequences/{job_id}/stream-ticket`, {
    params: { path: { job_id: job.data.job_id } },
  });
  const streamUrl = `${gateway}${jobPath}/stream?ticket=${encodeURIComponent(ticket.data.ticket)}`;
  const first = await collect(streamUrl, (frames) => frames.length >= 2);
  const last = first[first.length - 1].id;
  const rest = await collect(`${streamUrl}&last_event_id=${last}`, (frames) =>
    frames.some((f) => f.event === "complete"),
  );
  step("reconnect_ids", [...first, ...rest].map((f) => Number(f.id)));

  // The client's own helper follows the same job to its end.
  const helperEvents = await new Promise((resolve) => {
    const events = [];
    streamJob(client, jobPath, (event) => {
      events.push(event);
      if (event.event === "complete" || event.event === "error") resolve(events);
    });
  });
  const complete = helperEvents[helperEvents.length - 1];
  step("helper_final", complete.data.status);

  const shots = complete.data.result.shots;
  const image = document.getElementById("keyframe");
  const loaded = new Promise((resolve, reject) => {
    image.onload = () => resolve(image.naturalWidth);
    image.onerror = () => reject(new Error("keyframe did not load"));
  });
  image.src = `${gateway}${shots[0].keyframe_url}`;
  step("keyframe_width", await loaded);
}

run()
  .then(() => { window.__result = { ok: true, ...result }; })
  .catch((error) => { window.__result = { ok: false, error: String(error), ...result }; });
