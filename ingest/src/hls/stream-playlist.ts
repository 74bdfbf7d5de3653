/**
 * The public playlists of one stream: MEDIA_DIR/live/<stream>/index.m3u8 for a passthrough
 * stream, or, with a quality ladder, a master playlist there and one media playlist per rendition
 * in live/<stream>/<rendition>/ (README "Quality ladder", docs/low-latency-hls.md).
 *
 * One ffmpeg writes every rendition and the part cutter cuts them alike, so part k of a run exists
 * in each rendition and covers the same time. This class keeps the renditions in lockstep: a part
 * (and the segment it completes) is listed only once every rendition has it, in all of them at
 * once; a part one rendition lacks or could not write is lost for all, with a discontinuity. Media
 * sequence numbers, part numbers and durations therefore match across renditions, which is what a
 * player switching levels relies on. A passthrough stream is the one-rendition case.
 *
 * Every change goes through one queue: stage the files everywhere, commit, rename the new playlists
 * into place, delete what fell out of the window more than the grace ago.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../../common/src/atomic-file.ts';
import { renderMasterPlaylist } from '../../../common/src/hls/master-playlist.ts';
import { parseMediaPlaylist, renderMediaPlaylist } from '../../../common/src/hls/media-playlist.ts';
import { isRenditionName } from '../../../common/src/ladder-spec.ts';
import { classifyMediaFile, PUBLIC_PLAYLIST } from '../../../common/src/media-layout.ts';
import type { Logger } from '../../../common/src/logger.ts';
import type { PlaylistSegment } from '../../../common/src/hls/media-playlist.ts';
import type { Rendition } from '../transcode/ladder.ts';
import type { CutPart } from '../muxer/part-cutter.ts';
import { RenditionPlaylist, type ArchiveSink, type PlaylistFile, type PlaylistNumbering, type PlaylistStep, type PlaylistTiming } from './rendition-playlist.ts';

export type { ArchiveSink, PlaylistNumbering } from './rendition-playlist.ts';

export interface StreamPlaylistOptions extends PlaylistTiming {
  stream: string;
  /** MEDIA_DIR/live/<stream> */
  dir: string;
  /** The quality ladder's renditions, highest first; null = passthrough (one playlist in `dir`). */
  renditions: readonly Rendition[] | null;
  windowSegments: number;
  deleteGraceSegments: number;
  logger: Logger;
  /** The recording gets the source rendition only (README "Recordings"). */
  archive?: ArchiveSink | null;
  onWriteError?: (file: PlaylistFile, err: Error) => void;
  onWriteOk?: () => void;
  /** A new playlist text is in place: `file` relative to MEDIA_DIR (the playlist feed). */
  onPlaylistWritten?: (file: string, text: string) => void;
  /** Once per listed segment (the top rendition's). */
  onSegmentPublished?: (segment: PlaylistSegment, fitsTarget: boolean) => void;
  onPartOverTarget?: (duration: number, partTarget: number) => void;
  /** A part one rendition lacked (or could not write) was lost for all. */
  onStepLost?: (reason: string) => void;
}

interface PendingGroup {
  run: string;
  index: number;
  steps: Map<string, Extract<PlaylistStep, { kind: 'part' }>>;
}

/** The output name of a passthrough run (it has one output, no rendition folder). */
export const PASSTHROUGH_OUTPUT = '';

export class StreamPlaylist {
  private readonly pending: PendingGroup[] = [];
  /** Per output, the newest part handed over: anything older it lacks will never come. */
  private readonly latest = new Map<string, { run: string; index: number }>();
  private readonly runOrder: string[] = [];
  private queue: Promise<void> = Promise.resolve();
  private masterWritten = false;
  private readonly log: Logger;

  private constructor(
    private readonly options: StreamPlaylistOptions,
    /** By output name ('' for passthrough, else the rendition's name), highest rendition first. */
    private readonly playlists: ReadonlyMap<string, RenditionPlaylist>,
  ) {
    this.log = options.logger.child({ component: 'stream-playlist', stream: options.stream });
  }

