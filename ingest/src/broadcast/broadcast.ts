/**
 * One broadcast: what happens to a stream between its first publisher and its EXT-X-ENDLIST. The
 * object owns everything of it: the publisher connection, the muxer run (ffmpeg) fed from the
 * publisher's FLV tap, the playlists, the recording, its timers, and its close.
 *
 *   publisher accepted ─▶ live ──(publisher leaves cleanly: deleteStream)──▶ ending ─▶ ended
 *                          │  ▲
 *       (connection drops) │  │ (same stream published again within RECONNECT_GRACE_MS:
 *                          ▼  │  same playlist, discontinuity at the join)
 *                       reconnecting ──(grace over)──▶ ending ─▶ ended
 *
 * While live, one muxer run at a time is fed from the tap; a run that dies, or whose output is
 * unusable, is replaced (with backoff) and the playlist continues after a discontinuity. Media
 * write failures never end a broadcast or drop its publisher: parts resume when writes work again.
 */
import { randomBytes } from 'node:crypto';
import { streamDir } from '../../../common/src/media-layout.ts';
import type { LiveStream } from '../../../common/src/live-state.ts';
import type { Logger } from '../../../common/src/logger.ts';
import { SessionArchive } from '../archive/session-archive.ts';
import type { IngestConfig } from '../config.ts';
import { PASSTHROUGH_OUTPUT, StreamPlaylist } from '../hls/stream-playlist.ts';
import type { MediaDiskHealth } from '../media-disk.ts';
import type { IngestMetrics } from '../metrics.ts';
import { ladderArgs, passthroughArgs } from '../muxer/muxer-args.ts';
import { MuxerRun, type MuxerPart } from '../muxer/muxer-run.ts';
import type { Publisher, PublishEnd } from '../rtmp/rtmp-server.ts';
import { FlvSourceProbe, sourceInfoFrom, type FlvSourceFacts } from '../transcode/flv-source-probe.ts';
import { formatLadderSpec, renditionsFor, type Rendition, type RenditionSpec } from '../transcode/ladder.ts';
import { CpuMeter, processCpuSeconds } from '../transcode/process-cpu.ts';
import { SpeedWatch } from '../transcode/speed-watch.ts';

export type BroadcastState = 'live' | 'reconnecting' | 'ending';

export interface BroadcastStatus extends LiveStream {
  /** The quality ladder in force for this broadcast ("off": passthrough). */
  ladder: string;
  /** The renditions being written (the source alone when passthrough). */
  renditions: { name: string; width: number; height: number; video: 'copy' | 'transcode'; bandwidth: number | null }[];
  /** The ffmpeg of the broadcast: CPU cores now, total CPU seconds, speed over the last 5 s, slow = below 1.0x for long. */
  transcode: { cpuCores: number | null; cpuSeconds: number; speed: number | null; slow: boolean };
  publisher: { address: string; sessionId: string } | null;
  muxer: { run: string; pid: number | null } | null;
  restarts: number;
  playlist: {
    mediaSequence: number;
    discontinuitySequence: number;
    targetDuration: number | null;
    partTarget: number | null;
    segments: number;
    segmentsPublished: number;
    lastSegmentAt: string | null;
  } | null;
}

/** What every broadcast of this ingest shares. */
export interface BroadcastContext {
  config: IngestConfig;
  logger: Logger;
  metrics: IngestMetrics;
  mediaDisk: MediaDiskHealth;
  /** A new playlist text is in place (the playlist feed). */
  playlistWritten: (file: string, text: string) => void;
  /** Something shown in status() changed. */
  changed: () => void;
}

