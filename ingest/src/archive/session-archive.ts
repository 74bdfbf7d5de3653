/**
 * The recording of one broadcast (a publish session with its reconnects, until ENDLIST):
 * MEDIA_DIR/archive/<stream>/<session>/ with the init and media segments as the live playlist
 * published them, an EVENT playlist that only grows (and gets EXT-X-ENDLIST at the end, which makes
 * it a complete VOD), session.json and a thumbnail.
 *
 * Segments are hard-linked from live/<stream>/ right after they are published: no bytes are
 * copied and the live window deleting its name later leaves the archive's name (and the data)
 * in place. On another file system (EXDEV) or where links are refused, the file is copied.
 *
 * Nothing here may block or fail the live path: StreamPlaylist hands segments over synchronously
 * and returns; the work runs on this archive's own queue, and every failure is logged and
 * reported through onError (a metric), never thrown back.
 */
import { copyFile, link, mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../../common/src/atomic-file.ts';
import type { Logger } from '../../../common/src/logger.ts';
import { archiveSessionDir, PUBLIC_PLAYLIST, SESSION_FILE, THUMBNAIL_FILE, type SessionInfo } from '../../../common/src/media-layout.ts';
import { renderMediaPlaylist, type PlaylistSegment } from '../../../common/src/hls/media-playlist.ts';
import { makeThumbnail } from './thumbnail.ts';

export type ArchiveOperation = 'dir' | 'init' | 'segment' | 'playlist' | 'session' | 'thumbnail';

export interface SessionArchiveOptions {
  mediaDir: string;
  stream: string;
  session: string;
  startedAt: Date;
  logger: Logger;
  /** ffmpeg for the thumbnail; null = no thumbnail. */
  ffmpegPath: string | null;
  /** Counted in onair_ingest_archive_errors_total{op}. */
  onError?: (op: ArchiveOperation, err: unknown) => void;
  onSegmentArchived?: () => void;
}

/** The segment index whose frame becomes the thumbnail: the second (the first may start black). */
const THUMBNAIL_SEGMENT = 1;
/**
 * end() waits this long at most for a thumbnail still being made (it normally takes well under a
 * second); shutdown must stay inside its budget. A later thumbnail still updates session.json.
 */
const THUMBNAIL_WAIT_MS = 3_000;

export class SessionArchive {
  readonly dir: string;
  private readonly segments: PlaylistSegment[] = [];
  private readonly archivedInits = new Set<string>();
  private targetDuration: number | null = null;
  private breakBeforeNext = false;
  private ended: Date | null = null;
  private durationSeconds = 0;
  private thumbnail: string | null = null;
  private thumbnailRun: Promise<void> | null = null;
  private queue: Promise<void> = Promise.resolve();
  private dirReady = false;
  private readonly log: Logger;

  constructor(private readonly options: SessionArchiveOptions) {
    this.dir = archiveSessionDir(options.mediaDir, options.stream, options.session);
    this.log = options.logger.child({ component: 'archive', stream: options.stream, session: options.session });
  }

  get session(): string {
    return this.options.session;
  }

  get info(): SessionInfo {
    return {
      stream: this.options.stream,
      session: this.options.session,
      started: this.options.startedAt.toISOString(),
      ended: this.ended?.toISOString() ?? null,
      durationSeconds: Math.round(this.durationSeconds * 1000) / 1000,
      segments: this.segments.length,
      thumbnail: this.thumbnail,
    };
  }

  /**
   * A segment the live playlist has just published in `liveDir` (its init is there too).
   * Synchronous and never throws: the copy happens later, on the archive's queue.
   */
  segmentPublished(segment: PlaylistSegment, liveDir: string, targetDuration: number): void {
    this.enqueue('segment', () => this.archive(segment, liveDir, targetDuration));
  }

  /** The broadcast is over: ENDLIST, final session.json. Resolves when written; never rejects. */
  end(): Promise<void> {
    return this.enqueue('playlist', async () => {
      if (this.ended) return;
      this.ended = new Date();
      // A broadcast too short for the usual thumbnail segment: take the first one.
      if (!this.thumbnailRun && this.segments.length > 0) this.startThumbnail(this.segments[0]!);
      if (this.thumbnailRun) await Promise.race([this.thumbnailRun, new Promise((r) => setTimeout(r, THUMBNAIL_WAIT_MS).unref())]);
      if (this.segments.length > 0) await this.writePlaylist();
      await this.writeSession();
      this.log.info({ segments: this.segments.length, durationSeconds: this.info.durationSeconds }, 'broadcast archived');
    });
  }

  /** Waits for everything queued so far (tests). */
  flush(): Promise<void> {
    return this.enqueue('playlist', async () => undefined);
  }

  private enqueue(op: ArchiveOperation, task: () => Promise<void>): Promise<void> {
    const next = this.queue.then(task).catch((err: unknown) => this.failed(op, err));
    this.queue = next;
    return next;
  }

  private failed(op: ArchiveOperation, err: unknown): void {
    this.log.error({ err, op }, 'archive write failed (the live stream is not affected)');
    try {
      this.options.onError?.(op, err);
    } catch {
      /* a metric callback must not break the queue */
    }
  }

  private async archive(segment: PlaylistSegment, liveDir: string, targetDuration: number): Promise<void> {
    if (this.ended) return;
    if (!this.dirReady) {
      await mkdir(this.dir, { recursive: true });
      this.dirReady = true;
      await this.writeSession();
    }
    // The first archived segment has no break before it, whatever the live playlist had
    // (a new broadcast continues the live playlist after a discontinuity; the archive starts fresh).
    const discontinuity = this.segments.length > 0 && (segment.discontinuity || this.breakBeforeNext);
    try {
      if (!this.archivedInits.has(segment.initUri)) {
        await linkOrCopy(path.join(liveDir, segment.initUri), path.join(this.dir, segment.initUri));
        this.archivedInits.add(segment.initUri);
      }
    } catch (err) {
      // Without its init the segment is useless; the timeline has a hole where it would have been.
      this.breakBeforeNext = true;
      this.failed('init', err);
      return;
    }
    try {
      await linkOrCopy(path.join(liveDir, segment.uri), path.join(this.dir, segment.uri));
    } catch (err) {
      this.breakBeforeNext = true;
      this.failed('segment', err);
      return;
    }
    this.breakBeforeNext = false;
    // Fixed for the playlist's life (RFC 8216 §6.2.1): the live playlist's, which never changes during a broadcast.
    this.targetDuration ??= targetDuration;
    this.segments.push({ ...segment, discontinuity });
    this.durationSeconds += segment.duration;
    this.options.onSegmentArchived?.();
    if (this.segments.length === THUMBNAIL_SEGMENT + 1) this.startThumbnail(segment);
    await this.writePlaylist();
    await this.writeSession();
  }

  private async writePlaylist(): Promise<void> {
    const text = renderMediaPlaylist({
      playlistType: 'EVENT',
      targetDuration: this.targetDuration!,
      mediaSequence: 0,
      discontinuitySequence: 0,
      segments: this.segments,
      ended: this.ended !== null,
    });
    await writeFileAtomic(path.join(this.dir, PUBLIC_PLAYLIST), text).catch((err: unknown) => {
      // The next segment rewrites it with everything; only this version is lost.
      this.failed('playlist', err);
    });
  }

  private async writeSession(): Promise<void> {
    await writeFileAtomic(path.join(this.dir, SESSION_FILE), `${JSON.stringify(this.info, null, 2)}\n`).catch((err: unknown) => this.failed('session', err));
  }

  /** In the background, off the queue: segments keep being archived while ffmpeg decodes a frame. */
  private startThumbnail(segment: PlaylistSegment): void {
    const ffmpeg = this.options.ffmpegPath;
    if (!ffmpeg) return;
    const init = path.join(this.dir, segment.initUri);
    const media = path.join(this.dir, segment.uri);
    this.thumbnailRun = makeThumbnail(ffmpeg, init, media, path.join(this.dir, THUMBNAIL_FILE)).then(
      () => {
        this.thumbnail = THUMBNAIL_FILE;
        // While recording, session.json is rewritten with the next segment; after the end, now.
        if (this.ended) void this.enqueue('session', () => this.writeSession());
      },
      (err: unknown) => this.failed('thumbnail', err),
    );
  }
}

/** A hard link (free on the same file system); a copy where links do not work. Replaces nothing. */
export async function linkOrCopy(from: string, to: string): Promise<'link' | 'copy' | 'exists'> {
  try {
    await link(from, to);
    return 'link';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return 'exists';
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EMLINK') throw err;
  }
  const tmp = path.join(path.dirname(to), `.${path.basename(to)}.tmp`);
  try {
    await copyFile(from, tmp);
    await rename(tmp, to);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return 'copy';
}
