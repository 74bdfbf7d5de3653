/**
 * One media playlist and the files it names: MEDIA_DIR/live/<stream>/index.m3u8 (passthrough) or
 * live/<stream>/<rendition>/index.m3u8 (quality ladder), with its init, part and segment files.
 *
 * Its state outlives muxer runs and publisher sessions: a reconnecting publisher or a restarted
 * ffmpeg continues the same playlist (media sequence keeps increasing, EXT-X-DISCONTINUITY at the
 * join, target duration and part target fixed for the playlist's life), so players carry on
 * without a reload. A new broadcast after an ended one continues the numbering too, so a sequence
 * number never repeats.
 *
 * Driven by StreamPlaylist, one step at a time, in two phases so several renditions stay in
 * lockstep: `stage` writes the files a step needs (init, the part, the segment it completes) and
 * says whether that worked; only when every rendition staged it does `commit` change what the
 * playlist lists, then `writePlaylist` renames the new text into place. A file is therefore always
 * complete on disk before any playlist names it. A step that could not be staged everywhere is
 * `discard`ed everywhere: the open segment is dropped and the playlist resumes at the next segment
 * after a discontinuity (a full disk loses media, never the playlist's consistency).
 */
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../../common/src/atomic-file.ts';
import { chooseTargetDuration, fitsTargetDuration, parseMediaPlaylist, playlistPosition, renderMediaPlaylist, type PlaylistPart, type PlaylistSegment, type RenditionReport } from '../../../common/src/hls/media-playlist.ts';
import { classifyMediaFile, PUBLIC_PLAYLIST } from '../../../common/src/media-layout.ts';
import type { Logger } from '../../../common/src/logger.ts';
import type { CutPart } from '../muxer/part-cutter.ts';
import { partTargetFor } from '../muxer/part-cutter.ts';

export interface PlaylistNumbering {
  /** Media sequence number of the next segment. */
  mediaSequence: number;
  discontinuitySequence: number;
}

export interface ArchiveSink {
  segmentPublished(segment: PlaylistSegment, liveDir: string, targetDuration: number): void;
}

export type PlaylistFile = 'init' | 'part' | 'segment' | 'playlist';

export interface PlaylistTiming {
  /** A keyframe may start a new segment once the open one is this long (HLS_SEGMENT_SECONDS). */
  minSegmentSeconds: number;
  /** Fixed target duration; 0 = low latency: LOW_LATENCY_TARGET_DURATION (or more), classic: from the first segment. */
  targetDurationOverride: number;
  /** Nominal part duration (HLS_PART_SECONDS); null = classic HLS, no parts. */
  partSeconds: number | null;
  /** PART-HOLD-BACK in part targets (HLS_PART_HOLD_BACK_PARTS). */
  partHoldBackParts: number;
}

export interface RenditionPlaylistOptions extends PlaylistTiming {
  stream: string;
  /** The rendition folder's name; null for a passthrough stream's own folder. */
  rendition: string | null;
  /** Absolute folder: MEDIA_DIR/live/<stream>[/<rendition>]. */
  dir: string;
  /** The playlist's path relative to MEDIA_DIR (`live/<stream>/index.m3u8`), for the playlist feed. */
  feedFile: string;
  windowSegments: number;
  deleteGraceSegments: number;
  logger: Logger;
  /** Told of every segment as soon as it is listed (the recording); never delays or fails the live playlist. */
  archive?: ArchiveSink | null;
  /** Numbering to continue from at least (a ladder's renditions all start alike). */
  startAt?: PlaylistNumbering;
  onWriteError?: (file: PlaylistFile, err: Error) => void;
  onWriteOk?: () => void;
  /** A new playlist text is in place (the playlist feed). */
  onPlaylistWritten?: (feedFile: string, text: string) => void;
  onSegmentListed?: (segment: PlaylistSegment, fitsTarget: boolean) => void;
  /** A part longer than the part target (an irregular frame interval). */
  onPartOverTarget?: (duration: number, partTarget: number) => void;
}

