import { SingleFlight } from './single-flight.ts';

/**
 * A folder listing (recordings, uploads) re-read at most once per `ttlMs`, however many requests
 * ask: one directory walk at a time, the others wait for it; between walks, the last result.
 */
export class CachedListing<T> {
  private cached: { at: number; list: T[] } | null = null;
  private readonly flight = new SingleFlight<T[]>();

  constructor(
    private readonly ttlMs: number,
    private readonly scan: () => Promise<T[]>,
  ) {}

  get(): Promise<T[]> {
    if (this.cached && performance.now() - this.cached.at < this.ttlMs) return Promise.resolve(this.cached.list);
    return this.flight.run('all', async () => {
      const at = performance.now();
      const list = await this.scan();
      this.cached = { at, list };
      return list;
    });
  }
}
