/**
 * The StoryCore API client: `openapi-fetch` over the types `openapi-typescript` generated from
 * the suite's merged spec (`openapi/storycore.json` → `src/schema.d.ts`; `npm run generate`).
 */
import createClient, { type Client, type Middleware } from "openapi-fetch";

import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";
export { streamJob, type JobEvent, type JobPath, type StreamHandle } from "./stream.js";
export { mediaUrl, keyframeUrl } from "./media.js";

type Schemas = components["schemas"];

/** The shared shot vocabulary, from the same spec the API validates against. */
export type ShotType = Schemas["ShotType"];
export type Framing = Schemas["Framing"];
export type CameraAngle = Schemas["CameraAngle"];

export type Problem = Schemas["Problem"];
export type Project = Schemas["ProjectPublic"];
export type Shot = Schemas["ShotPublic"];
export type Job = Schemas["JobPublic"];
export type JobStatus = Job["status"];
export type StreamTicket = Schemas["StreamTicketPublic"];

export interface StoryCoreClientOptions {
  /** Where the gateway is: `http://localhost:8080` (paths already start with `/api`). */
  baseUrl: string;
  /** The current access token (called for every request, so a refreshed one is used). */
  getToken?: () => string | null | undefined | Promise<string | null | undefined>;
  fetch?: typeof globalThis.fetch;
}

export interface StoryCoreClient {
  api: Client<paths>;
  baseUrl: string;
  getToken: () => Promise<string | null>;
  fetch: typeof globalThis.fetch;
}

export function createStoryCoreClient(options: StoryCoreClientOptions): StoryCoreClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
  const getToken = async (): Promise<string | null> => (await options.getToken?.()) ?? null;
  const api = createClient<paths>({ baseUrl, fetch: fetcher });
  const auth: Middleware = {
    async onRequest({ request }) {
      const token = await getToken();
      if (token && !request.headers.has("Authorization")) {
        request.headers.set("Authorization", `Bearer ${token}`);
      }
      return request;
    },
  };
  api.use(auth);
  return { api, baseUrl, getToken, fetch: fetcher };
}

/** Whether an error body is an RFC 9457 problem (every error the suite answers is one). */
export function isProblem(value: unknown): value is Problem {
  return (
    typeof value === "object" &&
    value !== null &&
    "code" in value &&
    "status" in value &&
    "title" in value
  );
}

export type { operations as Operations };
