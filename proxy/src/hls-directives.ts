/**
 * LL-HLS delivery directives (rfc8216bis §6.2.5) as the proxy sees them: what part of a playlist
 * request's query decides its answer, so it can be the cache key and the whole query of the fill.
 *
 * Only `_HLS_msn`, `_HLS_part` and `_HLS_skip` change what web answers. Everything else in the
 * query (CMCD, `token`, anything unknown) is left out: admission (allowlist, tokens, limits) already
 * ran on the original URL, and the session id is read from it for the access record.
 *
 * Strict on purpose: a directive is taken only in its plain spelling (decimal digits without a
 * leading zero, `YES` / `v2`), once each, `_HLS_part` only with `_HLS_msn`. Anything else is
 * "malformed": the request is not cached and is forwarded exactly as sent, so web stays the one
 * judge of what it means (its answer is a 400, or whatever it decides). Because the cache key and
 * the fill's query are the same string, no spelling can make the proxy hold an answer under a
 * key it was not asked for.
 */

/** A playlist request's directives: `''` none, the canonical query, or null (malformed). */
export type CanonicalDirectives = string | null;

const NUMBER = /^(?:0|[1-9][0-9]{0,14})$/;

/**
 * The canonical directive query of a raw query string (without the `?`):
 * `_HLS_msn=M&_HLS_part=N&_HLS_skip=YES` in that order, with only the directives present;
 * `''` when there are none; null when they are malformed.
 */
export function canonicalDirectives(rawQuery: string): CanonicalDirectives {
  // Most requests (segments, plain reloads with CMCD) have no directive at all.
  if (!rawQuery.includes('_HLS_')) return '';
  let msn: string | undefined;
  let part: string | undefined;
  let skip: string | undefined;
  for (const pair of rawQuery.split('&')) {
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    if (name !== '_HLS_msn' && name !== '_HLS_part' && name !== '_HLS_skip') continue;
    if (eq === -1) return null;
    const value = pair.slice(eq + 1);
    if (name === '_HLS_msn') {
      if (msn !== undefined || !NUMBER.test(value)) return null;
      msn = value;
    } else if (name === '_HLS_part') {
      if (part !== undefined || !NUMBER.test(value)) return null;
      part = value;
    } else {
      if (skip !== undefined || (value !== 'YES' && value !== 'v2')) return null;
      skip = value;
    }
  }
  if (part !== undefined && msn === undefined) return null;
  let out = msn === undefined ? '' : `_HLS_msn=${msn}`;
  if (part !== undefined) out += `&_HLS_part=${part}`;
  if (skip !== undefined) out += `${out === '' ? '' : '&'}_HLS_skip=${skip}`;
  return out;
}

/** Canonical directives that ask web to hold the answer (a blocking playlist reload). */
export function isBlockingDirective(canonical: string): boolean {
  return canonical.startsWith('_HLS_msn=');
}

/** A raw query that may ask web to hold the answer, however it is spelled (a forwarded request, malformed or not). */
export function mayBlock(rawQuery: string): boolean {
  return rawQuery.includes('_HLS_msn=');
}

/** Longest time a directive answer is held, whatever its max-age says. */
export const MAX_DIRECTIVE_HOLD_MS = 2_000;

/**
 * How long the proxy may hold a playlist answer to a request with directives: `no-store` (web's
 * answer when its hold ran out) and `private` never, `max-age=N` for N seconds up to
 * MAX_DIRECTIVE_HOLD_MS, otherwise (`no-cache`, nothing) `fallbackMs`, like a plain playlist.
 */
export function directiveHoldMs(cacheControl: string | string[] | number | undefined, fallbackMs: number): number {
  const value = Array.isArray(cacheControl) ? cacheControl.join(',') : cacheControl === undefined ? '' : String(cacheControl);
  if (/\b(?:no-store|private)\b/i.test(value)) return 0;
  const maxAge = /\bmax-age\s*=\s*"?(\d{1,9})"?/i.exec(value);
  if (maxAge !== null) return Math.min(Number(maxAge[1]) * 1000, MAX_DIRECTIVE_HOLD_MS);
  return fallbackMs;
}

const PRELOAD_HINT = Buffer.from('#EXT-X-PRELOAD-HINT:');

/**
 * The path of the part a media playlist hints (`EXT-X-PRELOAD-HINT:TYPE=PART,URI="…"`), resolved
 * against the playlist's path; null when there is none or its URI is not a plain relative name.
 */
export function hintedPartPath(playlistPath: string, body: Buffer): string | null {
  const at = body.lastIndexOf(PRELOAD_HINT);
  if (at === -1) return null;
  const end = body.indexOf(10, at);
  const line = body.toString('latin1', at + PRELOAD_HINT.length, end === -1 ? body.length : end);
  if (!/(?:^|,)TYPE=PART(?:,|$)/.test(line)) return null;
  const uri = /(?:^|,)URI="([^"/?#:]{1,200})"/.exec(line);
  if (uri === null) return null;
  return playlistPath.slice(0, playlistPath.lastIndexOf('/') + 1) + uri[1];
}