  static async open(options: StreamPlaylistOptions): Promise<StreamPlaylist> {
    const { dir, stream, renditions } = options;
    const names = renditions ? renditions.map((r) => r.name) : [];
    // Every rendition starts at the same number, after anything the stream ever listed (read
    // before an earlier broadcast's other layout, ladder folders or top-level files, goes).
    const startAt = await previousNumbering(dir);
    await removeStaleOutputs(dir, new Set(names), renditions !== null, options.logger);
    const playlists = new Map<string, RenditionPlaylist>();
    const base = {
      stream,
      windowSegments: options.windowSegments,
      deleteGraceSegments: options.deleteGraceSegments,
      minSegmentSeconds: options.minSegmentSeconds,
      targetDurationOverride: options.targetDurationOverride,
      partSeconds: options.partSeconds,
      partHoldBackParts: options.partHoldBackParts,
      logger: options.logger,
      startAt,
      onWriteError: options.onWriteError,
      onWriteOk: options.onWriteOk,
      onPlaylistWritten: options.onPlaylistWritten,
      onPartOverTarget: options.onPartOverTarget,
    };
    if (renditions === null) {
      playlists.set(PASSTHROUGH_OUTPUT, await RenditionPlaylist.open({ ...base, rendition: null, dir, feedFile: `live/${stream}/${PUBLIC_PLAYLIST}`, archive: options.archive ?? null }));
    } else {
      for (const rendition of renditions) {
        playlists.set(
          rendition.name,
          await RenditionPlaylist.open({
            ...base,
            rendition: rendition.name,
            dir: path.join(dir, rendition.name),
            feedFile: `live/${stream}/${rendition.name}/${PUBLIC_PLAYLIST}`,
            archive: rendition.video === 'copy' ? options.archive ?? null : null,
          }),
        );
      }
    }
    return new StreamPlaylist(options, playlists);
  }

  get renditions(): readonly Rendition[] | null {
    return this.options.renditions;
  }

  /** The top rendition's playlist (every rendition shares its numbering). */
  private get top(): RenditionPlaylist {
    return this.playlists.values().next().value!;
  }

  get state(): RenditionPlaylist['state'] {
    return this.top.state;
  }

  get segmentsPublished(): number {
    return this.top.segmentsPublished;
  }

  get lastSegmentAt(): Date | null {
    return this.top.lastSegmentAt;
  }

  /** The output names a run must write ('' for passthrough, else the renditions'). */
  get outputs(): string[] {
    return [...this.playlists.keys()];
  }

  /** A part of one output of a run (with the run's init and the part's program date-time). */
  addPart(output: string, step: Omit<Extract<PlaylistStep, { kind: 'part' }>, 'kind'>): void {
    if (!this.playlists.has(output)) {
      this.log.error({ output, run: step.run }, 'part of an unknown rendition, dropped');
      return;
    }
    const { run, part } = step;
    if (!this.runOrder.includes(run)) this.runOrder.push(run);
    this.latest.set(output, { run, index: part.index });
    let group = this.pending.find((g) => g.run === run && g.index === part.index);
    if (!group) {
      group = { run, index: part.index, steps: new Map() };
      this.pending.push(group);
      this.pending.sort((a, b) => this.runOrder.indexOf(a.run) - this.runOrder.indexOf(b.run) || a.index - b.index);
    }
    group.steps.set(output, { kind: 'part', ...step });
    this.enqueue(() => this.publishReady());
  }

  /**
   * Every output of `run` has ended: its open segment is complete with the parts every rendition
   * has. Trailing parts only some outputs flushed (encoders end a frame or two apart) are dropped.
   */
  runEnded(run: string): Promise<void> {
    return this.enqueue(async () => {
      await this.publishReady();
      const incomplete = this.pending.filter((g) => g.run === run);
      if (incomplete.length) {
        for (const g of incomplete) this.pending.splice(this.pending.indexOf(g), 1);
        this.log.info({ run, parts: incomplete.map((g) => g.index) }, 'parts at the end of the run that not every rendition had, dropped');
      }
      await this.apply(new Map(this.outputs.map((o) => [o, { kind: 'run-ended', run } as PlaylistStep])));
    });
  }

