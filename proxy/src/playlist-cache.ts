/**
 * Playlists held at the proxy for a moment (PLAYLIST_CACHE_MS, 100 ms by default): every viewer
 * reloads its playlist about once per segment, so at 1 000 viewers half of all requests are
 * playlist reloads, each one relayed to a web replica. Held for 100 ms, a stream's playlist costs
 * about ten upstream requests per second whatever the audience. The delay this adds to noticing a
 * new segment (up to the TTL; web holds playlists 100 ms too) stays far below half a target
 * duration, the staleness DESIGN.md allows.
 *
 * Same shapes as the segment cache (one shared fill per playlist); only 200 and 404 answers are held
 * (a 404 is what viewers waiting for a broadcast poll); others answer only those who waited.
 */
import { performance } from 'node:perf_hooks';
import type { CachedSegment, FillWait, SegmentFill } from './segment-cache.ts';
import { SharedFills } from './shared-fills.ts';

const MAX_PLAYLISTS = 2_000;

interface Held {
  answer: CachedSegment;
  expiresAt: number;
}

export interface PlaylistCacheStats {
  hits: number;
  sharedFills: number;
  fills: number;
  entries: number;
}

export class PlaylistCache {
  private readonly held = new Map<string, Held>();
  private readonly fills = new SharedFills();
  private hits = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get enabled(): boolean {
    return this.ttlMs > 0;
  }

  lookup(path: string, fill: SegmentFill): CachedSegment | FillWait {
    const entry = this.held.get(path);
    if (entry !== undefined) {
      if (entry.expiresAt > this.now()) {
        this.hits++;
        return entry.answer;
      }
      this.held.delete(path);
    }
    return this.fills.join(path, fill, (answer) => {
      if (answer === null || (answer.status !== 200 && answer.status !== 404)) return;
      if (this.held.size >= MAX_PLAYLISTS) this.held.clear();
      this.held.set(path, { answer, expiresAt: this.now() + this.ttlMs });
    });
  }

  stats(): PlaylistCacheStats {
    return { hits: this.hits, sharedFills: this.fills.sharedFills, fills: this.fills.fills, entries: this.held.size };
  }

  clear(): void {
    this.held.clear();
  }
}
