/**
 * Media URLs. The API hands out short-lived signed URLs for keyframes, audio, video and rigs,
 * so `<img>`, `<audio>` and `<video>` load them without an `Authorization` header; they are
 * relative to the gateway, so resolve them against the client's base URL.
 */
import type { operations } from "./schema.js";
import type { StoryCoreClient } from "./index.js";

/** `GET /api/sequences/{job_id}/result` (an open object in the spec). */
export type SequenceResult =
  operations["getJobResult"]["responses"][200]["content"]["application/json"];

interface ResultShot {
  order_index: number;
  keyframe_url: string | null;
}

function isResultShot(value: unknown): value is ResultShot {
  return typeof value === "object" && value !== null && "order_index" in value;
}

/** An absolute URL for a media path the API returned (`null` stays `null`). */
export function mediaUrl(client: Pick<StoryCoreClient, "baseUrl">, url: string): string;
export function mediaUrl(
  client: Pick<StoryCoreClient, "baseUrl">,
  url: string | null | undefined,
): string | null;
export function mediaUrl(
  client: Pick<StoryCoreClient, "baseUrl">,
  url: string | null | undefined,
): string | null {
  if (url === null || url === undefined || url === "") return null;
  return new URL(url, `${client.baseUrl}/`).toString();
}

/** The keyframe of shot `index` of a generated sequence, as an `<img src>`. */
export function keyframeUrl(
  client: Pick<StoryCoreClient, "baseUrl">,
  result: SequenceResult,
  index: number,
): string | null {
  const shots: unknown = result["shots"];
  if (!Array.isArray(shots)) return null;
  const shot = shots.filter(isResultShot).find((candidate) => candidate.order_index === index);
  return mediaUrl(client, shot?.keyframe_url);
}