  /** Marks the broadcast over (EXT-X-ENDLIST); the files stay until the next broadcast retires them. */
  end(): Promise<void> {
    return this.enqueue(async () => {
      if (this.pending.length) {
        this.pending.length = 0;
        this.lose('broadcast ended');
      }
      // The segment being written (a low-latency playlist keeps it open across runs) is complete now.
      await this.apply(new Map(this.outputs.map((o) => [o, { kind: 'close' } as PlaylistStep])));
      for (const playlist of this.playlists.values()) playlist.end();
      await this.writePlaylists();
      this.log.info({ mediaSequence: this.state.mediaSequence + this.state.segments }, 'playlist ended');
    });
  }

  /** Waits for every queued change to be on disk. */
  flush(): Promise<void> {
    return this.enqueue(async () => undefined);
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const next = this.queue.then(task).catch((err: unknown) => this.log.error({ err }, 'playlist update failed'));
    this.queue = next;
    return next;
  }

  private isBehind(output: string, group: PendingGroup): boolean {
    const latest = this.latest.get(output);
    if (!latest) return false;
    if (latest.run !== group.run) return this.runOrder.indexOf(latest.run) > this.runOrder.indexOf(group.run);
    return latest.index > group.index;
  }

  private async publishReady(): Promise<void> {
    const outputs = this.outputs;
    while (this.pending.length > 0) {
      const group = this.pending[0]!;
      if (group.steps.size === outputs.length) {
        this.pending.shift();
        await this.apply(group.steps);
        continue;
      }
      // An output already past this part will never deliver it: the part is lost for all.
      const missing = outputs.filter((name) => !group.steps.has(name));
      if (missing.every((name) => this.isBehind(name, group))) {
        this.pending.shift();
        await this.loseOpenSegment(`part ${group.index} missing in ${missing.join(', ')}`);
        continue;
      }
      break;
    }
  }

  /** Stages one step in every rendition, then lists it everywhere, or nowhere. */
  private async apply(steps: ReadonlyMap<string, PlaylistStep>): Promise<void> {
    const entries = [...this.playlists].map(([output, playlist]) => ({ playlist, step: steps.get(output)! }));
    const results = await Promise.all(entries.map(({ playlist, step }) => playlist.stage(step)));
    // A run's end is listed even where it closes nothing: the preload hint goes.
    const runEnd = [...steps.values()].every((s) => s.kind !== 'part');
    if (results.every((r) => r === 'skip') && !runEnd) return;
    if (results.some((r) => r === 'failed' || (r === 'skip' && !runEnd)) && !results.every((r) => r === 'skip')) {
      await this.loseOpenSegment(results.includes('failed') ? 'a write failed' : 'renditions disagree');
      return;
    }
    const before = this.top.segmentsPublished;
    for (const { playlist, step } of entries) playlist.commit(step);
    await this.writePlaylists();
    if (this.top.segmentsPublished > before) this.segmentListed();
    await Promise.all(entries.map(({ playlist }) => playlist.deleteExpired()));
  }

  /** The segment being written cannot be completed in every rendition: it goes from all; the playlists resume at the next segment. */
  private async loseOpenSegment(reason: string): Promise<void> {
    this.lose(reason);
    for (const playlist of this.playlists.values()) playlist.discard();
    await this.writePlaylists();
  }

  private lose(reason: string): void {
    this.options.onStepLost?.(reason);
    this.log.warn({ reason }, 'media lost: the playlist continues at the next segment after a discontinuity');
  }

  private async writePlaylists(): Promise<void> {
    const all = [...this.playlists.values()];
    const reports = all.map((p) => p.report());
    const written = await Promise.all(all.map((p, i) => p.writePlaylist(reports.filter((r, j): r is NonNullable<typeof r> => j !== i && r !== null))));
    // The master names the renditions' playlists: it appears once each of them exists.
    if (this.options.renditions && !this.masterWritten && written.every(Boolean) && all.every((p) => p.state.targetDuration !== null)) await this.writeMaster();
  }