/** Low-latency playlists fix their target duration before the first segment ends (the first part is listed at once). */
export const LOW_LATENCY_TARGET_DURATION = 2;

interface WindowSegment extends PlaylistSegment {
  files: string[];
}

interface OpenSegment {
  run: string;
  /** The run's segment number (its file name). */
  index: number;
  initUri: string;
  discontinuity: boolean;
  programDateTime: Date | null;
  parts: PlaylistPart[];
  /** Seconds: the sum of its parts. */
  duration: number;
  /** The parts' bytes: the segment file is their concatenation. */
  bytes: Buffer[];
  files: string[];
  /** The segment's file is written (staged) and waits for the commit that lists it. */
  fileWritten: boolean;
}

/** What one step of a run brings: its init, one part (with the time it started), or its end. */
export type PlaylistStep =
  | { kind: 'part'; run: string; init: Buffer; part: CutPart; programDateTime: Date | null; partTarget: number | null }
  | { kind: 'run-ended'; run: string }
  /** The broadcast ends: the open segment, whatever run it belongs to, becomes a segment. */
  | { kind: 'close' };

export type StageResult = 'ok' | 'failed' | 'skip';

export class RenditionPlaylist {
  private readonly window: WindowSegment[] = [];
  private readonly retired: Array<{ files: string[]; initName: string }> = [];
  private readonly publishedInits = new Set<string>();
  private open: OpenSegment | null = null;
  private mediaSequence = 0;
  private discontinuitySequence = 0;
  private targetDuration: number | null = null;
  private lowLatency: { partTarget: number; partHoldBack: number } | null = null;
  private ended = false;
  private breakBeforeNext = false;
  private currentRun: string | null = null;
  /** After a lost step, nothing is listed until a part that starts a segment. */
  private resumeAtSegment = false;
  private nextPartName: string | null = null;
  private readonly log: Logger;
  segmentsPublished = 0;
  lastSegmentAt: Date | null = null;

  private constructor(private readonly options: RenditionPlaylistOptions) {
    this.log = options.logger.child({ component: 'playlist', stream: options.stream, ...(options.rendition ? { rendition: options.rendition } : {}) });
  }

  /** Opens the folder, continuing the numbering of a playlist left there before. */
  static async open(options: RenditionPlaylistOptions): Promise<RenditionPlaylist> {
    const playlist = new RenditionPlaylist(options);
    await mkdir(options.dir, { recursive: true });
    const previous = await readNumbering(path.join(options.dir, PUBLIC_PLAYLIST));
    const startAt = options.startAt;
    const from = { mediaSequence: Math.max(previous?.mediaSequence ?? 0, startAt?.mediaSequence ?? 0), discontinuitySequence: Math.max(previous?.discontinuitySequence ?? 0, startAt?.discontinuitySequence ?? 0) };
    if (from.mediaSequence > 0 || from.discontinuitySequence > 0) {
      playlist.mediaSequence = from.mediaSequence;
      playlist.discontinuitySequence = from.discontinuitySequence;
      playlist.breakBeforeNext = true;
    }
    // Files of an earlier broadcast are no longer referenced: retire them like slid-out segments.
    const leftovers = (await readdir(options.dir)).filter((name) => name !== PUBLIC_PLAYLIST && classifyMediaFile(name) === 'segment');
    if (leftovers.length) playlist.retired.push({ files: leftovers, initName: '' });
    return playlist;
  }

  get rendition(): string | null {
    return this.options.rendition;
  }

  get state(): { mediaSequence: number; discontinuitySequence: number; targetDuration: number | null; segments: number; ended: boolean; partTarget: number | null; openParts: number } {
    return {
      mediaSequence: this.mediaSequence,
      discontinuitySequence: this.discontinuitySequence,
      targetDuration: this.targetDuration,
      segments: this.window.length,
      ended: this.ended,
      partTarget: this.lowLatency?.partTarget ?? null,
      openParts: this.open?.parts.length ?? 0,
    };
  }

