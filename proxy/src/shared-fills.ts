/**
 * One fill per key at a time, shared by the segment and playlist caches: a request for a key
 * being fetched waits for that fetch (nginx's `proxy_cache_lock`), so the herd that follows a new
 * segment or playlist costs one upstream request. The key is also what the fill asks for (a path,
 * or a playlist path with its canonical LL-HLS directives): N viewers blocked on the same next part
 * wait for one held upstream request.
 */
import type { CachedSegment, FillWait, SegmentFill } from './segment-cache.ts';

export class SharedFills {
  private readonly filling = new Map<string, Promise<CachedSegment | null>>();
  /** Fills started. */
  fills = 0;
  /** Requests that waited for a fill another request started. */
  sharedFills = 0;

  /**
   * Joins the fill under way for `key`, or starts one with `fill(key, held)` (`held`: web will hold
   * the answer until something is published). `settle` sees its answer (null when the fill failed)
   * once, before any waiter does: that is where a cache keeps it.
   */
  join(key: string, fill: SegmentFill, settle: (answer: CachedSegment | null) => void, held = false): FillWait {
    const pending = this.filling.get(key);
    if (pending !== undefined) {
      this.sharedFills++;
      return { pending, shared: true };
    }
    this.fills++;
    const started = fill(key, held)
      .catch(() => null)
      .then((answer) => {
        this.filling.delete(key);
        settle(answer);
        return answer;
      });
    this.filling.set(key, started);
    return { pending: started, shared: false };
  }
}
