import { playbackTokenVerifier, type PlaybackTokenCheck } from '../../common/src/playback-token.ts';
import { isStreamName, STREAM_NAME_PATTERN } from '../../common/src/stream-name.ts';

export const PLAYBACK_COOKIE = 'onair_playback';
const LIVE_PREFIX = '/live/';
/** Recordings (MEDIA_DIR/archive/<stream>/<session>/…): protected like the live stream they come from. */
const ARCHIVE_PREFIX = '/archive/';
const WATCH_PATH = new RegExp(`^/watch/(${STREAM_NAME_PATTERN.source.slice(1, -1)})/?$`);
/** A stream's recordings page and a recording's player page. */
const VOD_PATH = new RegExp(`^/vod/(${STREAM_NAME_PATTERN.source.slice(1, -1)})(?:/[^/]+)?/?$`);
/**
 * On-demand uploads: the player page /ondemand/<id> and the files /uploaded/<id>/…, opened by a token
 * signed for `upload:<id>` (a colon never appears in a stream name, so no stream's token opens an upload).
 */
const UPLOADED_PREFIX = '/uploaded/';
const ONDEMAND_PATH = /^\/ondemand\/(\d{8}-\d{6}-[a-z0-9]{6})\/?$/;
export const UPLOAD_TOKEN_PREFIX = 'upload:';

export type PlaybackDecision =
  | { ok: true; stream: string | null; setCookie: string[] | null }
  | { ok: false; reason: 'token-missing' | 'token-invalid' | 'token-expired' };

const MAX_COOKIES_CHECKED = 4;
const OPEN: PlaybackDecision = { ok: true, stream: null, setCookie: null };
const MISSING: PlaybackDecision = { ok: false, reason: 'token-missing' };

/**
 * PLAYBACK_TOKEN_SECRET: `/live/<stream>/…` (playlists and segments) needs a token signed for that
 * stream, from the query (`?token=`, for players that pass it) or from the cookie set when the
 * viewer opened `/watch/<stream>?token=…`. hls.js requests playlists and segments by relative URIs
 * without a query, so for browsers the cookie is what carries the token: HttpOnly (page scripts
 * never see it), SameSite=Strict, scoped to `Path=/live/<stream>/`, and it expires with the token.
 * The watch page itself also needs the token (without one the player would only ever get 403s);
 * everything else (`/`, assets, monitoring) is not gated here.
 */
export class PlaybackGate {
  private readonly verify: (token: string, stream: string, nowSeconds: number) => PlaybackTokenCheck;

  constructor(secret: string) {
    this.verify = playbackTokenVerifier(secret);
  }