  /** The newest listed segment. */
  get lastSegment(): PlaylistSegment | null {
    return this.window[this.window.length - 1] ?? null;
  }

  /** Where the playlist is: its last segment's number and how many parts of the open segment it lists. */
  get position(): { lastMsn: number; openParts: number; lastPartOfLast: number } {
    const last = this.window[this.window.length - 1];
    return { ...playlistPosition({ mediaSequence: this.mediaSequence, segments: this.window, openParts: this.open?.parts ?? [] }), lastPartOfLast: (last?.parts?.length ?? 0) - 1 };
  }

  /**
   * Phase one: writes what the step needs. 'skip' = nothing to list for this step (the run's
   * output before a segment start after a loss), 'failed' = a write failed (reported).
   */
  async stage(step: PlaylistStep): Promise<StageResult> {
    if (this.ended) return 'skip';
    if (step.kind === 'close') {
      if (!this.open) return 'skip';
      return (await this.writeSegmentFile(this.open)) ? 'ok' : 'failed';
    }
    if (step.kind === 'run-ended') {
      if (!this.open || this.open.run !== step.run) return 'skip';
      // Low latency: the open segment stays open (its parts listed) until the next run starts or
      // the broadcast ends, so its number is never used for anything else while players may hold
      // its parts (hls.js refuses a playlist where a segment it knows changes its discontinuity).
      if (this.options.partSeconds !== null) return 'ok';
      return (await this.writeSegmentFile(this.open)) ? 'ok' : 'failed';
    }
    const { run, part } = step;
    const continues = this.open !== null && this.open.run === run && !part.startsSegment;
    if (!part.startsSegment && !continues) return 'skip';
    // A part that starts a segment completes the open one (of this run, or of a run that died).
    if (part.startsSegment && this.open && !(await this.writeSegmentFile(this.open))) return 'failed';
    if (!(await this.writeInit(run, step.init))) return 'failed';
    if (this.options.partSeconds !== null && !(await this.write('part', partName(run, part.index), part.bytes))) return 'failed';
    return 'ok';
  }

  /** Phase two: the step was staged in every rendition; list it. */
  commit(step: PlaylistStep): void {
    if (this.ended) return;
    if (step.kind === 'close') {
      if (this.open) this.closeOpen();
      this.nextPartName = null;
      return;
    }
    if (step.kind === 'run-ended') {
      if (this.open && this.open.run === step.run && this.options.partSeconds === null) this.closeOpen();
      // Nothing more comes from this run: no part to hint.
      if (this.currentRun === step.run) this.nextPartName = null;
      return;
    }
    const { run, part } = step;
    if (run !== this.currentRun) {
      // A new run: its own init, and a timeline break unless it is the very first.
      if (this.currentRun !== null || this.window.length > 0) this.breakBeforeNext = true;
      this.currentRun = run;
    }
    if (part.startsSegment) {
      if (this.open) this.closeOpen();
      this.resumeAtSegment = false;
      this.fixTiming(step);
      this.open = {
        run,
        index: part.segment,
        initUri: initName(run),
        discontinuity: this.breakBeforeNext,
        programDateTime: step.programDateTime,
        parts: [],
        duration: 0,
        bytes: [],
        files: [],
        fileWritten: false,
      };
      this.breakBeforeNext = false;
    }
    const open = this.open!;
    const partTarget = this.lowLatency?.partTarget;
    if (partTarget !== undefined && part.duration > partTarget + 0.0005) this.options.onPartOverTarget?.(part.duration, partTarget);
    open.parts.push({ uri: partName(run, part.index), duration: part.duration, independent: part.independent });
    open.duration += part.duration;
    open.bytes.push(part.bytes);
    if (this.options.partSeconds !== null) open.files.push(partName(run, part.index));
    this.nextPartName = partName(run, part.index + 1);
  }

