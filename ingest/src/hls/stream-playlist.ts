/**
 * The public playlist of one stream (MEDIA_DIR/live/<stream>/index.m3u8) and the files it names.
 *
 * It outlives muxer runs and publisher sessions: a reconnecting publisher or a restarted ffmpeg
 * continues the same playlist (media sequence keeps increasing, EXT-X-DISCONTINUITY at the join,
 * target duration fixed for the playlist's life), so players carry on without a reload. A new
 * broadcast after an ended one continues the numbering too, so a sequence number never repeats.
 *
 * Every change is serialised through one queue: rename the segment in, rewrite the playlist
 * atomically, then delete what fell out of the window more than `deleteGraceSegments` ago.
 */
import { copyFile, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../../common/src/atomic-file.ts';
import { classifyMediaFile, PUBLIC_PLAYLIST } from '../../../common/src/media-layout.ts';
import type { Logger } from '../../../common/src/logger.ts';
import { chooseTargetDuration, fitsTargetDuration, parseMediaPlaylist, renderMediaPlaylist, type PlaylistSegment } from './media-playlist.ts';
import type { MuxerSegment } from './muxer-run.ts';
import { isRenditionName } from '../../../common/src/ladder-spec.ts';

export function isMasterPlaylist(text: string): boolean {
  return text.includes('#EXT-X-STREAM-INF:');
}

async function renditionPlaylists(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory() && isRenditionName(e.name)).map((e) => path.join(dir, e.name, PUBLIC_PLAYLIST));
}

export interface StreamPlaylistOptions {
  stream: string;
  /** MEDIA_DIR/live/<stream> */
  dir: string;
  windowSegments: number;
  deleteGraceSegments: number;
  /** The lowest target duration to announce (the muxer's -hls_time). */
  minSegmentSeconds: number;
  /** Fixed target duration; 0 = chosen from the first segment. */
  targetDurationOverride: number;
  logger: Logger;
  onSegmentPublished?: (segment: PlaylistSegment, fitsTarget: boolean) => void;
  /**
   * Told of every segment as soon as it is in the stream folder (the broadcast's archive).
   * Called synchronously, and whatever it does, it cannot delay or fail the live playlist.
   */
  archive?: ArchiveSink | null;
  /** Writing into the stream folder failed (the disk may be full); the change is retried with the next segment. */
  onWriteError?: (file: 'init' | 'playlist', err: Error) => void;
  /**
   * Numbering to continue from at least (see previousNumbering): the stream's earlier playlists
   * may be elsewhere (a ladder's rendition folders), and every rendition must start alike.
   */
  startAt?: PlaylistNumbering;
}

export interface PlaylistNumbering {
  /** Media sequence number of the next segment. */
  mediaSequence: number;
  discontinuitySequence: number;
}

export interface ArchiveSink {
  segmentPublished(segment: PlaylistSegment, liveDir: string, targetDuration: number): void;
}

interface RetiredFile {
  name: string;
  initName: string | null;
}

export class StreamPlaylist {
  private readonly window: PlaylistSegment[] = [];
  private readonly retired: RetiredFile[] = [];
  private readonly publishedInits = new Set<string>();
  private mediaSequence = 0;
  private discontinuitySequence = 0;
  private targetDuration: number | null = null;
  private ended = false;
  private breakBeforeNext = false;
  private currentRun: string | null = null;
  private queue: Promise<void> = Promise.resolve();
  /** Write errors already reported through onWriteError (logged there, once per outage). */
  private readonly reported = new WeakSet<object>();
  private readonly log: Logger;
  segmentsPublished = 0;
  lastSegmentAt: Date | null = null;

  private constructor(private readonly options: StreamPlaylistOptions) {
    this.log = options.logger.child({ component: 'playlist', stream: options.stream });
  }

  /** Opens the stream's folder, continuing the numbering of a playlist left there before. */
  static async open(options: StreamPlaylistOptions): Promise<StreamPlaylist> {
    const playlist = new StreamPlaylist(options);
    await mkdir(options.dir, { recursive: true });
    try {
      const previous = parseMediaPlaylist(await readFile(path.join(options.dir, PUBLIC_PLAYLIST), 'utf8'));
      if (previous.segments.length > 0) {
        playlist.mediaSequence = previous.mediaSequence + previous.segments.length;
        playlist.discontinuitySequence = previous.discontinuitySequence + previous.segments.filter((s) => s.discontinuity).length;
        playlist.breakBeforeNext = true;
      }
    } catch {
      /* no previous playlist: start at 0 */
    }
    const startAt = options.startAt;
    if (startAt && (startAt.mediaSequence > playlist.mediaSequence || startAt.discontinuitySequence > playlist.discontinuitySequence)) {
      playlist.mediaSequence = Math.max(playlist.mediaSequence, startAt.mediaSequence);
      playlist.discontinuitySequence = Math.max(playlist.discontinuitySequence, startAt.discontinuitySequence);
      playlist.breakBeforeNext = true;
    }
    // Files of an earlier broadcast are no longer referenced: retire them like slid-out segments.
    for (const name of await readdir(options.dir)) {
      if (name !== PUBLIC_PLAYLIST && classifyMediaFile(name) === 'segment') playlist.retired.push({ name, initName: null });
    }
    return playlist;
  }

