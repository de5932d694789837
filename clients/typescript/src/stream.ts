/**
 * Job progress over server-sent events, with stream tickets.
 *
 * `EventSource` cannot send an `Authorization` header, so a connection names a stream ticket
 * (`POST …/stream-ticket`, valid for that one job and user until it expires) as `?ticket=`.
 * The browser's own reconnect reuses the URL and sends `Last-Event-ID`, which works while the
 * ticket lives. When the source gives up, this helper fetches a new ticket and reconnects with
 * `?last_event_id=` (a new EventSource cannot set the header), so the server resumes after the
 * last frame seen; frames already seen are skipped anyway. Frames are state snapshots
 * (`progress`), then one `complete`; the stream ends there and the helper stops.
 */
import type { components } from "./schema.js";
import type { StoryCoreClient } from "./index.js";

type Job = components["schemas"]["JobPublic"];
type StreamTicket = components["schemas"]["StreamTicketPublic"];

/** A job's base path: `/api/sequences/<id>` or `/api/rigging/jobs/<id>` (+ `/stream`). */
export type JobPath = `/api/sequences/${string}` | `/api/rigging/jobs/${string}`;

export type JobEvent =
  | { event: "progress"; id: string; data: Pick<Job, "status" | "progress" | "current_step"> }
  | {
      event: "complete";
      id: string;
      data: Pick<Job, "status" | "progress" | "result" | "error">;
    }
  | { event: "error"; id: string; data: { error: string } };

export interface StreamJobOptions {
  /** Reconnect attempts in a row before giving up (default 5); a frame resets the count. */
  maxRetries?: number;
  /** Delay before reconnecting, in ms (default 1000, doubled per failed attempt). */
  retryDelayMs?: number;
  /** Called once when the stream gives up (not after `complete`). */
  onGiveUp?: (reason: unknown) => void;
  /** For tests and non-browser runtimes. */
  EventSource?: typeof globalThis.EventSource;
}

export interface StreamHandle {
  close(): void;
}

async function fetchTicket(client: StoryCoreClient, jobPath: JobPath): Promise<StreamTicket> {
  const token = await client.getToken();
  const answer = await client.fetch(`${client.baseUrl}${jobPath}/stream-ticket`, {
    method: "POST",
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
  if (!answer.ok) throw new Error(`stream ticket refused: ${answer.status}`);
  return (await answer.json()) as StreamTicket;
}

/** Follow a job's progress: `onEvent` gets each `progress`, then `complete` (or `error`). */
export function streamJob(
  client: StoryCoreClient,
  jobPath: JobPath,
  onEvent: (event: JobEvent) => void,
  options: StreamJobOptions = {},
): StreamHandle {
  const Source = options.EventSource ?? globalThis.EventSource;
  const maxRetries = options.maxRetries ?? 5;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  let source: EventSource | null = null;
  let lastEventId: string | null = null;
  let failures = 0;
  let closed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const close = (): void => {
    closed = true;
    if (timer !== undefined) clearTimeout(timer);
    source?.close();
    source = null;
  };

  // Frame ids are the job's event numbers: frames replayed after a reconnect are skipped.
  const seen = (id: string): boolean =>
    lastEventId !== null && id !== "" && Number(id) <= Number(lastEventId);

  const handle = (name: JobEvent["event"]) => (message: MessageEvent<string>) => {
    failures = 0;
    if (seen(message.lastEventId)) return;
    if (message.lastEventId) lastEventId = message.lastEventId;
    const event = { event: name, id: message.lastEventId, data: JSON.parse(message.data) };
    onEvent(event as JobEvent);
    if (name === "complete" || name === "error") close();
  };

  const retry = (reason: unknown): void => {
    source?.close();
    source = null;
    if (closed) return;
    failures += 1;
    if (failures > maxRetries) {
      close();
      options.onGiveUp?.(reason);
      return;
    }
    timer = setTimeout(() => void connect(), retryDelayMs * 2 ** (failures - 1));
  };

  const connect = async (): Promise<void> => {
    if (closed) return;
    let ticket: StreamTicket;
    try {
      ticket = await fetchTicket(client, jobPath);
    } catch (reason) {
      retry(reason);
      return;
    }
    if (closed) return;
    const url = new URL(`${client.baseUrl}${jobPath}/stream`);
    url.searchParams.set("ticket", ticket.ticket);
    if (lastEventId !== null) url.searchParams.set("last_event_id", lastEventId);
    const current = new Source(url.toString());
    source = current;
    current.addEventListener("progress", handle("progress"));
    current.addEventListener("complete", handle("complete"));
    current.addEventListener("error", (event: Event) => {
      // A server-sent `event: error` frame carries data; a connection error does not.
      if (event instanceof MessageEvent && typeof event.data === "string") {
        handle("error")(event as MessageEvent<string>);
      } else if (source === current) {
        retry(event); // the ticket is spent: a new one, then reconnect
      }
    });
  };

  void connect();
  return { close };
}