  /** A step could not be staged in every rendition: what it belonged to is lost; resume at the next segment. */
  discard(): void {
    if (this.open) {
      // Its listed parts (if any) stay on disk until the grace is over, like a retired segment.
      this.retired.push({ files: this.open.fileWritten ? [...this.open.files, segmentName(this.open.run, this.open.index)] : this.open.files, initName: this.open.initUri });
      this.open = null;
    }
    this.breakBeforeNext = true;
    this.resumeAtSegment = true;
    this.nextPartName = null;
  }

  /** EXT-X-ENDLIST. An open segment still here could not be closed (its file failed): it is dropped. */
  end(): void {
    if (this.ended) return;
    if (this.open) this.discard();
    this.ended = true;
  }

  /** Renames the current text into place (when the playlist has a target duration, i.e. lists anything). */
  async writePlaylist(reports: readonly RenditionReport[] = []): Promise<boolean> {
    if (this.targetDuration === null) return true;
    const text = renderMediaPlaylist({
      targetDuration: this.targetDuration,
      mediaSequence: this.mediaSequence,
      discontinuitySequence: this.discontinuitySequence,
      segments: this.window,
      ended: this.ended,
      lowLatency: this.lowLatency
        ? {
            ...this.lowLatency,
            open: this.open && this.open.parts.length > 0 ? this.open : null,
            preloadHint: this.ended ? null : this.nextPartName,
            renditionReports: reports,
          }
        : null,
    });
    if (!(await this.write('playlist', PUBLIC_PLAYLIST, text))) return false;
    this.options.onPlaylistWritten?.(this.options.feedFile, text);
    return true;
  }

  /** The report other renditions list about this one (EXT-X-RENDITION-REPORT), relative to a sibling folder. */
  report(): RenditionReport | null {
    if (!this.options.rendition || this.lowLatency === null) return null;
    const { lastMsn, openParts, lastPartOfLast } = this.position;
    const uri = `../${this.options.rendition}/${PUBLIC_PLAYLIST}`;
    return openParts > 0 ? { uri, lastMsn: lastMsn + 1, lastPart: openParts - 1 } : { uri, lastMsn, lastPart: Math.max(0, lastPartOfLast) };
  }

  /** Deletes what left the playlist more than the grace ago, and inits nothing needs. */
  async deleteExpired(): Promise<void> {
    const { dir, deleteGraceSegments } = this.options;
    while (this.retired.length > deleteGraceSegments) {
      for (const file of this.retired.shift()!.files) await rm(path.join(dir, file), { force: true });
    }
    const needed = new Set<string>();
    for (const s of this.window) needed.add(s.initUri);
    if (this.open) needed.add(this.open.initUri);
    if (this.currentRun) needed.add(initName(this.currentRun));
    for (const r of this.retired) needed.add(r.initName);
    for (const init of this.publishedInits) {
      if (needed.has(init)) continue;
      this.publishedInits.delete(init);
      await rm(path.join(dir, init), { force: true });
    }
  }

  private fixTiming(step: Extract<PlaylistStep, { kind: 'part' }>): void {
    const { partSeconds, targetDurationOverride, minSegmentSeconds, partHoldBackParts } = this.options;
    if (partSeconds !== null && this.lowLatency === null) {
      // The run's cutter cuts to this target (fixed with its first part); a later run keeps the playlist's.
      const partTarget = step.partTarget ?? partTargetFor(partSeconds, partSeconds / 10);
      this.lowLatency = { partTarget, partHoldBack: Math.round(partTarget * partHoldBackParts * 1000) / 1000 };
    }
    if (this.targetDuration === null && partSeconds !== null) {
      this.targetDuration = targetDurationOverride || Math.max(LOW_LATENCY_TARGET_DURATION, Math.ceil(minSegmentSeconds));
      this.log.info({ targetDuration: this.targetDuration, ...this.lowLatency }, 'target duration and part target fixed for this playlist');
    }
  }

