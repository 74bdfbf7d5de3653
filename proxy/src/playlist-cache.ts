/**
 * Playlists held at the proxy for a moment, and the herd of requests for one playlist turned into
 * one upstream request.
 *
 * Plain reloads (no directives): held PLAYLIST_CACHE_MS (100 ms by default). Every viewer reloads
 * its playlist about once per segment, so at 1 000 viewers half of all requests are playlist
 * reloads; held for 100 ms, a stream's playlist costs about ten upstream requests per second
 * whatever the audience. The delay this adds to noticing a new segment stays far below half a
 * target duration, the staleness DESIGN.md allows.
 *
 * LL-HLS blocking reloads (`?_HLS_msn=M&_HLS_part=N`, docs/low-latency-hls.md "The proxy"): the key
 * is the path plus the canonical directives (hls-directives.ts), and the fill asks web for exactly
 * that, so the N viewers waiting for the next part wait for one held upstream request and are all
 * answered when it is. A directive answer is held for its `max-age` (at most 2 s: every viewer
 * asks for the next part by a new URL, so holding it longer only helps late tune-ins), never when
 * it is `no-store` (web's "hold ran out, here is the current playlist": it answers only the
 * requests that waited for that fill), `PLAYLIST_CACHE_MS` when it says neither.
 *
 * Only 200 and 404 answers are held (a 404 is what viewers waiting for a broadcast poll); others
 * answer only those who waited. No `Age` header is ever added: hls.js reads it for "CDN tune-in"
 * and would ask further ahead than the edge is.
 *
 * Bounded: at most `maxEntries` answers, least recently used out first, expired ones dropped when
 * the cache is full and by sweep(). A flood of made-up paths (each a held 404) only pushes out
 * answers nobody asked for in the meantime; a live playlist asked for every few milliseconds stays.
 */
import { performance } from 'node:perf_hooks';
import { directiveHoldMs, isBlockingDirective } from './hls-directives.ts';
import type { CachedSegment, FillWait, SegmentFill } from './segment-cache.ts';
import { SharedFills } from './shared-fills.ts';

export const MAX_PLAYLISTS = 4_096;

/** At most one scan for expired entries per this many ms when the cache is full (each is O(entries)). */
const FULL_SCAN_INTERVAL_MS = 1_000;

interface Held {
  answer: CachedSegment;
  expiresAt: number;
}

/** Counters of one kind of request (with or without directives). */
export interface PlaylistOutcomes {
  hits: number;
  /** Requests that waited for a fill another request started. */
  sharedFills: number;
  fills: number;
}

export interface PlaylistCacheStats extends PlaylistOutcomes {
  /** The same counters, split: requests with LL-HLS directives (`yes`) and plain reloads (`no`). */
  byDirectives: { yes: PlaylistOutcomes; no: PlaylistOutcomes };
  /** Requests with malformed directives: not cached, forwarded as sent. */
  malformed: number;
  /** Answers dropped to stay within `maxEntries` (expired ones not counted). */
  evictions: number;
  entries: number;
}

export interface PlaylistCacheOptions {
  now?: () => number;
  /** Answers held at most (MAX_PLAYLISTS). */
  maxEntries?: number;
  /** Sees every 200 playlist answer a fill brought (preload-hints.ts reads the hint from it). */
  onFilled?: (path: string, answer: CachedSegment) => void;
}

export class PlaylistCache {
  /** Map order is recency order: a hit moves its entry to the end, eviction takes from the front. */
  private readonly held = new Map<string, Held>();
  private readonly plainFills = new SharedFills();
  private readonly directiveFills = new SharedFills();
  private plainHits = 0;
  private directiveHits = 0;
  private malformedCount = 0;
  private evictions = 0;
  private lastFullScan = -Infinity;

  private readonly now: () => number;
  private readonly maxEntries: number;
  private readonly onFilled: (path: string, answer: CachedSegment) => void;

  constructor(
    /** PLAYLIST_CACHE_MS: how long a plain answer is held; 0 turns the cache off. */
    private readonly ttlMs: number,
    options: PlaylistCacheOptions = {},
  ) {
    this.now = options.now ?? (() => performance.now());
    this.maxEntries = options.maxEntries ?? MAX_PLAYLISTS;
    this.onFilled = options.onFilled ?? (() => {});
  }

  get enabled(): boolean {
    return this.ttlMs > 0;
  }

  /** The key of `path` with `directives` (canonical, '' for none). */
  static key(path: string, directives: string): string {
    return directives === '' ? path : `${path}?${directives}`;
  }

  /**
   * The held answer for `path` + canonical `directives` (a hit), or the fill to wait for: the one
   * under way for the same key, or a new one by `fill` asking for exactly that key.
   */
  lookup(path: string, directives: string, fill: SegmentFill): CachedSegment | FillWait {
    const key = PlaylistCache.key(path, directives);
    const withDirectives = directives !== '';
    const entry = this.held.get(key);
    if (entry !== undefined) {
      if (entry.expiresAt > this.now()) {
        this.held.delete(key);
        this.held.set(key, entry);
        if (withDirectives) this.directiveHits++;
        else this.plainHits++;
        return entry.answer;
      }
      this.held.delete(key);
    }
    const fills = withDirectives ? this.directiveFills : this.plainFills;
    return fills.join(
      key,
      fill,
      (answer) => {
        if (answer === null) return;
        if (answer.status === 200) this.onFilled(path, answer);
        if (answer.status !== 200 && answer.status !== 404) return;
        const holdMs = withDirectives ? directiveHoldMs(answer.headers['cache-control'], this.ttlMs) : this.ttlMs;
        if (holdMs > 0) this.store(key, { answer, expiresAt: this.now() + holdMs });
      },
      withDirectives && isBlockingDirective(directives),
    );
  }

  /** A request with malformed directives went past the cache (counted for the metrics). */
  bypassed(): void {
    this.malformedCount++;
  }

  /** Drops expired answers (run periodically; lookups drop the ones they meet). */
  sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.held) if (entry.expiresAt <= now) this.held.delete(key);
  }

  stats(): PlaylistCacheStats {
    const yes = { hits: this.directiveHits, sharedFills: this.directiveFills.sharedFills, fills: this.directiveFills.fills };
    const no = { hits: this.plainHits, sharedFills: this.plainFills.sharedFills, fills: this.plainFills.fills };
    return {
      hits: yes.hits + no.hits,
      sharedFills: yes.sharedFills + no.sharedFills,
      fills: yes.fills + no.fills,
      byDirectives: { yes, no },
      malformed: this.malformedCount,
      evictions: this.evictions,
      entries: this.held.size,
    };
  }

  clear(): void {
    this.held.clear();
  }

  private store(key: string, entry: Held): void {
    this.held.delete(key);
    if (this.held.size >= this.maxEntries) {
      const now = this.now();
      if (now - this.lastFullScan >= FULL_SCAN_INTERVAL_MS) {
        this.lastFullScan = now;
        this.sweep();
      }
      for (const oldest of this.held.keys()) {
        if (this.held.size < this.maxEntries) break;
        this.held.delete(oldest);
        this.evictions++;
      }
    }
    this.held.set(key, entry);
  }
}