/** `20261122-041200-a1b2c3`: start time in UTC (sorts by time) and a random tail (isSessionId). */
export function newSessionId(at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

function newRunId(): string {
  // Time-ordered and unique: media file names must never repeat for a stream (they are cached as immutable).
  return `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

/** The FLV kept while a ladder broadcast's source is probed, and where the rest goes afterwards. */
interface ProbedSource {
  facts: FlvSourceFacts;
  kept: Buffer[];
  setSink: (sink: (flv: Buffer) => void) => void;
  detach: () => void;
}

export class Broadcast {
  readonly since = new Date();
  private stateValue: BroadcastState = 'live';
  private publisher: Publisher | null = null;
  private playlist: Promise<StreamPlaylist> | null = null;
  private openedPlaylist: StreamPlaylist | null = null;
  private renditions: Rendition[] | null = null;
  private run: MuxerRun | null = null;
  private detachTap: (() => void) | null = null;
  /** Settles once the previous run's last part is handed over: the next run's parts go after it. */
  private previousRunDone: Promise<void> = Promise.resolve();
  private readonly cpu = new CpuMeter();
  private cpuPid: number | null = null;
  private speed: SpeedWatch | null = null;
  private restarts = 0;
  private consecutiveFailures = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private endedPromise: Promise<void> | null = null;
  private resolveFinished!: () => void;
  /** Resolves once the broadcast has ended (its ENDLIST written). */
  readonly finished = new Promise<void>((resolve) => (this.resolveFinished = resolve));
  private publishers = 0;
  private readonly archive: SessionArchive | null;
  private readonly log: Logger;

  constructor(
    readonly stream: string,
    private readonly context: BroadcastContext,
    /** Rungs asked for in the registry when the broadcast started (empty: passthrough). */
    private readonly ladder: RenditionSpec[],
    /** The previous broadcast of the stream finishing: this playlist continues after its ENDLIST. */
    private readonly previousEnding: Promise<void>,
  ) {
    this.log = context.logger.child({ component: 'broadcast', stream });
    this.archive = this.createArchive();
  }

  get state(): BroadcastState {
    return this.stateValue;
  }

  /** The recording's `<stream>/<session>` (retention never deletes it); null when not recorded. */
  get recordingSession(): string | null {
    return this.archive ? `${this.stream}/${this.archive.session}` : null;
  }

  /** A publisher for this stream was accepted (the first one, or one reconnecting within the grace). */
  attach(publisher: Publisher): void {
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.log.info({ client: publisher.clientAddress }, 'publisher reconnected, continuing the playlist');
    }
    this.stateValue = 'live';
    this.publisher = publisher;
    this.publishers += 1;
    this.consecutiveFailures = 0;
    void this.startRun(publisher);
  }

  /** Its publisher left: cleanly (the broadcast ends) or dropped (wait for it to come back). */
  publisherLeft(publisher: Publisher, end: PublishEnd): void {
    if (this.publisher !== publisher) return;
    this.publisher = null;
    this.stopRun();
    const graceMs = this.context.config.RECONNECT_GRACE_MS;
    if (end.clean || graceMs === 0) {
      this.log.info({ clean: end.clean }, 'publisher stopped, ending the broadcast');
      void this.end();
      return;
    }
    this.log.warn({ graceMs }, 'publisher connection lost, waiting for it to reconnect');
    this.stateValue = 'reconnecting';
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.log.info('publisher did not come back, ending the broadcast');
      void this.end();
    }, graceMs);
    this.context.changed();
  }

  /** Ends the broadcast now (shutdown): the publisher is disconnected, the last parts flushed, ENDLIST written. */
  close(): Promise<void> {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const publisher = this.publisher;
    this.publisher = null;
    this.stopRun();
    publisher?.disconnect();
    return this.end();
  }

  /** Resolves when the recording is closed too (after the live ENDLIST); never rejects. */
  recordingClosed(): Promise<void> {
    return this.archiveEnding ?? Promise.resolve();
  }

  status(): BroadcastStatus {
    const stats = this.publisher?.inputStats() ?? null;
    const renditions = this.renditions ?? (stats?.video ? [{ name: 'source', width: stats.video.width, height: stats.video.height, video: 'copy' as const, bandwidth: null }] : []);
    const playlist = this.openedPlaylist;
    const elapsed = (Date.now() - (this.publisher?.startedAt.getTime() ?? Date.now())) / 1000;
    return {
      stream: this.stream,
      state: this.stateValue === 'ending' ? 'live' : this.stateValue,
      since: this.since.toISOString(),
      video: stats?.video ?? null,
      audio: stats?.audio ?? null,
      bitrateKbps: stats && elapsed > 1 ? Math.round((stats.bytesReceived * 8) / elapsed / 1000) : 0,
      lowLatency: this.context.config.HLS_LOW_LATENCY,
      publisher: this.publisher ? { address: this.publisher.clientAddress, sessionId: this.publisher.sessionId } : null,
      muxer: this.run ? { run: this.run.run, pid: this.run.pid } : null,
      restarts: this.restarts,
      ladder: formatLadderSpec(this.ladder),
      renditions: renditions.map((r) => ({ name: r.name, width: r.width, height: r.height, video: r.video, bandwidth: r.bandwidth })),
      transcode: {
        cpuCores: this.cpu.cores === null ? null : Math.round(this.cpu.cores * 1000) / 1000,
        cpuSeconds: Math.round(this.cpu.totalSeconds * 100) / 100,
        speed: this.speed?.speed == null ? null : Math.round(this.speed.speed * 1000) / 1000,
        slow: this.speed?.slow ?? false,
      },
      playlist: playlist
        ? {
            mediaSequence: playlist.state.mediaSequence,
            discontinuitySequence: playlist.state.discontinuitySequence,
            targetDuration: playlist.state.targetDuration,
            partTarget: playlist.state.partTarget,
            segments: playlist.state.segments,
            segmentsPublished: playlist.segmentsPublished,
            lastSegmentAt: playlist.lastSegmentAt?.toISOString() ?? null,
          }
        : null,
    };
  }

  /** The CPU of the current run's ffmpeg (/proc) and its speed, into metrics (once a second). */
  async sampleCpu(): Promise<void> {
    const pid = this.run?.pid ?? null;
    if (pid === null) return;
    if (pid !== this.cpuPid) {
      this.cpu.reset();
      this.cpuPid = pid;
    }
    const cpu = await processCpuSeconds(pid);
    if (cpu === null) return;
    const { metrics } = this.context;
    const used = this.cpu.reading(cpu);
    if (used > 0) metrics.ffmpegCpuSeconds.inc({ stream: this.stream }, used);
    if (this.cpu.cores !== null) metrics.ffmpegCpuCores.set({ stream: this.stream }, this.cpu.cores);
    if (this.speed?.speed != null) metrics.ffmpegSpeed.set({ stream: this.stream }, this.speed.speed);
  }

  private archiveEnding: Promise<void> | null = null;

  private createArchive(): SessionArchive | null {
    const { config, logger, metrics } = this.context;
    if (!config.ARCHIVE) return null;
    try {
      return new SessionArchive({
        mediaDir: config.MEDIA_DIR,
        stream: this.stream,
        session: newSessionId(this.since),
        startedAt: this.since,
        ffmpegPath: config.FFMPEG_PATH,
        logger,
        onError: (op) => metrics.archiveErrors.inc({ op }),
        onSegmentArchived: () => metrics.archiveSegments.inc(),
      });
    } catch (err) {
      // Recording is a side job: a broadcast goes on air without it.
      this.log.error({ err }, 'cannot record this broadcast');
      metrics.archiveErrors.inc({ op: 'dir' });
      return null;
    }
  }

  private openPlaylist(): Promise<StreamPlaylist> {
    const { config, metrics, mediaDisk, logger } = this.context;
    const stream = this.stream;
    metrics.renditions.set({ stream }, this.renditions?.length ?? 1);
    return StreamPlaylist.open({
      stream,
      dir: streamDir(config.MEDIA_DIR, stream),
      renditions: this.renditions,
      windowSegments: config.HLS_WINDOW_SEGMENTS,
      deleteGraceSegments: config.HLS_DELETE_GRACE_SEGMENTS,
      minSegmentSeconds: config.HLS_SEGMENT_SECONDS,
      targetDurationOverride: config.HLS_TARGET_DURATION,
      partSeconds: config.HLS_LOW_LATENCY ? config.HLS_PART_SECONDS : null,
      partHoldBackParts: config.HLS_PART_HOLD_BACK_PARTS,
      logger,
      archive: this.archive,
      onWriteError: (file, err) => mediaDisk.writeFailed(stream, file, err),
      onWriteOk: () => mediaDisk.writeSucceeded(),
      onPlaylistWritten: this.context.playlistWritten,
      onSegmentPublished: (segment, fits) => {
        metrics.segmentsPublished.inc();
        metrics.segmentDuration.observe(segment.duration);
        if (!fits) metrics.segmentsOverTarget.inc();
      },
      onPartOverTarget: () => metrics.partsOverTarget.inc(),
      onStepLost: () => metrics.mediaLost.inc({ stream }),
    });
  }

  /**
   * Feeds the publisher's FLV into a probe (keeping it) until the source's picture size and codecs
   * are known. The tap stays attached: the caller passes what was kept to ffmpeg, then the rest.
   */
  private probeSource(publisher: Publisher): Promise<ProbedSource> {
    return new Promise((resolve) => {
      const probe = new FlvSourceProbe();
      const kept: Buffer[] = [];
      let keptBytes = 0;
      let sink: ((flv: Buffer) => void) | null = null;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      // The tap may deliver the GOP cache synchronously, inside attachTap: detach is bound late.
      let detachTap: (() => void) | null = null;
      const detach = (): void => detachTap?.();
      const settle = (): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ facts: probe.facts, kept, setSink: (s) => (sink = s), detach });
      };
      detachTap = publisher.attachTap((flv) => {
        if (sink) return sink(flv);
        // Bounded: a source that never sends its configuration is given up on, not buffered forever.
        if (keptBytes < 16 * 1024 * 1024) {
          kept.push(flv);
          keptBytes += flv.length;
        }
        if (probe.push(flv) || keptBytes >= 16 * 1024 * 1024) settle();
      });
      if (!settled) timer = setTimeout(settle, 5000);
    });
  }

  private async startRun(publisher: Publisher): Promise<void> {
    const { config, metrics } = this.context;
    let probed: ProbedSource | null = null;
    if (this.ladder.length > 0) {
      probed = await this.probeSource(publisher);
      if (this.publisher !== publisher || this.run !== null) {
        probed.detach();
        return;
      }
      if (!this.renditions) {
        const stats = publisher.inputStats();
        const source = sourceInfoFrom(probed.facts, { fps: stats.video?.fps ?? null, bitrateKbps: null });
        this.renditions = renditionsFor(this.ladder, source);
        this.log.info(
          { ladder: formatLadderSpec(this.ladder), source: `${source.width}x${source.height}`, renditions: this.renditions.map((r) => r.name) },
          this.renditions.length > 1 ? 'quality ladder for this broadcast' : 'quality ladder: no rung below the source height, source only',
        );
      }
    }
    // A broadcast that is still ending writes its ENDLIST first; then ours continues the numbering.
    this.playlist ??= this.previousEnding.then(() => this.openPlaylist());
    let playlist: StreamPlaylist;
    try {
      playlist = await this.playlist;
      this.openedPlaylist = playlist;
    } catch (err) {
      probed?.detach();
      this.log.error({ err }, 'cannot open the stream folder, dropping the publisher');
      publisher.disconnect();
      return;
    }
    if (this.publisher !== publisher) {
      probed?.detach();
      return; // left while we were getting ready
    }
    const runId = newRunId();
    // Set before anything can fail: a later run, or the ENDLIST, waits for this run's last part.
    const previous = this.previousRunDone;
    let settle!: () => void;
    this.previousRunDone = new Promise((resolve) => (settle = resolve));
    // Parts of this run are queued behind the previous run's last ones.
    let handOver = previous;
    const speed = this.newSpeedWatch();
    const renditions = this.renditions;
    const run: MuxerRun = new MuxerRun({
      run: runId,
      ffmpegPath: config.FFMPEG_PATH,
      args: renditions ? ladderArgs(renditions, config.LADDER_PRESET) : passthroughArgs(),
      outputs: renditions ? renditions.map((r) => r.name) : [PASSTHROUGH_OUTPUT],
      partSeconds: config.HLS_PART_SECONDS,
      segmentSeconds: config.HLS_SEGMENT_SECONDS,
      partTarget: playlist.state.partTarget,
      logger: this.context.logger.child({ stream: this.stream }),
      onProgress: (chunk) => speed.write(chunk),
      onPart: (part: MuxerPart) => {
        this.consecutiveFailures = 0;
        handOver = handOver.then(() => playlist.addPart(part.output, part));
      },
      onUnexpectedExit: () => this.runDied(run),
    });
    this.runEnded.set(run, () => {
      // Whatever the run handed over is queued; then its open segment is complete.
      void handOver.then(() => playlist.runEnded(runId)).finally(settle);
    });
    this.run = run;
    this.speed = speed;
    try {
      await run.start();
    } catch (err) {
      probed?.detach();
      this.log.error({ err }, 'cannot start the muxer');
      this.runDied(run);
      return;
    }
    if (this.run !== run) {
      probed?.detach();
      return;
    }
    const feed = (flv: Buffer): void => {
      metrics.inputBytes.inc(flv.length);
      if (run.write(flv)) return;
      metrics.muxerStuck.inc();
      this.log.error({ run: runId }, 'ffmpeg is not reading its input, killing it');
      run.kill();
    };
    if (probed) {
      this.detachTap = probed.detach;
      for (const flv of probed.kept) feed(flv);
      probed.kept.length = 0;
      probed.setSink(feed);
    } else {
      this.detachTap = publisher.attachTap(feed);
    }
    this.context.changed();
  }

  /** Per run: called once, when its last part is handed over (it finished, died or never started). */
  private readonly runEnded = new WeakMap<MuxerRun, () => void>();

  private settleRun(run: MuxerRun): void {
    const settle = this.runEnded.get(run);
    this.runEnded.delete(run);
    settle?.();
  }

  private newSpeedWatch(): SpeedWatch {
    const { metrics, config } = this.context;
    const stream = this.stream;
    // A new run starts with a clean slate (a restart or reconnect of a slow run is judged afresh).
    metrics.ffmpegSlow.set({ stream }, 0);
    return new SpeedWatch({
      sustainSeconds: config.FFMPEG_SLOW_SECONDS,
      onSlow: (speed) => {
        metrics.ffmpegSlowEvents.inc({ stream });
        metrics.ffmpegSlow.set({ stream }, 1);
        this.log.warn(
          { speed: Math.round(speed * 1000) / 1000, ladder: formatLadderSpec(this.ladder), cpuCores: this.cpu.cores, seconds: config.FFMPEG_SLOW_SECONDS },
          'ffmpeg cannot keep real time (speed below 1.0x): viewers will stall; use a lighter ladder or more CPU',
        );
      },
      onRecovered: (speed) => {
        metrics.ffmpegSlow.set({ stream }, 0);
        this.log.info({ speed: Math.round(speed * 1000) / 1000 }, 'ffmpeg keeps real time again');
      },
    });
  }

  /** Detaches the tap and lets the current run flush and exit. */
  private stopRun(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.detachTap?.();
    this.detachTap = null;
    const run = this.run;
    this.run = null;
    if (!run) return;
    void run
      .finish()
      .catch((err: unknown) => this.log.error({ err }, 'error finishing a muxer run'))
      .finally(() => this.settleRun(run));
  }

  private runDied(run: MuxerRun): void {
    this.settleRun(run);
    if (this.run !== run) return;
    this.detachTap?.();
    this.detachTap = null;
    this.run = null;
    const publisher = this.publisher;
    if (!publisher || this.stateValue !== 'live') return;
    this.restarts += 1;
    this.consecutiveFailures += 1;
    this.context.metrics.muxerRestarts.inc();
    const delay = Math.min(250 * 2 ** (this.consecutiveFailures - 1), this.context.config.MUXER_MAX_BACKOFF_MS);
    this.log.warn({ delayMs: delay, restarts: this.restarts }, 'restarting the muxer');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.publisher === publisher) void this.startRun(publisher);
    }, delay);
    this.context.changed();
  }

  private end(): Promise<void> {
    if (this.endedPromise) return this.endedPromise;
    this.stateValue = 'ending';
    this.endedPromise = (async () => {
      await this.previousRunDone;
      try {
        const playlist = await this.playlist;
        await playlist?.end();
      } catch (err) {
        this.log.error({ err }, 'could not end the playlist');
      }
      // After the live ENDLIST (viewers first), and not awaited: a next broadcast on this stream
      // waits for `ended`, and must not wait for the recording (its thumbnail, a slow disk).
      if (this.archive) this.archiveEnding = this.archive.end();
      const { metrics } = this.context;
      for (const gauge of [metrics.ffmpegCpuCores, metrics.ffmpegSpeed, metrics.ffmpegSlow, metrics.renditions]) gauge.remove({ stream: this.stream });
      this.log.info({ session: this.archive?.session, durationSeconds: Math.round((Date.now() - this.since.getTime()) / 1000), publishers: this.publishers }, 'broadcast ended');
      this.resolveFinished();
    })();
    this.context.changed();
    return this.endedPromise;
  }
}
