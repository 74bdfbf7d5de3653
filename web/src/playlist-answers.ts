import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { MEDIA_CONTENT_TYPES } from '../../common/src/media-layout.ts';

/**
 * How an answer to a live media playlist request is marked (docs/low-latency-hls.md):
 * - `plain`: no directives (or ignored ones): revalidate every time;
 * - `satisfied`: a blocking reload whose segment/part is in the playlist. Its URL names one
 *   playlist update, so caches may keep it a moment (the proxy coalesces on it), never longer than
 *   half a target duration;
 * - `timeout`: a blocking reload that waited 3 × TARGETDURATION for nothing.
 * Never an `Age` header: hls.js would take it off its latency estimate.
 */
export type PlaylistAnswer = 'plain' | 'satisfied' | 'timeout';

/**
 * The timed-out reload: the spec's SHOULD is a 503, but hls.js answers a 503 by waiting 1 s or
 * more and counting a level error, while a 200 with the current playlist makes it simply reload.
 * `no-store`, so no cache hands this playlist to the next viewer as if it were the one asked for.
 * This is the one place to change that decision.
 */
export const TIMED_OUT_RELOAD = { status: 200, cacheControl: 'no-store' } as const;

const PLAIN_CACHE_CONTROL = 'no-cache';
/** max-age=1 is at most half a target duration only from TARGETDURATION 2 on. */
const SATISFIED_CACHE_CONTROL = 'public, max-age=1';

export function playlistAnswerStatus(answer: PlaylistAnswer): number {
  return answer === 'timeout' ? TIMED_OUT_RELOAD.status : 200;
}

export function playlistCacheControl(answer: PlaylistAnswer, targetDuration: number): string {
  if (answer === 'timeout') return TIMED_OUT_RELOAD.cacheControl;
  if (answer === 'satisfied' && targetDuration >= 2) return SATISFIED_CACHE_CONTROL;
  return PLAIN_CACHE_CONTROL;
}

export function playlistHeaders(answer: PlaylistAnswer, body: Buffer, targetDuration: number): OutgoingHttpHeaders {
  return {
    'content-type': MEDIA_CONTENT_TYPES.m3u8,
    'cache-control': playlistCacheControl(answer, targetDuration),
    'access-control-allow-origin': '*',
    'content-length': body.length,
  };
}

/**
 * Writes a playlist answer. `headers` may be shared by many responses (a wake answers hundreds
 * with one object); writeHead only reads it.
 */
export function writePlaylist(res: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: Buffer): void {
  res.writeHead(status, headers);
  if (res.req.method === 'HEAD') res.end();
  else res.end(body);
}
