/**
 * Least-recently-used cache of segment bodies, bounded by total bytes.
 * Segment names are never reused, so an entry never goes stale; segments deleted from disk are
 * simply no longer requested and age out. All viewers of a stream want the same few newest
 * segments, so a small cache answers nearly every request from memory.
 */
export class SegmentCache {
  /** Map iteration order is insertion order: the first key is the least recently used. */
  private readonly entries = new Map<string, Buffer>();
  private totalBytes = 0;
  private evictionCount = 0;

  constructor(readonly maxBytes: number) {}

  get(key: string): Buffer | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  /** Stores `value` unless it alone exceeds the budget; returns whether it was stored. */
  set(key: string, value: Buffer): boolean {
    if (value.length > this.maxBytes) return false;
    this.delete(key);
    this.entries.set(key, value);
    this.totalBytes += value.length;
    for (const [oldest, old] of this.entries) {
      if (this.totalBytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.totalBytes -= old.length;
      this.evictionCount++;
    }
    return true;
  }

  delete(key: string): boolean {
    const value = this.entries.get(key);
    if (value === undefined) return false;
    this.entries.delete(key);
    this.totalBytes -= value.length;
    return true;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get size(): number {
    return this.entries.size;
  }

  get evictions(): number {
    return this.evictionCount;
  }
}
