/**
 * The public playlists of a stream with a quality ladder: MEDIA_DIR/live/<stream>/index.m3u8 is a
 * master playlist, and each rendition has its own StreamPlaylist (with every guarantee of the
 * passthrough one: atomic writes, completeness checks, window and delete grace, discontinuities,
 * fixed target duration, ENDLIST) in live/<stream>/<rendition>/.
 *
 * One ffmpeg writes every rendition, cut on the same keyframe times, so segment n of a run exists
 * in each rendition and covers the same time. This class keeps the renditions' playlists in
 * lockstep: a segment is published only when every rendition has it, in all of them at once; a
 * segment that one rendition lost (incomplete file) is dropped from all, with a discontinuity.
 * Media sequence numbers therefore match across renditions, which is what a player switching
 * levels relies on.
 */
import path from 'node:path';
import { writeFileAtomic } from '../../../common/src/atomic-file.ts';
import { PUBLIC_PLAYLIST } from '../../../common/src/media-layout.ts';
import type { Logger } from '../../../common/src/logger.ts';
import { renderMasterPlaylist, renditionPlaylistUri, type Rendition } from '../transcode/ladder.ts';
import type { PlaylistSegment } from './media-playlist.ts';
import type { MuxerSegment } from './muxer-run.ts';
import { previousNumbering, removeStaleOutputs, StreamPlaylist, type ArchiveSink, type StreamPlaylistOptions } from './stream-playlist.ts';

export interface LadderPlaylistOptions extends Omit<StreamPlaylistOptions, 'dir' | 'archive' | 'startAt' | 'onSegmentPublished'> {
  /** MEDIA_DIR/live/<stream> */
  dir: string;
  renditions: readonly Rendition[];
  /** The recording gets the source rendition only (README "Recordings"). */
  archive?: ArchiveSink | null;
  /** Called once per published segment group (with the source rendition's entry). */
  onSegmentPublished?: (segment: PlaylistSegment, fitsTarget: boolean) => void;
  /** A segment some rendition lacked was dropped from all (metrics). */
  onSegmentDropped?: () => void;
  /** Called for every rendition's published segment (metrics). */
  onRenditionSegment?: (rendition: string, segment: PlaylistSegment) => void;
}

interface SegmentGroup {
  run: string;
  index: number;
  parts: Map<string, MuxerSegment>;
  /** Some rendition lost segments before this one: the break is marked in all. */
  afterGap: boolean;
}

export class LadderPlaylist {
  private readonly pending: SegmentGroup[] = [];
  /** Per rendition, the newest (run, index) handed over: anything older it lacks will never come. */
  private readonly latest = new Map<string, { run: string; index: number }>();
  private readonly runOrder: string[] = [];
  private gapBeforeNext = false;
  private masterWritten = false;
  private readonly log: Logger;
  segmentsPublished = 0;
  segmentsDropped = 0;
  lastSegmentAt: Date | null = null;

  private constructor(
    private readonly options: LadderPlaylistOptions,
    readonly playlists: ReadonlyMap<string, StreamPlaylist>,
  ) {
    this.log = options.logger.child({ component: 'ladder-playlist', stream: options.stream });
  }

  static async open(options: LadderPlaylistOptions): Promise<LadderPlaylist> {
    const names = new Set(options.renditions.map((r) => r.name));
    await removeStaleOutputs(options.dir, names, true, options.logger);
    // Every rendition starts at the same number, after anything the stream ever listed.
    const startAt = await previousNumbering(options.dir);
    const playlists = new Map<string, StreamPlaylist>();
    for (const rendition of options.renditions) {
      const { renditions: _r, onRenditionSegment: _o, onSegmentPublished: _p, onSegmentDropped: _d, archive, ...base } = options;
      playlists.set(
        rendition.name,
        await StreamPlaylist.open({
          ...base,
          stream: options.stream,
          dir: path.join(options.dir, rendition.name),
          startAt,
          archive: rendition.video === 'copy' ? archive ?? null : null,
          logger: options.logger.child({ rendition: rendition.name }),
          onSegmentPublished: (segment) => options.onRenditionSegment?.(rendition.name, segment),
        }),
      );
    }
    return new LadderPlaylist(options, playlists);
  }

  get renditions(): readonly Rendition[] {
    return this.options.renditions;
  }

