/**
 * Broadcasts: what happens to a stream between its first publisher and its EXT-X-ENDLIST.
 *
 *   publisher accepted ─▶ live ──(publisher leaves cleanly: deleteStream)──▶ ending ─▶ ended
 *                          │  ▲
 *       (connection drops) │  │ (same stream published again within RECONNECT_GRACE_MS:
 *                          ▼  │  same playlist, discontinuity at the join)
 *                       reconnecting ──(grace over)──▶ ending ─▶ ended
 *
 * While live, one muxer run (ffmpeg) at a time is fed from the publisher's FLV tap; a run that
 * dies, or whose output is unusable (a full disk truncates its init segment), is replaced (with
 * backoff) and the playlist continues after a discontinuity. Media write failures never end a
 * broadcast or drop its publisher: segments resume when writes work again.
 */
import { randomBytes } from 'node:crypto';
import { ingestWorkDir, streamDir } from '../../common/src/media-layout.ts';
import { SessionArchive } from './archive/session-archive.ts';
import type { LiveStream } from '../../common/src/live-state.ts';
import type { Logger } from '../../common/src/logger.ts';
import type { IngestConfig } from './config.ts';
import { LadderPlaylist } from './hls/ladder-playlist.ts';
import { muxerArgs, MuxerRun, type MuxerSegment } from './hls/muxer-run.ts';
import { previousNumbering, removeStaleOutputs, StreamPlaylist } from './hls/stream-playlist.ts';
import { FlvSourceProbe, sourceInfoFrom, type FlvSourceFacts } from './transcode/flv-source-probe.ts';
import { formatLadderSpec, parseLadderSpec, renditionsFor, type Rendition, type RenditionSpec } from './transcode/ladder.ts';
import { liveLadderArgs, PROGRESS_ARGS } from './transcode/live-ladder.ts';
import { CpuMeter, processCpuSeconds } from './transcode/process-cpu.ts';
import { SpeedWatch } from './transcode/speed-watch.ts';
import type { MediaDiskHealth } from './media-disk.ts';
import type { IngestMetrics } from './metrics.ts';
import type { Publisher, PublishEnd } from './rtmp/rtmp-server.ts';

type BroadcastState = 'live' | 'reconnecting' | 'ending';

interface Broadcast {
  stream: string;
  state: BroadcastState;
  since: Date;
  publisher: Publisher | null;
  /** Opened by the first run (a ladder needs the source's size first); null until then. */
  playlist: Promise<BroadcastPlaylist> | null;
  /** The previous broadcast of the stream finishing: our playlist continues after its ENDLIST. */
  previousEnding: Promise<void>;
  /** Rungs asked for in the registry when the broadcast started (empty: passthrough). */
  ladder: RenditionSpec[];
  /** The renditions, fixed by the first run for the broadcast's life (null: passthrough). */
  renditions: Rendition[] | null;
  /** ffmpeg cost: CPU of the current run's process and its speed. */
  cpu: CpuMeter;
  cpuPid: number | null;
  speed: SpeedWatch | null;
  run: MuxerRun | null;
  detachTap: (() => void) | null;
  /** Settles when the previous run's last segment is queued: the next run's segments go after it. */
  previousRunDone: Promise<void>;
  restarts: number;
  consecutiveFailures: number;
  restartTimer: NodeJS.Timeout | null;
  reconnectTimer: NodeJS.Timeout | null;
  ended: Promise<void> | null;
  publishers: number;
  lastPublisherAddress: string;
  /** The broadcast's recording (null with ARCHIVE=false or when it could not be set up). */
  archive: SessionArchive | null;
}

type BroadcastPlaylist = StreamPlaylist | LadderPlaylist;

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
  playlist: { mediaSequence: number; discontinuitySequence: number; targetDuration: number | null; segments: number; segmentsPublished: number; lastSegmentAt: string | null } | null;
}

