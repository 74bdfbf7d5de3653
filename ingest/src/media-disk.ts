/**
 * Whether ingest can write to MEDIA_DIR, seen from the writes themselves: ingest writes every
 * public file (parts, segments, inits, playlists, live.json), so ENOSPC and friends come back to
 * it. One clear error when writes start failing, debug lines while they keep failing, one line when
 * they work again; metrics for alerting. The publisher stays connected throughout.
 */
import { statfsSync } from 'node:fs';
import type { Logger } from '../../common/src/logger.ts';
import type { IngestMetrics } from './metrics.ts';

export type MediaFile = 'part' | 'segment' | 'init' | 'playlist' | 'live-state';

/** Below this much free space a failed or truncated write is put down to a full disk. */
const LOW_SPACE_BYTES = 1024 * 1024;

export class MediaDiskHealth {
  private failingSince: number | null = null;
  private failures = 0;
  private readonly log: Logger;

  constructor(
    private readonly mediaDir: string,
    private readonly metrics: IngestMetrics,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'media-disk' });
  }

  /** Free bytes for ingest on the media file system, null when it cannot be read. */
  freeBytes(): number | null {
    try {
      const stats = statfsSync(this.mediaDir);
      return stats.bavail * stats.bsize;
    } catch {
      return null;
    }
  }

  writeFailed(stream: string | null, file: MediaFile, cause: Error | string): void {
    this.metrics.mediaWriteErrors.inc({ stream: stream ?? '', file });
    this.failures += 1;
    const code = typeof cause === 'string' ? undefined : (cause as NodeJS.ErrnoException).code;
    const detail = typeof cause === 'string' ? cause : cause.message;
    const freeBytes = this.freeBytes();
    const full = code === 'ENOSPC' || code === 'EDQUOT' || (freeBytes !== null && freeBytes < LOW_SPACE_BYTES);
    if (full) this.metrics.mediaDiskFull.set(1);
    const fields = { stream, file, detail, freeBytes, mediaDir: this.mediaDir };
    if (this.failingSince !== null) {
      this.log.debug(fields, 'media write failed');
      return;
    }
    this.failingSince = Date.now();
    this.log.error(
      fields,
      full
        ? 'media disk full: segments cannot be written; publishers stay connected, the playlist continues once space is freed'
        : 'cannot write media files; publishers stay connected, the playlist continues once writes work again',
    );
  }

  /** A write into MEDIA_DIR worked: the outage, if any, is over. */
  writeSucceeded(): void {
    if (this.failingSince === null) return;
    this.log.warn({ outageMs: Date.now() - this.failingSince, failedWrites: this.failures, freeBytes: this.freeBytes() }, 'media writes work again');
    this.failingSince = null;
    this.failures = 0;
    this.metrics.mediaDiskFull.set(0);
  }
}