  /** `secure`: the client reached us over HTTPS (the cookie then gets `Secure`). */
  check(path: string, url: string, cookieHeader: string | undefined, secure: boolean, nowSeconds: number): PlaybackDecision {
    let stream: string;
    let fromPage = false;
    if (path.startsWith(LIVE_PREFIX) || path.startsWith(ARCHIVE_PREFIX)) {
      const prefix = path.startsWith(LIVE_PREFIX) ? LIVE_PREFIX.length : ARCHIVE_PREFIX.length;
      const end = path.indexOf('/', prefix);
      stream = path.slice(prefix, end === -1 ? path.length : end);
    } else if (path.startsWith('/watch/')) {
      const match = WATCH_PATH.exec(path);
      if (match === null) return OPEN; // not a player page: web answers 404
      stream = match[1]!;
      fromPage = true;
    } else if (path.startsWith(UPLOADED_PREFIX)) {
      const end = path.indexOf('/', UPLOADED_PREFIX.length);
      stream = UPLOAD_TOKEN_PREFIX + path.slice(UPLOADED_PREFIX.length, end === -1 ? path.length : end);
    } else if (path.startsWith('/ondemand/')) {
      const match = ONDEMAND_PATH.exec(path);
      if (match === null) return OPEN; // not a player page: web answers 404
      stream = UPLOAD_TOKEN_PREFIX + match[1]!;
      fromPage = true;
    } else if (path.startsWith('/vod/')) {
      // Recording pages: reached from the watch page's links, which carry no token: the cookie counts.
      const match = VOD_PATH.exec(path);
      if (match === null) return OPEN;
      stream = match[1]!;
    } else {
      return OPEN;
    }

    const q = url.indexOf('?');
    const queryToken = q === -1 ? null : queryParam(url, q, 'token');
    let first: PlaybackTokenCheck | null = null;
    if (queryToken !== null) {
      const check = this.verify(queryToken, stream, nowSeconds);
      if (check.ok) return { ok: true, stream, setCookie: cookieFor(stream, queryToken, check.expiresAt - nowSeconds, secure) };
      first = check;
    }
    // The cookie's path is /live/<stream>/, so a browser only sends it there.
    if (!fromPage && cookieHeader !== undefined) {
      // A browser sends one per matching path; a few at most are checked (each costs an HMAC).
      let tried = 0;
      for (let at = cookieHeader.indexOf(PLAYBACK_COOKIE); at !== -1 && tried < MAX_COOKIES_CHECKED; at = cookieHeader.indexOf(PLAYBACK_COOKIE, at + 1)) {
        const value = cookieValue(cookieHeader, at);
        if (value === null) continue;
        tried++;
        const check = this.verify(value, stream, nowSeconds);
        if (check.ok) return { ok: true, stream, setCookie: null };
        first ??= check;
      }
    }
    return first === null ? MISSING : { ok: false, reason: (first as { reason: 'token-invalid' | 'token-expired' }).reason };
  }
}

function cookieFor(subject: string, token: string, maxAge: number, secure: boolean): string[] | null {
  if (!subject.startsWith(UPLOAD_TOKEN_PREFIX)) return isStreamName(subject) ? cookie(subject, token, maxAge, secure) : null;
  const id = subject.slice(UPLOAD_TOKEN_PREFIX.length);
  if (!/^\d{8}-\d{6}-[a-z0-9]{6}$/.test(id)) return null;
  const one = (path: string): string => `${PLAYBACK_COOKIE}=${token}; Max-Age=${Math.max(1, maxAge)}; Path=${path}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  return [one(`/uploaded/${id}/`), one(`/ondemand/${id}`)];
}

/** A cookie for the live stream's files, its recordings' files and its recording pages (a browser sends each only under its path). */
function cookie(stream: string, token: string, maxAge: number, secure: boolean): string[] {
  const one = (path: string): string => `${PLAYBACK_COOKIE}=${token}; Max-Age=${Math.max(1, maxAge)}; Path=${path}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  return [one(`/live/${stream}/`), one(`/archive/${stream}/`), one(`/vod/${stream}`)];
}

/** The raw value of `name` in the query that starts after `q` (tokens never need decoding). */
function queryParam(url: string, q: number, name: string): string | null {
  let i = q + 1;
  while (i < url.length) {
    let end = url.indexOf('&', i);
    if (end === -1) end = url.length;
    if (url.startsWith(name, i) && url.charCodeAt(i + name.length) === 61 /* = */) return url.slice(i + name.length + 1, end);
    i = end + 1;
  }
  return null;
}

/** The value of the cookie whose name starts at `at`, or null when that is not a cookie name (e.g. inside a value). */
function cookieValue(header: string, at: number): string | null {
  if (at > 0) {
    // A name starts the header or follows "; " (or ";").
    let j = at - 1;
    while (j >= 0 && header.charCodeAt(j) === 32) j--;
    if (j >= 0 && header.charCodeAt(j) !== 59 /* ; */) return null;
  }
  const eq = at + PLAYBACK_COOKIE.length;
  if (header.charCodeAt(eq) !== 61 /* = */) return null;
  const end = header.indexOf(';', eq);
  return header.slice(eq + 1, end === -1 ? header.length : end).trim();
}