  get state(): { mediaSequence: number; discontinuitySequence: number; targetDuration: number | null; segments: number; ended: boolean } {
    return {
      mediaSequence: this.mediaSequence,
      discontinuitySequence: this.discontinuitySequence,
      targetDuration: this.targetDuration,
      segments: this.window.length,
      ended: this.ended,
    };
  }

  /** Publishes a finished segment from a muxer run. Segments of a new run start after a discontinuity. */
  addSegment(segment: MuxerSegment): Promise<void> {
    return this.enqueue(() => this.publish(segment));
  }

  /** Marks the broadcast over (EXT-X-ENDLIST); the files stay until the next broadcast retires them. */
  end(): Promise<void> {
    return this.enqueue(async () => {
      if (this.ended) return;
      this.ended = true;
      if (this.targetDuration !== null) await this.write();
      this.log.info({ mediaSequence: this.mediaSequence + this.window.length }, 'playlist ended');
    });
  }

  /** Waits for every queued change to be on disk. */
  flush(): Promise<void> {
    return this.enqueue(async () => undefined);
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const next = this.queue.then(task).catch((err: unknown) => {
      if (typeof err === 'object' && err !== null && this.reported.has(err)) this.log.debug({ err }, 'playlist update failed');
      else this.log.error({ err }, 'playlist update failed');
    });
    this.queue = next;
    return next;
  }

  private async publish(segment: MuxerSegment): Promise<void> {
    if (this.ended) {
      this.log.warn({ segment: segment.name }, 'segment after the playlist ended, dropped');
      return;
    }
    const { dir } = this.options;
    // Segments were lost inside a run (not written completely): the timeline jumps here.
    if (segment.afterGap && this.window.length > 0) this.breakBeforeNext = true;
    if (segment.run !== this.currentRun) {
      // A new run: its own init segment, and a timeline break unless it is the very first.
      if (this.currentRun !== null || this.window.length > 0) this.breakBeforeNext = true;
      // The run counts as current only once its init is public: a segment must never name a missing init.
      await this.publishInit(segment);
      this.currentRun = segment.run;
    }
    try {
      await rename(segment.workPath, path.join(dir, segment.name));
    } catch (err) {
      this.log.error({ err, segment: segment.name }, 'segment vanished before it could be published');
      return;
    }
    if (this.targetDuration === null) {
      this.targetDuration = this.options.targetDurationOverride || chooseTargetDuration(segment.duration, this.options.minSegmentSeconds);
      this.log.info({ targetDuration: this.targetDuration, firstSegmentSeconds: segment.duration }, 'target duration fixed for this playlist');
    }
    const entry: PlaylistSegment = {
      uri: segment.name,
      duration: segment.duration,
      initUri: segment.initName,
      discontinuity: this.breakBeforeNext,
      programDateTime: segment.startedAt,
    };
    this.breakBeforeNext = false;
    const fits = fitsTargetDuration(entry.duration, this.targetDuration);
    if (!fits) {
      this.log.warn({ segment: entry.uri, duration: entry.duration, targetDuration: this.targetDuration }, 'segment longer than the target duration: is the keyframe interval steady?');
    }
    this.handToArchive(entry);
    this.window.push(entry);
    while (this.window.length > this.options.windowSegments) {
      const old = this.window.shift()!;
      this.mediaSequence += 1;
      if (old.discontinuity) this.discontinuitySequence += 1;
      this.retired.push({ name: old.uri, initName: old.initUri });
    }
    await this.write();
    this.segmentsPublished += 1;
    this.lastSegmentAt = new Date();
    this.options.onSegmentPublished?.(entry, fits);
    await this.deleteExpired();
  }

  private handToArchive(entry: PlaylistSegment): void {
    try {
      this.options.archive?.segmentPublished(entry, this.options.dir, this.targetDuration!);
    } catch (err) {
      this.log.error({ err }, 'archive refused a segment (the live playlist is not affected)');
    }
  }

  private async publishInit(segment: MuxerSegment): Promise<void> {
    const tmp = path.join(this.options.dir, `.${segment.initName}.tmp`);
    try {
      await copyFile(segment.initWorkPath, tmp);
      await rename(tmp, path.join(this.options.dir, segment.initName));
    } catch (err) {
      await rm(tmp, { force: true });
      this.reportWriteError('init', err);
      throw err;
    }
    this.publishedInits.add(segment.initName);
  }

