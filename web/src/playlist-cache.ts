import { SingleFlight } from './single-flight.ts';

/**
 * Playlists change every segment, so they are cached only for a moment: long enough that a burst
 * of viewers polling the same playlist costs one file read, short enough that an atomic rewrite
 * is visible within ~100 ms (DESIGN.md: never stale by more than half a target duration).
 * Misses (playlist not there yet) are cached the same way: viewers waiting for a broadcast poll too.
 */
export const PLAYLIST_TTL_MS = 100;
const MAX_ENTRIES = 1_000;

interface Entry {
  body: Buffer | null;
  expiresAt: number;
}

export class PlaylistCache {
  private readonly entries = new Map<string, Entry>();
  private readonly flights = new SingleFlight<Buffer | null>();

  constructor(
    private readonly load: (key: string) => Promise<Buffer | null>,
    private readonly ttlMs = PLAYLIST_TTL_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** A fresh entry, synchronously (undefined when there is none): the common case costs no promise. */
  peek(key: string): Buffer | null | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > this.now()) return entry.body;
    this.entries.delete(key);
    return undefined;
  }

  /** The playlist body, or null when it does not exist; reads the file at most once per TTL. */
  get(key: string): Promise<Buffer | null> {
    const fresh = this.peek(key);
    if (fresh !== undefined) return Promise.resolve(fresh);
    return this.flights.run(key, async () => {
      // Freshness counts from when the read started, so no answer is older than the TTL plus one read.
      const startedAt = this.now();
      const body = await this.load(key);
      this.remember(key, { body, expiresAt: startedAt + this.ttlMs });
      return body;
    });
  }

  get size(): number {
    return this.entries.size;
  }

  private remember(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (this.entries.size <= MAX_ENTRIES) return;
    // Bounded: a client asking for many made-up stream names must not grow memory without limit.
    const now = this.now();
    for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
    for (const k of this.entries.keys()) {
      if (this.entries.size <= MAX_ENTRIES) break;
      this.entries.delete(k);
    }
  }
}
