import { playlistPosition, type ParsedMediaPlaylist } from '../../common/src/hls/media-playlist.ts';

/**
 * Blocking playlist reload (rfc8216bis §6.2.5.2; docs/low-latency-hls.md "Blocking playlist reload"):
 * what a `_HLS_msn`/`_HLS_part` request asks for, and whether a playlist version answers it.
 * Pure functions, no I/O: the held-request machinery asks `decideReload` again for every new version.
 */

/** What the query string of a media playlist request asks for. */
export type ReloadDirectives =
  /** No `_HLS_msn`/`_HLS_part`: a plain request (`_HLS_skip`, CMCD, token … do not count). */
  | { kind: 'none' }
  /** Segment `msn` complete (part null), or part `part` of segment `msn` listed. */
  | { kind: 'block'; msn: number; part: number | null }
  | { kind: 'invalid'; reason: string };

export type ReloadDecision =
  /** Answer now as a plain request: there were no directives, or they are ignored for this playlist. */
  | { kind: 'plain' }
  /** The playlist contains what was asked for: answer now. */
  | { kind: 'ready' }
  /** Hold the request until a version contains it (at most 3 × TARGETDURATION). */
  | { kind: 'wait' }
  /** 400 at once. */
  | { kind: 'bad'; reason: string };

/**
 * Decimal digits only: no sign, no space, no exponent, no hex. 15 digits keep every value a safe
 * integer (a media sequence number of 10^15 is 60 million years of 2 s segments).
 */
const DECIMAL_INTEGER = /^[0-9]{1,15}$/;

const NONE: ReloadDirectives = { kind: 'none' };

/**
 * Reads the directives from the raw (undecoded) query string, without the `?`. Names are matched
 * exactly and values are never percent-decoded (`_HLS_msn=%31` is not a number). Other parameters
 * (`CMCD=…`, `token=…`, `_HLS_skip=…`) are ignored. A directive given twice is invalid, even with the
 * same value: the proxy sends each at most once (its cache key is the canonical form), so a
 * duplicate comes from a broken or hostile client, and refusing it means no two tiers can read
 * one URL differently.
 */
export function parseReloadDirectives(rawQuery: string): ReloadDirectives {
  // The fast path: most playlist requests carry only CMCD or nothing.
  if (!rawQuery.includes('_HLS_')) return NONE;
  let msn: string | undefined;
  let part: string | undefined;
  for (const pair of rawQuery.split('&')) {
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    if (name !== '_HLS_msn' && name !== '_HLS_part') continue;
    const value = eq === -1 ? '' : pair.slice(eq + 1);
    if (name === '_HLS_msn') {
      if (msn !== undefined) return { kind: 'invalid', reason: '_HLS_msn given twice' };
      msn = value;
    } else {
      if (part !== undefined) return { kind: 'invalid', reason: '_HLS_part given twice' };
      part = value;
    }
  }
  if (msn === undefined && part === undefined) return NONE;
  if (msn === undefined) return { kind: 'invalid', reason: '_HLS_part without _HLS_msn' };
  if (!DECIMAL_INTEGER.test(msn)) return { kind: 'invalid', reason: '_HLS_msn is not a decimal integer' };
  if (part !== undefined && !DECIMAL_INTEGER.test(part)) return { kind: 'invalid', reason: '_HLS_part is not a decimal integer' };
  return { kind: 'block', msn: Number(msn), part: part === undefined ? null : Number(part) };
}

/** What `decideReload` reads from a parsed playlist. */
export type ReloadPlaylist = Pick<ParsedMediaPlaylist, 'canBlockReload' | 'ended' | 'mediaSequence' | 'segments' | 'openParts' | 'partTarget'>;

/**
 * How far past the last listed part a request may ask (§6.2.5.2): 3 / PART-TARGET parts when
 * PART-TARGET < 1 s (≈ 3 s of parts), else 3. Not rounded: a distance is compared with it.
 */
export function advancePartLimit(partTarget: number | null): number {
  return partTarget !== null && partTarget > 0 && partTarget < 1 ? 3 / partTarget : 3;
}

const PLAIN: ReloadDecision = { kind: 'plain' };
const READY: ReloadDecision = { kind: 'ready' };
const WAIT: ReloadDecision = { kind: 'wait' };

/**
 * Decides a request against one playlist version. Directives are ignored (a plain answer) on a
 * playlist without CAN-BLOCK-RELOAD (it does not speak them, as a classic server ignores a query)
 * and after EXT-X-ENDLIST (nothing more will come), and in that case even malformed ones: ignoring
 * means treating them as absent.
 */
export function decideReload(playlist: ReloadPlaylist, directives: ReloadDirectives): ReloadDecision {
  if (directives.kind === 'none' || !playlist.canBlockReload || playlist.ended) return PLAIN;
  if (directives.kind === 'invalid') return { kind: 'bad', reason: directives.reason };
  const { lastMsn, openParts } = playlistPosition(playlist);
  let { msn, part } = directives;
  if (msn > lastMsn + 2) return { kind: 'bad', reason: `_HLS_msn ${msn} is more than 2 past the last segment ${lastMsn}` };
  if (part === null) return msn <= lastMsn ? READY : WAIT;

  if (msn <= lastMsn) {
    // A complete segment: all its parts exist.
    const segment = playlist.segments[msn - playlist.mediaSequence];
    const listed = segment?.parts.length ?? 0;
    // Part count unknown (the segment no longer lists its parts, or is out of the window): if the
    // next segment is complete too, whatever part was meant exists; for the last segment, answer
    // rather than hold on a guess (the client learns where the playlist is from the answer).
    if (listed === 0) return READY;
    if (part < listed) return READY;
    // Past the segment's last part: part 0 of the next segment.
    msn += 1;
    part = 0;
    if (msn <= lastMsn) return READY;
  }
  if (msn === lastMsn + 1 && part < openParts) return READY;
  // Parts from the last listed one to the requested one. For segment lastMsn + 2 the open segment's
  // remaining parts are unknown and counted as none: a wrong 400 would hurt, a wrong hold only waits.
  const distance = msn === lastMsn + 1 ? part - openParts + 1 : part + 1;
  if (distance > advancePartLimit(playlist.partTarget)) {
    return { kind: 'bad', reason: `_HLS_part ${part} of segment ${msn} is beyond the advance part limit` };
  }
  return WAIT;
}