  private async write(): Promise<void> {
    const text = renderMediaPlaylist({
      targetDuration: this.targetDuration!,
      mediaSequence: this.mediaSequence,
      discontinuitySequence: this.discontinuitySequence,
      segments: this.window,
      ended: this.ended,
    });
    try {
      await writeFileAtomic(path.join(this.options.dir, PUBLIC_PLAYLIST), text);
    } catch (err) {
      // The segment stays in the window: the next successful write lists it.
      this.reportWriteError('playlist', err);
      throw err;
    }
  }

  private reportWriteError(file: 'init' | 'playlist', err: unknown): void {
    if (!this.options.onWriteError || typeof err !== 'object' || err === null) return;
    this.reported.add(err);
    this.options.onWriteError(file, err as Error);
  }

  /** Deletes segments that left the playlist more than the grace ago, and inits nothing needs. */
  private async deleteExpired(): Promise<void> {
    const { dir, deleteGraceSegments } = this.options;
    while (this.retired.length > deleteGraceSegments) {
      const file = this.retired.shift()!;
      await rm(path.join(dir, file.name), { force: true });
    }
    const needed = new Set<string>();
    for (const s of this.window) needed.add(s.initUri);
    for (const r of this.retired) if (r.initName) needed.add(r.initName);
    for (const init of this.publishedInits) {
      if (needed.has(init)) continue;
      this.publishedInits.delete(init);
      await rm(path.join(dir, init), { force: true });
    }
  }
}

/**
 * Where the numbering of a stream's next broadcast starts: after the last segment of any playlist
 * left in its folder, the stream's own (media playlist or master) and its rendition folders'.
 */
export async function previousNumbering(dir: string): Promise<PlaylistNumbering> {
  const next: PlaylistNumbering = { mediaSequence: 0, discontinuitySequence: 0 };
  let names: string[] = [];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory() && isRenditionName(e.name)).map((e) => e.name);
  } catch {
    return next;
  }
  for (const file of [PUBLIC_PLAYLIST, ...names.map((n) => path.join(n, PUBLIC_PLAYLIST))]) {
    try {
      const previous = parseMediaPlaylist(await readFile(path.join(dir, file), 'utf8'));
      if (previous.segments.length === 0) continue;
      next.mediaSequence = Math.max(next.mediaSequence, previous.mediaSequence + previous.segments.length);
      next.discontinuitySequence = Math.max(next.discontinuitySequence, previous.discontinuitySequence + previous.segments.filter((s) => s.discontinuity).length);
    } catch {
      /* absent */
    }
  }
  return next;
}

/**
 * Removes what an earlier broadcast of the stream left that the new one does not use: rendition
 * folders not in `keep`, and (for a ladder broadcast) media files at the stream folder's top.
 * Such a broadcast has ended (ENDLIST): its viewers are told so and need no more segments.
 */
export async function removeStaleOutputs(dir: string, keep: ReadonlySet<string>, topLevelMedia: boolean, logger: Logger): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const stale = entry.isDirectory() ? isRenditionName(entry.name) && !keep.has(entry.name) : topLevelMedia && entry.name !== PUBLIC_PLAYLIST && classifyMediaFile(entry.name) !== null;
    if (!stale) continue;
    await rm(path.join(dir, entry.name), { recursive: true, force: true }).catch((err: unknown) => logger.warn({ err, file: entry.name }, 'cannot remove an earlier broadcast\'s files'));
  }
}

/**
 * After a crash, playlists may be left without EXT-X-ENDLIST: players would wait for segments
 * that never come. Called at start, before any publisher is accepted.
 */
export async function endAbandonedPlaylists(liveRoot: string, logger: Logger): Promise<string[]> {
  const ended: string[] = [];
  let streams: string[];
  try {
    streams = await readdir(liveRoot);
  } catch {
    return ended;
  }
  for (const stream of streams) {
    const file = path.join(liveRoot, stream, PUBLIC_PLAYLIST);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    // A master playlist (quality ladder) never ends itself: its renditions' media playlists do.
    const files = isMasterPlaylist(text) ? await renditionPlaylists(path.join(liveRoot, stream)) : [file];
    let endedOne = false;
    for (const media of files) {
      const mediaText = media === file ? text : await readFile(media, 'utf8').catch(() => null);
      if (mediaText === null || parseMediaPlaylist(mediaText).ended) continue;
      await writeFileAtomic(media, `${mediaText.trimEnd()}\n#EXT-X-ENDLIST\n`);
      endedOne = true;
    }
    if (endedOne) ended.push(stream);
  }
  if (ended.length) logger.warn({ streams: ended }, 'ended playlists left open by a previous run');
  return ended;
}
