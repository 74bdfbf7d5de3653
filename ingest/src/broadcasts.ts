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
import { MuxerRun, type MuxerSegment } from './hls/muxer-run.ts';
import { StreamPlaylist } from './hls/stream-playlist.ts';
import type { MediaDiskHealth } from './media-disk.ts';
import type { IngestMetrics } from './metrics.ts';
import type { Publisher, PublishEnd } from './rtmp/rtmp-server.ts';

type BroadcastState = 'live' | 'reconnecting' | 'ending';

interface Broadcast {
  stream: string;
  state: BroadcastState;
  since: Date;
  publisher: Publisher | null;
  playlist: Promise<StreamPlaylist>;
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

export interface BroadcastStatus extends LiveStream {
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
  private readonly playlists = new Map<Broadcast, StreamPlaylist>();
  /** Per run: called once its last segment is handed over (finished, died or never started). */
  private readonly runSettlers = new WeakMap<MuxerRun, () => void>();
  private readonly log: Logger;
  private readonly rootLog: Logger;
  private shuttingDown = false;

  constructor(
    private readonly config: IngestConfig,
    logger: Logger,
    private readonly metrics: IngestMetrics,
    private readonly mediaDisk: MediaDiskHealth,
    private readonly onChange: () => void,
  ) {
    this.rootLog = logger;
    this.log = logger.child({ component: 'broadcasts' });
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
      const previousEnding = existing?.ended ?? Promise.resolve();
      const since = new Date();
      const archive = this.createArchive(stream, since);
      broadcast = {
        stream,
        state: 'live',
        since,
        publisher: null,
        // A broadcast that is still ending writes its ENDLIST first; then ours continues the numbering.
        playlist: previousEnding.then(() => this.openPlaylist(stream, archive)),
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

  private openPlaylist(stream: string, archive: SessionArchive | null): Promise<StreamPlaylist> {
    return StreamPlaylist.open({
      stream,
      archive,
      dir: streamDir(this.config.MEDIA_DIR, stream),
      windowSegments: this.config.HLS_WINDOW_SEGMENTS,
      deleteGraceSegments: this.config.HLS_DELETE_GRACE_SEGMENTS,
      minSegmentSeconds: this.config.HLS_SEGMENT_SECONDS,
      targetDurationOverride: this.config.HLS_TARGET_DURATION,
      logger: this.rootLog,
      onWriteError: (file, err) => this.mediaDisk.writeFailed(stream, file, err),
      onSegmentPublished: (segment, fits) => {
        this.mediaDisk.writeSucceeded();
        this.metrics.segmentsPublished.inc();
        this.metrics.segmentDuration.observe(segment.duration);
        if (!fits) this.metrics.segmentsOverTarget.inc();
      },
    });
  }

  private async startRun(broadcast: Broadcast, publisher: Publisher): Promise<void> {
    let playlist: StreamPlaylist;
    try {
      playlist = await broadcast.playlist;
      this.playlists.set(broadcast, playlist);
    } catch (err) {
      this.log.error({ err, stream: broadcast.stream }, 'cannot open the stream folder, dropping the publisher');
      publisher.disconnect();
      return;
    }
    if (broadcast.publisher !== publisher) return; // left while we were getting ready
    const runId = newRunId();
    let segmentChain = broadcast.previousRunDone;
    let settle!: () => void;
    // Set before anything can fail: a later run, or the ENDLIST, waits for this run's last segment.
    broadcast.previousRunDone = new Promise((resolve) => {
      settle = () => void segmentChain.then(resolve, resolve);
    });
    const run: MuxerRun = new MuxerRun({
      run: runId,
      workDir: ingestWorkDir(this.config.MEDIA_DIR, broadcast.stream, runId),
      ffmpegPath: this.config.FFMPEG_PATH,
      segmentSeconds: this.config.HLS_SEGMENT_SECONDS,
      logger: this.rootLog.child({ stream: broadcast.stream }),
      onSegment: (segment: MuxerSegment) => {
        broadcast.consecutiveFailures = 0;
        segmentChain = segmentChain.then(() => playlist.addSegment(segment));
      },
      onUnexpectedExit: () => this.runDied(broadcast, run),
      onOutputProblem: (problem) => this.mediaDisk.writeFailed(broadcast.stream, problem.file, `${problem.name}: ${problem.problem}`),
    });
    this.runSettlers.set(run, settle);
    broadcast.run = run;
    try {
      await run.start();
    } catch (err) {
      this.log.error({ err, stream: broadcast.stream }, 'cannot start the muxer');
      this.runDied(broadcast, run);
      return;
    }
    if (broadcast.run !== run) return;
    broadcast.detachTap = publisher.attachTap((flv) => {
      this.metrics.inputBytes.inc(flv.length);
      if (run.write(flv)) return;
      this.metrics.muxerStuck.inc();
      this.log.error({ stream: broadcast.stream, run: runId }, 'ffmpeg is not reading its input, killing it');
      run.kill();
    });
    this.changed();
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
        await playlist.end();
      } catch (err) {
        this.log.error({ err, stream: broadcast.stream }, 'could not end the playlist');
      }
      // After the live ENDLIST (viewers first), and not awaited: a next broadcast on this stream
      // waits for `ended`, and must not wait for the recording (its thumbnail, a slow disk).
      if (broadcast.archive) this.trackArchiveEnding(broadcast.archive.end());
      if (this.broadcasts.get(broadcast.stream) === broadcast) this.broadcasts.delete(broadcast.stream);
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
