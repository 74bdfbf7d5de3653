import type { IncomingHttpHeaders } from 'node:http';

/**
 * The player's CMCD session id (`sid`, CTA-5004), from the `CMCD=` query parameter (hls.js's
 * default "query" mode) or the `CMCD-Session` request header ("header" mode).
 *
 * The value is client-controlled and ends up in every access record and in the viewer-session
 * count, so it is parsed defensively: bounded input, a quoted string only, at most
 * MAX_SESSION_ID_LENGTH printable ASCII characters; anything else is null (no session), never an error.
 */
export const MAX_SESSION_ID_LENGTH = 64;

/** Longer CMCD payloads are not parsed at all: a real one is a few hundred bytes. */
const MAX_CMCD_INPUT = 4096;

export function sessionIdFromRequest(url: string, headers: IncomingHttpHeaders): string | null {
  const fromQuery = cmcdQueryValue(url);
  if (fromQuery !== null) {
    const sid = parseCmcdSessionId(fromQuery);
    if (sid !== null) return sid;
  }
  const header = headers['cmcd-session'];
  const value = Array.isArray(header) ? header.join(',') : header;
  return value === undefined ? null : parseCmcdSessionId(value);
}

/** The decoded value of the first `CMCD` query parameter, or null. Never throws. */
export function cmcdQueryValue(url: string): string | null {
  const q = url.indexOf('?');
  if (q === -1) return null;
  const query = url.slice(q + 1);
  // Cheap pre-check: most requests (pages, probes) have no CMCD at all.
  if (!query.includes('CMCD=')) return null;
  for (const pair of query.split('&')) {
    if (!pair.startsWith('CMCD=')) continue;
    const raw = pair.slice(5);
    if (raw.length > MAX_CMCD_INPUT * 3) return null;
    try {
      // Form encoding (URLSearchParams, what hls.js uses) writes spaces as '+'; a literal '+' is %2B.
      return decodeURIComponent(raw.replace(/\+/g, ' '));
    } catch {
      return null; // malformed percent-escape
    }
  }
  return null;
}

/**
 * `sid` from a CMCD payload: comma-separated `key=value` pairs (`bl=21300,br=3200,sid="6e2f…"`);
 * string values are quoted with `\"` and `\\` escapes and may themselves contain commas.
 */
export function parseCmcdSessionId(payload: string): string | null {
  if (payload.length > MAX_CMCD_INPUT) return null;
  let i = 0;
  const n = payload.length;
  while (i < n) {
    while (i < n && (payload[i] === ' ' || payload[i] === ',')) i++;
    const keyStart = i;
    while (i < n && payload[i] !== '=' && payload[i] !== ',') i++;
    const key = payload.slice(keyStart, i).trim();
    if (i >= n || payload[i] === ',') continue; // a bare key (boolean true), no value
    i++; // '='
    if (payload[i] === '"') {
      // Quoted string: read to the closing quote, honouring escapes.
      i++;
      let value = '';
      let closed = false;
      while (i < n) {
        const c = payload[i]!;
        if (c === '\\' && i + 1 < n) {
          value += payload[i + 1];
          i += 2;
          continue;
        }
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        value += c;
        i++;
      }
      if (key === 'sid') return closed ? validSessionId(value) : null;
    } else {
      // A token or number: up to the next comma. sid is always a string, so an unquoted sid is refused.
      while (i < n && payload[i] !== ',') i++;
      if (key === 'sid') return null;
    }
  }
  return null;
}

function validSessionId(value: string): string | null {
  if (value.length === 0 || value.length > MAX_SESSION_ID_LENGTH) return null;
  // Printable ASCII only: no control characters or unicode tricks in logs and dashboards.
  return /^[\x20-\x7e]+$/.test(value) ? value : null;
}
