/**
 * Media segments held in the proxy's memory, so a segment that 500 viewers fetch crosses the
 * proxy → web hop once, not 500 times (the edge cache a CDN or nginx `proxy_cache` would be).
 *
 * - Only what the contract makes safe: GET/HEAD of a segment name, no Range, and an upstream
 *   answer `200` with `Cache-Control: … immutable` (segment names are never reused: DESIGN.md).
 * - One fill per segment: requests arriving while it is being fetched wait for that fetch (nginx's
 *   `proxy_cache_lock`), so the herd that follows a new segment costs one upstream request.
 * - Bounded: least recently used segments leave first once `maxBytes` is reached; a segment larger
 *   than `maxEntryBytes` is never held (it is forwarded instead).
 * - A fill that is not cacheable (a 404 for a segment not written yet, a 5xx) answers the requests
 *   that waited for it and is not held; a fill that failed (no backend answered) or whose body is too
 *   large to hold resolves to null, and those requests are forwarded with the forwarder's retry and
 *   error handling.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { performance } from 'node:perf_hooks';
import { SharedFills } from './shared-fills.ts';

/** The access record's `backend` for an answer from the cache. */
export const SEGMENT_CACHE_BACKEND = 'cache';

export interface CachedSegment {
  status: number;
  /** Response headers to replay (content-type, cache-control, content-length, etag, last-modified). */
  headers: OutgoingHttpHeaders;
  body: Buffer;
  /** The backend that answered the fill, for the access record of the request that caused it. */
  filledFrom: string;
  /** A 200 marked immutable: held for the next requests. Anything else answers only the requests that waited for it. */
  cacheable: boolean;
}

/**
 * Fetches one segment or playlist from a backend; null when it failed or was too large to read into
 * memory. `target` is the path (for a playlist, with its canonical directives); `held` says web will
 * hold the answer until something is published (a blocking playlist reload, a hinted part).
 */
export type SegmentFill = (target: string, held: boolean) => Promise<CachedSegment | null>;

/** A request that has to wait for a fill: `shared` when another request started it. */
export interface FillWait {
  pending: Promise<CachedSegment | null>;
  shared: boolean;
}

export interface SegmentCacheStats {
  hits: number;
  /** Requests that waited for a fill another request started. */
  sharedFills: number;
  fills: number;
  /** Fills that ended without a segment to hold (error, not 200, not immutable, too big). */
  uncacheable: number;
  /** Dropped to stay within the size limit. */
  evictions: number;
  /** Dropped by sweep() after nobody asked for them for a while. */
  idleEvictions: number;
  entries: number;
  bytes: number;
}

export class SegmentCache {
  /** Map order is recency order: a hit moves its entry to the end; eviction takes from the front. */
  private readonly entries = new Map<string, CachedSegment>();
  /** When each held segment was last asked for (same keys as `entries`). */
  private readonly lastUsed = new Map<string, number>();
  private readonly fills = new SharedFills();
  private bytes = 0;
  private readonly counts = { hits: 0, uncacheable: 0, evictions: 0, idleEvictions: 0 };

  constructor(
    private readonly maxBytes: number,
    private readonly maxEntryBytes: number,
    /** A segment nobody asked for this long is dropped by sweep(): live segments are wanted for a minute, then never again. */
    private readonly idleMs = 120_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get enabled(): boolean {
    return this.maxBytes > 0;
  }

  /**
   * The held segment (a hit, answered at once), or the fill to wait for: the one under way, or a new
   * one by `fill` (`held`: a hinted part, which web holds until it is written). A fill resolving to
   * null means: forward the request instead.
   */
  lookup(path: string, fill: SegmentFill, held = false): CachedSegment | FillWait {
    const hit = this.entries.get(path);
    if (hit !== undefined) {
      this.entries.delete(path);
      this.entries.set(path, hit);
      this.lastUsed.set(path, this.now());
      this.counts.hits++;
      return hit;
    }
    return this.fills.join(path, fill, (segment) => {
      if (segment === null || !segment.cacheable || segment.body.length > this.maxEntryBytes) this.counts.uncacheable++;
      else this.store(path, segment);
    }, held);
  }

  stats(): SegmentCacheStats {
    return { ...this.counts, sharedFills: this.fills.sharedFills, fills: this.fills.fills, entries: this.entries.size, bytes: this.bytes };
  }

  clear(): void {
    this.entries.clear();
    this.lastUsed.clear();
    this.bytes = 0;
  }

  /** Drops segments idle for `idleMs` (run periodically): memory follows what is being watched. */
  sweep(): void {
    const cutoff = this.now() - this.idleMs;
    // Recency order: the least recently used come first, so the scan stops at the first fresh one.
    for (const [path, entry] of this.entries) {
      if ((this.lastUsed.get(path) ?? 0) > cutoff) break;
      this.drop(path, entry);
      this.counts.idleEvictions++;
    }
  }

  private drop(path: string, entry: CachedSegment): void {
    this.entries.delete(path);
    this.lastUsed.delete(path);
    this.bytes -= entry.body.length;
  }

  private store(path: string, segment: CachedSegment): void {
    const previous = this.entries.get(path);
    if (previous !== undefined) this.drop(path, previous);
    this.entries.set(path, segment);
    this.lastUsed.set(path, this.now());
    this.bytes += segment.body.length;
    for (const [oldest, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.drop(oldest, entry);
      this.counts.evictions++;
    }
  }
}

/** Whether an upstream answer may be held: 200, immutable (segment names are never reused), not private. */
export function isCacheableSegmentResponse(status: number | undefined, headers: Record<string, string | string[] | undefined>): boolean {
  if (status !== 200) return false;
  const cacheControl = headers['cache-control'];
  return typeof cacheControl === 'string' && /\bimmutable\b/i.test(cacheControl) && !/\b(no-store|private)\b/i.test(cacheControl);
}

/** Headers a cached segment is replayed with (hop-by-hop and per-response ones left out). */
export function replayedHeaders(headers: Record<string, string | string[] | undefined>, bodyLength: number): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { 'content-length': String(bodyLength) };
  for (const name of ['content-type', 'cache-control', 'etag', 'last-modified', 'access-control-allow-origin', 'timing-allow-origin', 'retry-after']) {
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}
