/**
 * One fill per path at a time, shared by the segment and playlist caches: a request for a path
 * being fetched waits for that fetch (nginx's `proxy_cache_lock`), so the herd that follows a new
 * segment or playlist costs one upstream request.
 */
import type { CachedSegment, FillWait, SegmentFill } from './segment-cache.ts';

export class SharedFills {
  private readonly filling = new Map<string, Promise<CachedSegment | null>>();
  /** Fills started. */
  fills = 0;
  /** Requests that waited for a fill another request started. */
  sharedFills = 0;

  /**
   * Joins the fill under way for `path`, or starts one with `fill`. `settle` sees its answer (null
   * when the fill failed) once, before any waiter does: that is where a cache keeps it.
   */
  join(path: string, fill: SegmentFill, settle: (answer: CachedSegment | null) => void): FillWait {
    const pending = this.filling.get(path);
    if (pending !== undefined) {
      this.sharedFills++;
      return { pending, shared: true };
    }
    this.fills++;
    const started = fill(path)
      .catch(() => null)
      .then((answer) => {
        this.filling.delete(path);
        settle(answer);
        return answer;
      });
    this.filling.set(path, started);
    return { pending: started, shared: false };
  }
}
