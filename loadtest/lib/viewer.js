// @ts-check
/**
 * One viewer that behaves like hls.js watching a live stream, written as a generator of effects so
 * the same scheduling runs under k6 (blocking http.get and sleep) and under Node (async fetch and
 * timers), and under a virtual clock in unit tests. The generator yields
 *   { op: 'get', url, what }   → resume with a FetchResult
 *   { op: 'wait', untilMs }    → resume with the clock's time when it woke up
 * and reports what a player would feel through the observer.
 *
 * The player model (hls.js 1.x defaults, simplified to one request at a time):
 * - a master playlist → one rendition by `variantPolicy`; then its media playlist;
 * - start `liveSyncSegments` segments from the live edge (hls.js liveSyncDurationCount = 3), load the
 *   init segment (EXT-X-MAP) when it changes, then every new segment in order, each once;
 * - reload the media playlist one target duration after the last load started when it changed, half a
 *   target duration when it did not (hls.js does the same), stop at EXT-X-ENDLIST;
 * - the playback buffer (PlaybackBuffer) starts with the first segment; startup time is the first
 *   playlist request → first segment downloaded;
 * - a playlist whose newest segment has not advanced for `staleFactor` target durations is stale
 *   (reported once per episode);
 * - a failed request is retried after `retryDelayMs`; a segment that failed `segmentRetries` + 1 times
 *   is skipped, as is every segment that left the playlist before it could be loaded ("fell behind").
 *
 * Plain ES2017 (k6 0.48 in module files): no `?.`, `??` or object spread.
 */
import { parsePlaylist, pickVariant, resolveUrl } from './playlist.js';
import { PlaybackBuffer } from './playback-buffer.js';

/**
 * @typedef {'playlist' | 'init' | 'segment'} RequestWhat
 * @typedef {{ op: 'get', url: string, what: RequestWhat } | { op: 'wait', untilMs: number }} ViewerAction
 * @typedef {{ status: number, body: string | null, bytes: number, startMs: number, endMs: number, error: 'timeout' | 'network' | null }} FetchResult
 * @typedef {'http_4xx' | 'http_5xx' | 'timeout' | 'network' | 'parse' | 'fell_behind'} ErrorKind
 * @typedef {{
 *   request: (what: RequestWhat, ms: number, ok: boolean, bytes: number) => void,
 *   startup: (ms: number) => void,
 *   segment: (downloadMs: number, durationSeconds: number) => void,
 *   stallStarted: () => void,
 *   stallEnded: (seconds: number) => void,
 *   stale: () => void,
 *   error: (kind: ErrorKind, what: RequestWhat) => void,
 * }} ViewerObserver
 * @typedef {{
 *   url: string,
 *   startMs: number,
 *   durationMs: number,
 *   observer: ViewerObserver,
 *   variantPolicy?: 'highest' | 'lowest' | 'random',
 *   random?: () => number,
 *   liveSyncSegments?: number,
 *   staleFactor?: number,
 *   retryDelayMs?: number,
 *   segmentRetries?: number,
 *   sessionId?: string | null,
 * }} ViewerOptions
 * @typedef {{ startupMs: number | null, segments: number, stalls: number, stallSeconds: number, ended: boolean }} ViewerSummary
 */

/** Default SLO: what "a viewer held" means, shared by the k6 thresholds and the Node runner. */
export const SLO = {
  /** p95 of segment download time ÷ segment duration */
  downloadRatioP95: 0.5,
  /** stalls per test (none) */
  stalls: 0,
  /** failed requests ÷ requests */
  errorRate: 0.001,
};

/**
 * Classifies a finished request: null when it succeeded.
 * @param {FetchResult} result
 * @returns {ErrorKind | null}
 */
export function errorKind(result) {
  if (result.error !== null) return result.error;
  if (result.status >= 500) return 'http_5xx';
  if (result.status >= 400 || result.status < 200) return 'http_4xx';
  return null;
}

/**
 * The CMCD query a player sends with every request (hls.js `cmcd` option; the proxy logs `sid`
 * as the access record's session_id, so monitoring can count sessions as well as addresses).
 * @param {string} url
 * @param {string | null} sessionId
 * @returns {string}
 */
export function withCmcd(url, sessionId) {
  if (!sessionId) return url;
  return url + (url.indexOf('?') === -1 ? '?' : '&') + 'CMCD=' + encodeURIComponent('sid="' + sessionId + '"');
}

/**
 * @param {ViewerOptions} options
 * @returns {Generator<ViewerAction, ViewerSummary, any>}
 */