  /** The top rendition's numbering (all renditions share it). */
  get state(): StreamPlaylist['state'] {
    return this.playlists.get(this.options.renditions[0]!.name)!.state;
  }

  addSegment(segment: MuxerSegment): Promise<void> {
    const rendition = segment.rendition;
    if (!rendition || !this.playlists.has(rendition)) {
      this.log.error({ rendition, segment: segment.name }, 'segment of an unknown rendition, dropped');
      return Promise.resolve();
    }
    if (!this.runOrder.includes(segment.run)) this.runOrder.push(segment.run);
    this.latest.set(rendition, { run: segment.run, index: segment.index });
    let group = this.pending.find((g) => g.run === segment.run && g.index === segment.index);
    if (!group) {
      group = { run: segment.run, index: segment.index, parts: new Map(), afterGap: false };
      this.pending.push(group);
      this.pending.sort((a, b) => this.runOrder.indexOf(a.run) - this.runOrder.indexOf(b.run) || a.index - b.index);
    }
    if (segment.afterGap) group.afterGap = true;
    group.parts.set(rendition, segment);
    return this.publishReady();
  }

  /** Ends every rendition's playlist (ENDLIST). Segments some rendition never got are dropped. */
  async end(): Promise<void> {
    if (this.pending.length) this.dropGroups(this.pending.splice(0), 'broadcast ended');
    await Promise.all([...this.playlists.values()].map((p) => p.end()));
  }

  flush(): Promise<void> {
    return Promise.all([...this.playlists.values()].map((p) => p.flush())).then(() => undefined);
  }

  private isBehind(rendition: string, group: SegmentGroup): boolean {
    const latest = this.latest.get(rendition);
    if (!latest) return false;
    if (latest.run !== group.run) return this.runOrder.indexOf(latest.run) > this.runOrder.indexOf(group.run);
    return latest.index > group.index;
  }

  private async publishReady(): Promise<void> {
    const all = this.options.renditions.map((r) => r.name);
    const publishing: Promise<void>[] = [];
    while (this.pending.length > 0) {
      const group = this.pending[0]!;
      if (group.parts.size === all.length) {
        this.pending.shift();
        publishing.push(this.publishGroup(group));
        continue;
      }
      // A rendition already past this segment will never deliver it: the segment is lost for all.
      const missing = all.filter((name) => !group.parts.has(name));
      if (missing.every((name) => this.isBehind(name, group))) {
        this.pending.shift();
        this.dropGroups([group], `missing in ${missing.join(', ')}`);
        continue;
      }
      break;
    }
    await Promise.all(publishing);
  }

  private dropGroups(groups: SegmentGroup[], reason: string): void {
    for (const group of groups) {
      this.segmentsDropped += 1;
      this.gapBeforeNext = true;
      this.options.onSegmentDropped?.();
      this.log.warn({ run: group.run, index: group.index, reason }, 'segment not in every rendition, dropped from all');
    }
  }

  private async publishGroup(group: SegmentGroup): Promise<void> {
    const afterGap = this.gapBeforeNext || group.afterGap;
    this.gapBeforeNext = false;
    const top = this.options.renditions[0]!.name;
    await Promise.all(
      this.options.renditions.map((r) => this.playlists.get(r.name)!.addSegment({ ...group.parts.get(r.name)!, afterGap })),
    );
    // The master names the renditions' playlists: it appears once each of them exists.
    if (!this.masterWritten) await this.writeMaster();
    this.segmentsPublished += 1;
    this.lastSegmentAt = new Date();
    const source = group.parts.get(top)!;
    const targetDuration = this.playlists.get(top)!.state.targetDuration;
    this.options.onSegmentPublished?.(
      { uri: source.name, duration: source.duration, initUri: source.initName, discontinuity: afterGap, programDateTime: source.startedAt },
      targetDuration === null || Math.round(source.duration) <= targetDuration,
    );
  }

  private async writeMaster(): Promise<void> {
    const text = renderMasterPlaylist(this.options.renditions.map((rendition) => ({ rendition, uri: renditionPlaylistUri(rendition, PUBLIC_PLAYLIST) })));
    try {
      await writeFileAtomic(path.join(this.options.dir, PUBLIC_PLAYLIST), text);
      this.masterWritten = true;
    } catch (err) {
      // Retried with the next segment; the media disk's health is reported by the writes that failed.
      this.options.onWriteError?.('playlist', err as Error);
    }
  }
}
