import { readFile } from 'node:fs/promises';
import { z } from 'zod';

/**
 * The contract between ingest (writer) and web (reader) for "which streams are live now".
 * Ingest rewrites the file atomically on every change and at least every heartbeat interval;
 * a reader treats a file older than `staleAfterMs` as "ingest is gone, nothing is live".
 */
export const liveStreamSchema = z.object({
  stream: z.string(),
  state: z.enum(['live', 'reconnecting']),
  since: z.string(),
  video: z
    .object({ codec: z.string(), width: z.number(), height: z.number(), fps: z.number() })
    .nullable(),
  audio: z.object({ codec: z.string(), sampleRate: z.number(), channels: z.number() }).nullable(),
  bitrateKbps: z.number(),
  /** The stream's playlists are low-latency HLS (parts, blocking reload): players tune for it. */
  lowLatency: z.boolean().default(false),
});
export type LiveStream = z.infer<typeof liveStreamSchema>;

export const liveStateSchema = z.object({
  version: z.literal(1),
  updatedAt: z.string(),
  heartbeatMs: z.number(),
  streams: z.array(liveStreamSchema),
});
export type LiveState = z.infer<typeof liveStateSchema>;

export const EMPTY_LIVE_STATE: LiveState = { version: 1, updatedAt: new Date(0).toISOString(), heartbeatMs: 0, streams: [] };

/** Reads the live-state file; a missing, unreadable or stale file means no stream is live. */
export async function readLiveState(file: string, now = Date.now()): Promise<LiveState> {
  let raw: string;
  try {
    raw = await readFile(file, 'utf8');
  } catch {
    return EMPTY_LIVE_STATE;
  }
  let parsed: LiveState;
  try {
    parsed = liveStateSchema.parse(JSON.parse(raw));
  } catch {
    return EMPTY_LIVE_STATE;
  }
  const age = now - Date.parse(parsed.updatedAt);
  if (age > Math.max(3 * parsed.heartbeatMs, 5_000)) return { ...parsed, streams: [] };
  return parsed;
}