/** `20261122-041200-a1b2c3`: start time in UTC (sorts by time) and a random tail (isSessionId). */
export function newSessionId(at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

function newRunId(): string {
  // Time-ordered and unique: segment names must never repeat for a stream (they are cached as immutable).
  return `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

export class BroadcastManager {
  private readonly broadcasts = new Map<string, Broadcast>();
  private readonly playlists = new Map<Broadcast, BroadcastPlaylist>();
  /** Per run: called once its last segment is handed over (finished, died or never started). */
  private readonly runSettlers = new WeakMap<MuxerRun, () => void>();
  private readonly log: Logger;
  private readonly rootLog: Logger;
  private shuttingDown = false;
  private readonly cpuTimer: NodeJS.Timeout;

  constructor(
    private readonly config: IngestConfig,
    logger: Logger,
    private readonly metrics: IngestMetrics,
    private readonly mediaDisk: MediaDiskHealth,
    private readonly onChange: () => void,
    /** The stream's ladder spec in the registry (undefined: none); read when a broadcast starts. */
    private readonly ladderFor: (stream: string) => string | undefined = () => undefined,
  ) {
    this.rootLog = logger;
    this.log = logger.child({ component: 'broadcasts' });
    this.cpuTimer = setInterval(() => void this.sampleCpu(), 1000);
    this.cpuTimer.unref();
  }

  /** A stream with a connected publisher: a second publisher is refused. */
  isLive(stream: string): boolean {
    return this.broadcasts.get(stream)?.state === 'live';
  }

  publishStarted(publisher: Publisher): void {
    if (this.shuttingDown) {
      publisher.disconnect();
      return;
    }
    const stream = publisher.stream;
    const existing = this.broadcasts.get(stream);
    let broadcast: Broadcast;
    if (existing && existing.state === 'reconnecting') {
      broadcast = existing;
      if (broadcast.reconnectTimer) clearTimeout(broadcast.reconnectTimer);
      broadcast.reconnectTimer = null;
      this.log.info({ stream, client: publisher.clientAddress }, 'publisher reconnected, continuing the playlist');
    } else {
      const since = new Date();
      const archive = this.createArchive(stream, since);
      broadcast = {
        stream,
        state: 'live',
        since,
        publisher: null,
        playlist: null,
        // A broadcast that is still ending writes its ENDLIST first; then ours continues the numbering.
        previousEnding: existing?.ended ?? Promise.resolve(),
        ladder: this.ladderOf(stream),
        renditions: null,
        cpu: new CpuMeter(),
        cpuPid: null,
        speed: null,
        run: null,
        detachTap: null,
        previousRunDone: Promise.resolve(),
        restarts: 0,
        consecutiveFailures: 0,
        restartTimer: null,
        reconnectTimer: null,
        ended: null,
        publishers: 0,
        lastPublisherAddress: publisher.clientAddress,
        archive,
      };
      this.broadcasts.set(stream, broadcast);
      this.log.info({ stream, client: publisher.clientAddress }, 'broadcast started');
    }
    broadcast.state = 'live';
    broadcast.publisher = publisher;
    broadcast.publishers += 1;
    broadcast.lastPublisherAddress = publisher.clientAddress;
    broadcast.consecutiveFailures = 0;
    this.metrics.publishesAccepted.inc();
    this.changed();
    void this.startRun(broadcast, publisher);
  }

  publishEnded(publisher: Publisher, end: PublishEnd): void {
    const broadcast = this.broadcasts.get(publisher.stream);
    if (!broadcast || broadcast.publisher !== publisher) return;
    this.metrics.publisherDisconnects.inc({ how: end.clean ? 'clean' : 'dropped' });
    broadcast.publisher = null;
    this.stopRun(broadcast);
    if (end.clean || this.config.RECONNECT_GRACE_MS === 0) {
      this.log.info({ stream: broadcast.stream, clean: end.clean }, 'publisher stopped, ending the broadcast');
      this.endBroadcast(broadcast);
    } else {
      this.log.warn({ stream: broadcast.stream, graceMs: this.config.RECONNECT_GRACE_MS }, 'publisher connection lost, waiting for it to reconnect');
      broadcast.state = 'reconnecting';
      broadcast.reconnectTimer = setTimeout(() => {
        broadcast.reconnectTimer = null;
        this.log.info({ stream: broadcast.stream }, 'publisher did not come back, ending the broadcast');
        this.endBroadcast(broadcast);
      }, this.config.RECONNECT_GRACE_MS);
      this.changed();
    }
  }

  /** Ends every broadcast (ENDLIST written, last segments flushed): used on shutdown. */
  async endAll(): Promise<void> {
    this.shuttingDown = true;
    this.stop();
    const endings: Promise<void>[] = [];
    for (const broadcast of this.broadcasts.values()) {
      if (broadcast.reconnectTimer) clearTimeout(broadcast.reconnectTimer);
      broadcast.reconnectTimer = null;
      const publisher = broadcast.publisher;
      broadcast.publisher = null;
      this.stopRun(broadcast);
      publisher?.disconnect();
      endings.push(this.endBroadcast(broadcast));
    }
    await Promise.all(endings);
    await Promise.all(this.archiveEndings);
  }

  status(): BroadcastStatus[] {
    const out: BroadcastStatus[] = [];
    for (const b of this.broadcasts.values()) {
      if (b.state === 'ending') continue;
      const stats = b.publisher?.inputStats() ?? null;
      const renditions = b.renditions ?? (stats?.video ? [{ name: 'source', width: stats.video.width, height: stats.video.height, video: 'copy' as const, bandwidth: null }] : []);
      const playlist = this.playlists.get(b);
      const elapsed = (Date.now() - (b.publisher?.startedAt.getTime() ?? Date.now())) / 1000;
      out.push({
        stream: b.stream,
        state: b.state,
        since: b.since.toISOString(),
        video: stats?.video ?? null,
        audio: stats?.audio ?? null,
        bitrateKbps: stats && elapsed > 1 ? Math.round((stats.bytesReceived * 8) / elapsed / 1000) : 0,
        publisher: b.publisher ? { address: b.publisher.clientAddress, sessionId: b.publisher.sessionId } : null,
        muxer: b.run ? { run: b.run.run, pid: b.run.pid } : null,
        restarts: b.restarts,
        ladder: formatLadderSpec(b.ladder),
        renditions: renditions.map((r) => ({ name: r.name, width: r.width, height: r.height, video: r.video, bandwidth: r.bandwidth })),
        transcode: {
          cpuCores: b.cpu.cores === null ? null : Math.round(b.cpu.cores * 1000) / 1000,
          cpuSeconds: Math.round(b.cpu.totalSeconds * 100) / 100,
          speed: b.speed?.speed == null ? null : Math.round(b.speed.speed * 1000) / 1000,
          slow: b.speed?.slow ?? false,
        },
        playlist: playlist
          ? { ...playlist.state, segmentsPublished: playlist.segmentsPublished, lastSegmentAt: playlist.lastSegmentAt?.toISOString() ?? null }
          : null,
      });
    }
    return out.sort((a, b) => a.stream.localeCompare(b.stream));
  }

  /** Recordings still being closed (end() never rejects); shutdown waits for them. */
  private readonly archiveEndings = new Set<Promise<void>>();

  private trackArchiveEnding(ending: Promise<void>): void {
    this.archiveEndings.add(ending);
    void ending.finally(() => this.archiveEndings.delete(ending));
  }

  /** Sessions being recorded now (retention never deletes them). */
  recordingSessions(): Set<string> {
    const out = new Set<string>();
    for (const b of this.broadcasts.values()) if (b.archive) out.add(`${b.stream}/${b.archive.session}`);
    return out;
  }

  private createArchive(stream: string, since: Date): SessionArchive | null {
    if (!this.config.ARCHIVE) return null;
    try {
      return new SessionArchive({
        mediaDir: this.config.MEDIA_DIR,
        stream,
        session: newSessionId(since),
        startedAt: since,
        ffmpegPath: this.config.FFMPEG_PATH,
        logger: this.rootLog,
        onError: (op) => this.metrics.archiveErrors.inc({ op }),
        onSegmentArchived: () => this.metrics.archiveSegments.inc(),
      });
    } catch (err) {
      // Recording is a side job: a broadcast goes on air without it.
      this.log.error({ err, stream }, 'cannot record this broadcast');
      this.metrics.archiveErrors.inc({ op: 'dir' });
      return null;
    }
  }

  private ladderOf(stream: string): RenditionSpec[] {
    const spec = this.ladderFor(stream);
    if (!spec) return [];
    try {
      return parseLadderSpec(spec);
    } catch (err) {
      // The registry validates ladders; a hand-edited bad one must not keep the stream off the air.
      this.log.error({ stream, ladder: spec, err: (err as Error).message }, 'invalid quality ladder in the registry, broadcasting without it');
      return [];
    }
  }

  private async openPlaylist(broadcast: Broadcast): Promise<BroadcastPlaylist> {
    const { stream, archive } = broadcast;
    const dir = streamDir(this.config.MEDIA_DIR, stream);
    const common = {
      stream,
      windowSegments: this.config.HLS_WINDOW_SEGMENTS,
      deleteGraceSegments: this.config.HLS_DELETE_GRACE_SEGMENTS,
      minSegmentSeconds: this.config.HLS_SEGMENT_SECONDS,
      targetDurationOverride: this.config.HLS_TARGET_DURATION,
      logger: this.rootLog,
      onWriteError: (file: 'init' | 'playlist', err: Error) => this.mediaDisk.writeFailed(stream, file, err),
      onSegmentPublished: (segment: { duration: number }, fits: boolean) => {
        this.mediaDisk.writeSucceeded();
        this.metrics.segmentsPublished.inc();
        this.metrics.segmentDuration.observe(segment.duration);
        if (!fits) this.metrics.segmentsOverTarget.inc();
      },
    };
    if (broadcast.renditions) {
      this.metrics.renditions.set({ stream }, broadcast.renditions.length);
      return LadderPlaylist.open({ ...common, dir, archive, renditions: broadcast.renditions, onSegmentDropped: () => this.metrics.ladderSegmentsDropped.inc({ stream }) });
    }
    this.metrics.renditions.set({ stream }, 1);
    // An earlier ladder broadcast left rendition folders: gone, and our numbering continues theirs.
    const startAt = await previousNumbering(dir);
    await removeStaleOutputs(dir, new Set(), false, this.rootLog);
    return StreamPlaylist.open({ ...common, dir, archive, startAt });
  }

  /**
   * Feeds the publisher's FLV into a probe (keeping it) until the source's picture size and codecs
   * are known. The tap stays attached: the caller passes what was kept to ffmpeg, then the rest.
   */
  private probeSource(publisher: Publisher): Promise<{ facts: FlvSourceFacts; kept: Buffer[]; setSink: (sink: (flv: Buffer) => void) => void; detach: () => void }> {
    return new Promise((resolve) => {
      const probe = new FlvSourceProbe();
      const kept: Buffer[] = [];
      let keptBytes = 0;
      let sink: ((flv: Buffer) => void) | null = null;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      // The tap may deliver the GOP cache synchronously, inside attachTap: detach is bound late.
      let detachTap: (() => void) | null = null;
      const detach = () => detachTap?.();
      const settle = () => {
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

  private async startRun(broadcast: Broadcast, publisher: Publisher): Promise<void> {
    let probed: Awaited<ReturnType<BroadcastManager['probeSource']>> | null = null;
    if (broadcast.ladder.length > 0) {
      probed = await this.probeSource(publisher);
      if (broadcast.publisher !== publisher || broadcast.run !== null) {
        probed.detach();
        return;
      }
      if (!broadcast.renditions) {
        const stats = publisher.inputStats();
        const source = sourceInfoFrom(probed.facts, { fps: stats.video?.fps ?? null, bitrateKbps: null });
        broadcast.renditions = renditionsFor(broadcast.ladder, source);
        this.log.info(
          { stream: broadcast.stream, ladder: formatLadderSpec(broadcast.ladder), source: `${source.width}x${source.height}`, renditions: broadcast.renditions.map((r) => r.name) },
          broadcast.renditions.length > 1 ? 'quality ladder for this broadcast' : 'quality ladder: no rung below the source height, source only',
        );
      }
    }
    broadcast.playlist ??= broadcast.previousEnding.then(() => this.openPlaylist(broadcast));
    let playlist: BroadcastPlaylist;
    try {
      playlist = await broadcast.playlist;
      this.playlists.set(broadcast, playlist);
    } catch (err) {
      probed?.detach();
      this.log.error({ err, stream: broadcast.stream }, 'cannot open the stream folder, dropping the publisher');
      publisher.disconnect();
      return;
    }
    if (broadcast.publisher !== publisher) {
      probed?.detach();
      return; // left while we were getting ready
    }
    const runId = newRunId();
    let segmentChain = broadcast.previousRunDone;
    let settle!: () => void;
    // Set before anything can fail: a later run, or the ENDLIST, waits for this run's last segment.
    broadcast.previousRunDone = new Promise((resolve) => {
      settle = () => void segmentChain.then(resolve, resolve);
    });
    const workDir = ingestWorkDir(this.config.MEDIA_DIR, broadcast.stream, runId);
    const renditions = broadcast.renditions;
    const speed = this.newSpeedWatch(broadcast);
    const run: MuxerRun = new MuxerRun({
      run: runId,
      workDir,
      ffmpegPath: this.config.FFMPEG_PATH,
      segmentSeconds: this.config.HLS_SEGMENT_SECONDS,
      logger: this.rootLog.child({ stream: broadcast.stream }),
      renditions: renditions?.map((r) => r.name),
      args: renditions
        ? liveLadderArgs({ run: runId, workDir, segmentSeconds: this.config.HLS_SEGMENT_SECONDS, renditions, preset: this.config.LADDER_PRESET })
        : [...PROGRESS_ARGS, ...muxerArgs(runId, workDir, this.config.HLS_SEGMENT_SECONDS)],
      onProgress: (chunk) => speed.write(chunk),
      onSegment: (segment: MuxerSegment) => {
        broadcast.consecutiveFailures = 0;
        segmentChain = segmentChain.then(() => playlist.addSegment(segment));
      },
      onUnexpectedExit: () => this.runDied(broadcast, run),
      onOutputProblem: (problem) => this.mediaDisk.writeFailed(broadcast.stream, problem.file, `${problem.name}: ${problem.problem}`),
    });
    this.runSettlers.set(run, settle);
    broadcast.run = run;
    broadcast.speed = speed;
    try {
      await run.start();
    } catch (err) {
      probed?.detach();
      this.log.error({ err, stream: broadcast.stream }, 'cannot start the muxer');
      this.runDied(broadcast, run);
      return;
    }
    if (broadcast.run !== run) {
      probed?.detach();
      return;
    }
    const feed = (flv: Buffer): void => {
      this.metrics.inputBytes.inc(flv.length);
      if (run.write(flv)) return;
      this.metrics.muxerStuck.inc();
      this.log.error({ stream: broadcast.stream, run: runId }, 'ffmpeg is not reading its input, killing it');
      run.kill();
    };
    if (probed) {
      broadcast.detachTap = probed.detach;
      for (const flv of probed.kept) feed(flv);
      probed.kept.length = 0;
      probed.setSink(feed);
    } else {
      broadcast.detachTap = publisher.attachTap(feed);
    }
    this.changed();
  }

  private newSpeedWatch(broadcast: Broadcast): SpeedWatch {
    const stream = broadcast.stream;
    // A new run starts with a clean slate (a restart or reconnect of a slow run is judged afresh).
    this.metrics.ffmpegSlow.set({ stream }, 0);
    const watch: SpeedWatch = new SpeedWatch({
      sustainSeconds: this.config.FFMPEG_SLOW_SECONDS,
      onSlow: (speed) => {
        this.metrics.ffmpegSlowEvents.inc({ stream });
        this.metrics.ffmpegSlow.set({ stream }, 1);
        this.log.warn(
          { stream, speed: Math.round(speed * 1000) / 1000, ladder: formatLadderSpec(broadcast.ladder), cpuCores: broadcast.cpu.cores, seconds: this.config.FFMPEG_SLOW_SECONDS },
          'ffmpeg cannot keep real time (speed below 1.0x): viewers will stall; use a lighter ladder or more CPU',
        );
      },
      onRecovered: (speed) => {
        this.metrics.ffmpegSlow.set({ stream }, 0);
        this.log.info({ stream, speed: Math.round(speed * 1000) / 1000 }, 'ffmpeg keeps real time again');
      },
    });
    return watch;
  }

  /** Once a second: CPU of each broadcast's ffmpeg (/proc) and its speed, into metrics and status. */
  private async sampleCpu(): Promise<void> {
    for (const b of this.broadcasts.values()) {
      const pid = b.run?.pid ?? null;
      if (pid === null) continue;
      if (pid !== b.cpuPid) {
        b.cpu.reset();
        b.cpuPid = pid;
      }
      const cpu = await processCpuSeconds(pid);
      if (cpu === null) continue;
      const used = b.cpu.reading(cpu);
      if (used > 0) this.metrics.ffmpegCpuSeconds.inc({ stream: b.stream }, used);
      if (b.cpu.cores !== null) this.metrics.ffmpegCpuCores.set({ stream: b.stream }, b.cpu.cores);
      if (b.speed?.speed != null) this.metrics.ffmpegSpeed.set({ stream: b.stream }, b.speed.speed);
    }
  }

  /** Stops the CPU sampler (shutdown). */
  stop(): void {
    clearInterval(this.cpuTimer);
  }

  /** Detaches the tap and lets the current run flush and exit. */
  private stopRun(broadcast: Broadcast): void {
    if (broadcast.restartTimer) clearTimeout(broadcast.restartTimer);
    broadcast.restartTimer = null;
    broadcast.detachTap?.();
    broadcast.detachTap = null;
    const run = broadcast.run;
    broadcast.run = null;
    if (!run) return;
    void run
      .finish()
      .then(() => this.runSettlers.get(run)?.())
      .then(() => run.removeWorkDir())
      .catch((err: unknown) => this.log.error({ err }, 'error finishing a muxer run'));
  }

  private runDied(broadcast: Broadcast, run: MuxerRun): void {
    this.runSettlers.get(run)?.();
    void run.removeWorkDir().catch(() => undefined);
    if (broadcast.run !== run) return;
    broadcast.detachTap?.();
    broadcast.detachTap = null;
    broadcast.run = null;
    const publisher = broadcast.publisher;
    if (!publisher || broadcast.state !== 'live') return;
    broadcast.restarts += 1;
    broadcast.consecutiveFailures += 1;
    this.metrics.muxerRestarts.inc();
    const delay = Math.min(250 * 2 ** (broadcast.consecutiveFailures - 1), this.config.MUXER_MAX_BACKOFF_MS);
    this.log.warn({ stream: broadcast.stream, delayMs: delay, restarts: broadcast.restarts }, 'restarting the muxer');
    broadcast.restartTimer = setTimeout(() => {
      broadcast.restartTimer = null;
      if (broadcast.publisher === publisher) void this.startRun(broadcast, publisher);
    }, delay);
    this.changed();
  }

  private endBroadcast(broadcast: Broadcast): Promise<void> {
    if (broadcast.ended) return broadcast.ended;
    broadcast.state = 'ending';
    broadcast.ended = (async () => {
      await broadcast.previousRunDone;
      try {
        const playlist = await broadcast.playlist;
        await playlist?.end();
      } catch (err) {
        this.log.error({ err, stream: broadcast.stream }, 'could not end the playlist');
      }
      // After the live ENDLIST (viewers first), and not awaited: a next broadcast on this stream
      // waits for `ended`, and must not wait for the recording (its thumbnail, a slow disk).
      if (broadcast.archive) this.trackArchiveEnding(broadcast.archive.end());
      if (this.broadcasts.get(broadcast.stream) === broadcast) {
        this.broadcasts.delete(broadcast.stream);
        for (const gauge of [this.metrics.ffmpegCpuCores, this.metrics.ffmpegSpeed, this.metrics.ffmpegSlow, this.metrics.renditions]) gauge.remove({ stream: broadcast.stream });
      }
      this.playlists.delete(broadcast);
      this.log.info({ stream: broadcast.stream, session: broadcast.archive?.session, durationSeconds: Math.round((Date.now() - broadcast.since.getTime()) / 1000), publishers: broadcast.publishers }, 'broadcast ended');
      this.changed();
    })();
    this.changed();
    return broadcast.ended;
  }

  private changed(): void {
    const counts = { live: 0, reconnecting: 0 };
    for (const b of this.broadcasts.values()) if (b.state !== 'ending') counts[b.state] += 1;
    this.metrics.liveStreams.set({ state: 'live' }, counts.live);
    this.metrics.liveStreams.set({ state: 'reconnecting' }, counts.reconnecting);
    this.onChange();
  }
}