  private segmentListed(): void {
    const top = this.top;
    const state = top.state;
    const segment = top.lastSegment;
    if (segment && state.targetDuration !== null) this.options.onSegmentPublished?.(segment, Math.round(segment.duration) <= state.targetDuration);
  }

  private async writeMaster(): Promise<void> {
    const text = renderMasterPlaylist(this.options.renditions!.map((r) => ({ ...r, uri: `${r.name}/${PUBLIC_PLAYLIST}` })));
    try {
      await writeFileAtomic(path.join(this.options.dir, PUBLIC_PLAYLIST), text);
      this.masterWritten = true;
      this.options.onPlaylistWritten?.(`live/${this.options.stream}/${PUBLIC_PLAYLIST}`, text);
    } catch (err) {
      // Retried with the next change; the media disk's health is reported by the writes that failed.
      this.options.onWriteError?.('playlist', err as Error);
    }
  }
}

export function isMasterPlaylist(text: string): boolean {
  return text.includes('#EXT-X-STREAM-INF:');
}

async function renditionPlaylists(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory() && isRenditionName(e.name)).map((e) => path.join(dir, e.name, PUBLIC_PLAYLIST));
}

/**
 * Where the numbering of a stream's next broadcast starts: after the last segment of any playlist
 * left in its folder, the stream's own (media playlist or master) and its rendition folders'.
 */
export async function previousNumbering(dir: string): Promise<PlaylistNumbering> {
  const next: PlaylistNumbering = { mediaSequence: 0, discontinuitySequence: 0 };
  for (const file of [path.join(dir, PUBLIC_PLAYLIST), ...(await renditionPlaylists(dir))]) {
    let previous;
    try {
      previous = parseMediaPlaylist(await readFile(file, 'utf8'));
    } catch {
      continue; // absent
    }
    const open = previous.openParts.length > 0;
    if (previous.segments.length === 0 && !open) continue;
    // A segment whose parts were listed but that never completed (a crash) still used its number.
    next.mediaSequence = Math.max(next.mediaSequence, previous.mediaSequence + previous.segments.length + (open ? 1 : 0));
    next.discontinuitySequence = Math.max(next.discontinuitySequence, previous.discontinuitySequence + previous.segments.filter((s) => s.discontinuity).length + (previous.open?.discontinuity ? 1 : 0));
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
 * that never come. Called at start, before any publisher is accepted. A low-latency playlist also
 * loses the parts of the segment that was being written (they never became a segment).
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
      if (mediaText === null) continue;
      const closed = endedText(mediaText);
      if (closed === null) continue;
      await writeFileAtomic(media, closed);
      endedOne = true;
    }
    if (endedOne) ended.push(stream);
  }
  if (ended.length) logger.warn({ streams: ended }, 'ended playlists left open by a previous run');
  return ended;
}

/** The text of `text` ended (null when it already is). */
export function endedText(text: string): string | null {
  const parsed = parseMediaPlaylist(text);
  if (parsed.ended) return null;
  const ours = parsed.targetDuration !== null && parsed.segments.every((s) => s.initUri !== null);
  if (parsed.openParts.length === 0 && parsed.preloadHint === null) return `${text.trimEnd()}\n#EXT-X-ENDLIST\n`;
  if (!ours) return `${text.trimEnd()}\n#EXT-X-ENDLIST\n`;
  return renderMediaPlaylist({
    targetDuration: parsed.targetDuration!,
    mediaSequence: parsed.mediaSequence,
    discontinuitySequence: parsed.discontinuitySequence,
    segments: parsed.segments.map((s) => ({ ...s, initUri: s.initUri! })),
    ended: true,
    lowLatency: parsed.partTarget !== null ? { partTarget: parsed.partTarget, partHoldBack: parsed.partHoldBack ?? parsed.partTarget * 3, open: null, preloadHint: null } : null,
  });
}

export type { CutPart };
