import { loadMediaFile, type LoadedFile } from './media-files.ts';
import type { SegmentCache } from './segment-cache.ts';
import { SingleFlight } from './single-flight.ts';

/**
 * Live init files, segments and parts: from the in-memory LRU when there, else one read shared by
 * everyone asking at the same moment (a new part is requested by every viewer at once). Names
 * are never reused, so a cached body never goes stale. Keys are absolute paths of validated names.
 */
export class LiveSegments {
  private readonly reads = new SingleFlight<LoadedFile | null>();

  constructor(private readonly cache: SegmentCache) {}

  cached(file: string): Buffer | undefined {
    return this.cache.get(file);
  }

  /** Null when the file does not exist (yet, or any more). */
  load(file: string): Promise<LoadedFile | null> {
    return this.reads.run(file, async () => {
      const loaded = await loadMediaFile(file);
      if (loaded?.kind === 'buffer') this.cache.set(file, loaded.data);
      return loaded;
    });
  }

  /** A body to hand to many held requests at once; null when missing (or too large to hold, which a part never is). */
  async loadBody(file: string): Promise<Buffer | null> {
    const cached = this.cache.get(file);
    if (cached !== undefined) return cached;
    const loaded = await this.load(file);
    return loaded?.kind === 'buffer' ? loaded.data : null;
  }
}