  private closeOpen(): void {
    const open = this.open!;
    this.open = null;
    if (!open.fileWritten) {
      // Not staged (cannot happen in order; kept safe): drop it rather than list a missing file.
      this.retired.push({ files: open.files, initName: open.initUri });
      this.breakBeforeNext = true;
      return;
    }
    const duration = open.duration;
    if (this.targetDuration === null) {
      this.targetDuration = this.options.targetDurationOverride || chooseTargetDuration(duration, this.options.minSegmentSeconds);
      this.log.info({ targetDuration: this.targetDuration, firstSegmentSeconds: duration }, 'target duration fixed for this playlist');
    }
    const entry: WindowSegment = {
      uri: segmentName(open.run, open.index),
      duration,
      initUri: open.initUri,
      discontinuity: open.discontinuity,
      programDateTime: open.programDateTime,
      parts: this.lowLatency ? open.parts : undefined,
      files: [...open.files, segmentName(open.run, open.index)],
    };
    const fits = fitsTargetDuration(duration, this.targetDuration);
    if (!fits) this.log.warn({ segment: entry.uri, duration, targetDuration: this.targetDuration }, 'segment longer than the target duration: is the keyframe interval longer than the target duration (HLS_TARGET_DURATION)?');
    this.handToArchive(entry);
    this.window.push(entry);
    while (this.window.length > this.options.windowSegments) {
      const old = this.window.shift()!;
      this.mediaSequence += 1;
      if (old.discontinuity) this.discontinuitySequence += 1;
      this.retired.push({ files: old.files, initName: old.initUri });
    }
    this.segmentsPublished += 1;
    this.lastSegmentAt = new Date();
    this.options.onSegmentListed?.(entry, fits);
  }

  private handToArchive(entry: PlaylistSegment): void {
    try {
      this.options.archive?.segmentPublished({ uri: entry.uri, duration: entry.duration, initUri: entry.initUri, discontinuity: entry.discontinuity, programDateTime: entry.programDateTime }, this.options.dir, this.targetDuration!);
    } catch (err) {
      this.log.error({ err }, 'archive refused a segment (the live playlist is not affected)');
    }
  }

  private async writeInit(run: string, bytes: Buffer): Promise<boolean> {
    const name = initName(run);
    if (this.publishedInits.has(name)) return true;
    if (!(await this.write('init', name, bytes))) return false;
    this.publishedInits.add(name);
    return true;
  }

  private async writeSegmentFile(open: OpenSegment): Promise<boolean> {
    if (open.fileWritten) return true;
    if (!(await this.write('segment', segmentName(open.run, open.index), open.bytes.length === 1 ? open.bytes[0]! : Buffer.concat(open.bytes)))) return false;
    open.fileWritten = true;
    open.bytes = []; // the file has them now
    return true;
  }

  private async write(file: PlaylistFile, name: string, data: string | Buffer): Promise<boolean> {
    try {
      await writeFileAtomic(path.join(this.options.dir, name), data);
    } catch (err) {
      this.options.onWriteError?.(file, err as Error);
      return false;
    }
    this.options.onWriteOk?.();
    return true;
  }
}

export function initName(run: string): string {
  return `${run}-init.mp4`;
}

export function segmentName(run: string, index: number): string {
  return `${run}-${index}.m4s`;
}

export function partName(run: string, index: number): string {
  return `${run}-p${index}.m4s`;
}

/** The numbering a playlist left in `file` continues at (null: none there). */
async function readNumbering(file: string): Promise<PlaylistNumbering | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return null;
  }
  const previous = parseMediaPlaylist(text);
  if (previous.segments.length === 0 && previous.openParts.length === 0) return null;
  return {
    // A segment whose parts were listed but that never completed (a crash) still used its number.
    mediaSequence: previous.mediaSequence + previous.segments.length + (previous.openParts.length > 0 ? 1 : 0),
    discontinuitySequence: previous.discontinuitySequence + previous.segments.filter((s) => s.discontinuity).length + (previous.open?.discontinuity ? 1 : 0),
  };
}