export function* watchStream(options) {
  const observer = options.observer;
  const policy = options.variantPolicy || 'highest';
  const random = options.random || Math.random;
  const liveSyncSegments = options.liveSyncSegments || 3;
  const staleFactor = options.staleFactor || 1.5;
  const retryDelayMs = options.retryDelayMs || 1000;
  const segmentRetries = options.segmentRetries === undefined ? 2 : options.segmentRetries;
  const sessionId = options.sessionId || null;
  const deadline = options.startMs + options.durationMs;
  const buffer = new PlaybackBuffer();
  /** @type {ViewerSummary} */
  const summary = { startupMs: null, segments: 0, stalls: 0, stallSeconds: 0, ended: false };

  let now = options.startMs;
  let mediaUrl = options.url;
  /** @type {import('./playlist.js').Segment[]} */
  let available = [];
  let targetDuration = 0;
  let nextSequence = -1;
  let newestSequence = -1;
  let newestAdvancedAtMs = now;
  let staleReported = false;
  let endList = false;
  let nextReloadAtMs = now;
  /** @type {string | null} */
  let loadedMap = null;
  let failures = 0;
  let masterResolved = false;

  /**
   * @param {FetchResult} result
   * @param {RequestWhat} what
   * @returns {boolean} true when the request succeeded
   */
  function finished(result, what) {
    now = result.endMs;
    const kind = errorKind(result);
    observer.request(what, result.endMs - result.startMs, kind === null, result.bytes);
    if (kind !== null) observer.error(kind, what);
    return kind === null;
  }

  /** @param {number} atMs */
  function drain(atMs) {
    if (buffer.advance(atMs)) observer.stallStarted();
  }

  while (now < deadline) {
    drain(now);

    // 1. The playlist, when due (first load, reload, or retry after a failure).
    if (now >= nextReloadAtMs && !endList) {
      /** @type {FetchResult} */
      const result = yield { op: 'get', url: withCmcd(mediaUrl, sessionId), what: 'playlist' };
      const startedAtMs = result.startMs;
      if (!finished(result, 'playlist')) {
        nextReloadAtMs = now + retryDelayMs;
        continue;
      }
      let parsed;
      try {
        parsed = parsePlaylist(result.body || '');
      } catch (err) {
        observer.error('parse', 'playlist');
        nextReloadAtMs = now + retryDelayMs;
        continue;
      }
      if (parsed.type === 'master') {
        if (masterResolved) {
          observer.error('parse', 'playlist'); // a rendition's URL answered with a master playlist
          nextReloadAtMs = now + retryDelayMs;
          continue;
        }
        mediaUrl = resolveUrl(mediaUrl, pickVariant(parsed.variants, policy, random).uri);
        masterResolved = true;
        nextReloadAtMs = now;
        continue;
      }
      masterResolved = true;
      targetDuration = parsed.targetDuration;
      endList = parsed.endList;
      available = parsed.segments;
      const first = available[0];
      const newest = available[available.length - 1];
      const last = newest ? newest.sequence : -1;
      if (nextSequence < 0 && first) {
        nextSequence = Math.max(first.sequence, last - liveSyncSegments + 1);
      }
      const advanced = last > newestSequence;
      if (advanced) {
        newestSequence = last;
        newestAdvancedAtMs = now;
        staleReported = false;
      } else if (!staleReported && !endList && now - newestAdvancedAtMs > staleFactor * targetDuration * 1000) {
        staleReported = true;
        observer.stale();
      }
      nextReloadAtMs = startedAtMs + (advanced ? targetDuration : targetDuration / 2) * 1000;
      continue;
    }

    // 2. The next segment, in order, when the playlist has it.
    const segment = nextSegment();
    if (segment !== null) {
      if (segment.map !== null && segment.map !== loadedMap) {
        /** @type {FetchResult} */
        const init = yield { op: 'get', url: withCmcd(resolveUrl(mediaUrl, segment.map), sessionId), what: 'init' };
        if (finished(init, 'init')) {
          loadedMap = segment.map;
        } else {
          yield* pause(now + retryDelayMs);
        }
        continue;
      }
      /** @type {FetchResult} */
      const result = yield { op: 'get', url: withCmcd(resolveUrl(mediaUrl, segment.uri), sessionId), what: 'segment' };
      if (finished(result, 'segment')) {
        failures = 0;
        nextSequence = segment.sequence + 1;
        summary.segments += 1;
        observer.segment(result.endMs - result.startMs, segment.duration);
        const appended = buffer.append(now, segment.duration);
        if (appended.stallStarted) observer.stallStarted();
        if (appended.stallEndedSeconds > 0) observer.stallEnded(appended.stallEndedSeconds);
        if (appended.started) {
          summary.startupMs = now - options.startMs;
          observer.startup(summary.startupMs);
        }
      } else {
        failures += 1;
        if (failures > segmentRetries) {
          failures = 0;
          nextSequence = segment.sequence + 1;
        } else {
          yield* pause(now + retryDelayMs);
        }
      }
      continue;
    }

    // 3. Nothing to load: the stream ended and everything is loaded, or wait for the next reload.
    if (endList) {
      summary.ended = true;
      // Play out what is buffered (bounded by the session's end); running out at the end is no stall.
      settle(now);
      const playedOutAtMs = Math.min(deadline, now + buffer.level * 1000);
      if (playedOutAtMs > now) yield* pause(playedOutAtMs);
      return summary;
    }
    yield* pause(Math.min(nextReloadAtMs, deadline));
  }

  settle(Math.min(now, deadline));
  return summary;

  /**
   * The session ends at `atMs`: a stall going on counts until then.
   * @param {number} atMs
   */
  function settle(atMs) {
    const finish = buffer.finish(atMs);
    if (finish.stallStarted) observer.stallStarted();
    if (finish.stallEndedSeconds > 0) observer.stallEnded(finish.stallEndedSeconds);
    summary.stalls = buffer.stalls;
    summary.stallSeconds = buffer.stallSeconds;
  }

  /** @returns {import('./playlist.js').Segment | null} */
  function nextSegment() {
    if (nextSequence < 0) return null;
    for (const candidate of available) {
      if (candidate.sequence < nextSequence) continue;
      if (candidate.sequence > nextSequence) {
        // The segment we wanted left the playlist before we got to it.
        observer.error('fell_behind', 'segment');
        nextSequence = candidate.sequence;
      }
      return candidate;
    }
    return null;
  }

  /**
   * @param {number} untilMs
   * @returns {Generator<ViewerAction, void, any>}
   */
  function* pause(untilMs) {
    if (untilMs <= now) return;
    now = yield { op: 'wait', untilMs: untilMs };
  }
}
