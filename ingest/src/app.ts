/**
 * Ingest, built from its configuration: the RTMP server (node-media-server behind our adapter),
 * the broadcasts it feeds (ffmpeg runs, parts, playlists, recordings), the control HTTP (GET
 * /streams, the playlist feed, uploads, ops endpoints), live.json, recording retention. Nothing
 * runs until start(); close() ends every broadcast (ENDLIST written) and stops everything. main.ts
 * only wires the process (config from the environment, signals, exit codes); tests build it in-process.
 */
import { execFile } from 'node:child_process';
import type { Server } from 'node:http';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Registry } from 'prom-client';
import { createTrustList } from '../../common/src/access-record.ts';
import { closeHttpServer, listen } from '../../common/src/lifecycle.ts';
import type { Logger } from '../../common/src/logger.ts';
import { ingestStateFile, liveRoot } from '../../common/src/media-layout.ts';
import { createMetricsRegistry } from '../../common/src/ops-endpoints.ts';
import { applyRetention, endAbandonedArchives } from './archive/archive-maintenance.ts';
import { RecordingWatchers } from './archive/recording-watchers.ts';
import { Broadcasts } from './broadcast/broadcasts.ts';
import type { IngestConfig } from './config.ts';
import { createControlServer } from './control-server.ts';
import { PlaylistFeed } from './hls/playlist-feed.ts';
import { endAbandonedPlaylists } from './hls/stream-playlist.ts';
import { LiveStateWriter } from './live-state-writer.ts';
import { MediaDiskHealth } from './media-disk.ts';
import { createIngestMetrics } from './metrics.ts';
import { decidePublish } from './publish-policy.ts';
import { RtmpServer } from './rtmp/rtmp-server.ts';
import { StreamKeys } from './stream-keys.ts';
import { createUploads } from './uploads/uploads.ts';

export interface IngestApp {
  readonly registry: Registry;
  readonly control: Server;
  readonly broadcasts: Broadcasts;
  /** Checks ffmpeg, recovers what a crash left, listens; resolves with the bound ports. */
  start(): Promise<{ rtmpPort: number; controlPort: number }>;
  /** Readiness false, no new publishers, every broadcast ended and flushed, listeners closed. Idempotent. */
  close(): Promise<void>;
}

export function buildIngest(config: IngestConfig, logger: Logger, registry: Registry = createMetricsRegistry('ingest', config.INSTANCE)): IngestApp {
  let stopping = false;
  let rtmpListening = false;
  let closed: Promise<void> | null = null;
  // Late-bound sources: the objects they read are built below.
  const metrics = createIngestMetrics(registry, {
    rtmpConnections: () => rtmp.connectionCount,
    mediaFreeBytes: () => mediaDisk.freeBytes(),
    feedReaders: () => feed.readerCount,
  });
  const mediaDisk = new MediaDiskHealth(config.MEDIA_DIR, metrics, logger);
  const keys = new StreamKeys(config.DATA_DIR, logger);
  const feed = new PlaylistFeed();
  const broadcasts: Broadcasts = new Broadcasts({
    config,
    logger,
    metrics,
    mediaDisk,
    playlistWritten: (file, text) => feed.publish(file, text),
    ladderFor: (stream) => keys.get(stream)?.ladder,
    onChange: () => liveState.update(),
  });
  const liveState = new LiveStateWriter(ingestStateFile(config.MEDIA_DIR), config.LIVE_STATE_HEARTBEAT_MS, () => broadcasts.status(), logger, {
    failed: (err) => mediaDisk.writeFailed(null, 'live-state', err),
    succeeded: () => mediaDisk.writeSucceeded(),
  });

  const rtmp = new RtmpServer({
    port: config.RTMP_PORT,
    host: config.RTMP_HOST,
    idleTimeoutMs: config.PUBLISH_IDLE_TIMEOUT_MS,
    handshakeTimeoutMs: config.RTMP_HANDSHAKE_TIMEOUT_MS,
    maxConnections: config.RTMP_MAX_CONNECTIONS,
    // Empty = publishers may connect from anywhere (the stream key is still required).
    allowedNetworks: config.PUBLISH_ALLOW_CIDRS.length > 0 ? createTrustList(config.PUBLISH_ALLOW_CIDRS) : null,
    logger,
    handlers: {
      authorizePublish: (request) => {
        const decide = () => decidePublish(request, (stream) => keys.get(stream), (stream) => broadcasts.isLive(stream));
        const decision = decide();
        // A stream created or rotated a moment ago may not be in memory yet: look once more.
        if (!decision.accept && (decision.reason === 'unknown-stream' || decision.reason === 'wrong-key') && keys.refreshIfChangedSync()) return decide();
        return decision;
      },
      publishRefused: (request, reason) => {
        metrics.publishesRefused.inc({ reason });
        // The key itself is never logged.
        logger.warn({ app: request.app, stream: request.stream, client: request.clientAddress, reason }, 'publish refused');
      },
      connectionRefused: (client, reason) => {
        metrics.publishesRefused.inc({ reason });
        logger.warn({ client, reason, allowed: config.PUBLISH_ALLOW_CIDRS }, 'publish refused');
      },
      connectionDropped: (_client, reason) => metrics.rtmpConnectionsDropped.inc({ reason }),
      publishStarted: (publisher) => broadcasts.publishStarted(publisher),
      publishEnded: (publisher, end) => broadcasts.publishEnded(publisher, end),
    },
  });

  const uploads = createUploads(config, registry, logger);
  const control = createControlServer(
    registry,
    () => (stopping ? 'shutting down' : !rtmpListening ? 'RTMP not listening' : !keys.loaded ? 'stream registry not loaded' : null),
    () => broadcasts.status(),
    (req, res, path) => feed.handle(req, res, path) || uploads.handle(req, res, path),
  );

  /** Who watches recordings (monitoring); null with ARCHIVE_WATCH_CHECK=off. */
  const recordingWatchers =
    config.ARCHIVE_WATCH_CHECK === 'on'
      ? new RecordingWatchers({ monitoringUrl: config.MONITORING_URL, opsToken: config.OPS_TOKEN, windowSeconds: config.ARCHIVE_WATCH_WINDOW_SECONDS })
      : null;
  let retentionTimer: NodeJS.Timeout | null = null;
  let retentionRunning = false;

  /** Background retention pass; never overlaps itself, never fails the service. */
  const runRetention = (): void => {
    if (retentionRunning || stopping) return;
    retentionRunning = true;
    applyRetention({
      mediaDir: config.MEDIA_DIR,
      maxAgeHours: config.ARCHIVE_MAX_AGE_HOURS,
      maxBytes: config.ARCHIVE_MAX_GB * 1024 ** 3,
      recording: () => broadcasts.recordingSessions(),
      logger,
      onDeleted: (reason) => metrics.archiveSessionsDeleted.inc({ reason }),
      watchers: recordingWatchers,
      onKept: (reason) => metrics.archiveSessionsKeptWatched.inc({ reason }),
      onDeferred: (reason) => metrics.archiveRetentionDeferred.inc({ reason }),
    })
      .catch((err: unknown) => {
        logger.error({ err }, 'archive retention failed');
        metrics.archiveErrors.inc({ op: 'retention' });
      })
      .finally(() => {
        retentionRunning = false;
      });
  };

  const startRetention = (): void => {
    if (config.ARCHIVE_MAX_AGE_HOURS <= 0 && config.ARCHIVE_MAX_GB <= 0) return;
    const watchCheck = { watchCheck: config.ARCHIVE_WATCH_CHECK, monitoringUrl: config.MONITORING_URL, windowSeconds: config.ARCHIVE_WATCH_WINDOW_SECONDS };
    if (!recordingWatchers) logger.warn(watchCheck, 'recording retention without a watch check (ARCHIVE_WATCH_CHECK=off): a recording may be deleted while someone watches it');
    else if (!config.OPS_TOKEN) logger.warn(watchCheck, 'recording retention cannot ask monitoring without OPS_TOKEN: no recording will be deleted (set OPS_TOKEN, or ARCHIVE_WATCH_CHECK=off)');
    else logger.info(watchCheck, 'recording retention keeps recordings being watched (asks monitoring)');
    runRetention();
    retentionTimer = setInterval(runRetention, config.ARCHIVE_RETENTION_INTERVAL_MS);
    retentionTimer.unref();
  };

  return {
    registry,
    control,
    broadcasts,
    async start() {
      const ffmpegVersion = await checkFfmpeg(config.FFMPEG_PATH);
      await mkdir(liveRoot(config.MEDIA_DIR), { recursive: true });
      // Work folders of older versions (ffmpeg wrote its HLS output there) hold nothing a viewer can use.
      await rm(path.join(config.MEDIA_DIR, 'ingest', 'work'), { recursive: true, force: true });
      await endAbandonedPlaylists(liveRoot(config.MEDIA_DIR), logger);
      await endAbandonedArchives(config.MEDIA_DIR, logger).catch((err: unknown) => logger.error({ err }, 'could not check the archive for open recordings'));
      startRetention();
      await uploads.start();
      await keys.start();
      await liveState.start();
      await feed.start();
      await broadcasts.start();
      const controlPort = await listen(control, config.CONTROL_PORT, config.CONTROL_HOST);
      const rtmpPort = await rtmp.listen();
      rtmpListening = true;
      logger.info(
        { rtmpPort, controlPort, mediaDir: config.MEDIA_DIR, dataDir: config.DATA_DIR, streams: keys.size, ffmpeg: ffmpegVersion, lowLatency: config.HLS_LOW_LATENCY, partSeconds: config.HLS_PART_SECONDS },
        'ingest listening',
      );
      return { rtmpPort, controlPort };
    },
    close() {
      closed ??= (async () => {
        stopping = true;
        if (retentionTimer) clearInterval(retentionTimer);
        rtmp.stopAccepting();
        rtmpListening = false;
        await Promise.all([broadcasts.close(), uploads.stop()]);
        rtmp.close();
        await liveState.stop();
        keys.stop();
        await feed.close();
        await closeHttpServer(control, 2000);
      })();
      return closed;
    },
  };
}

async function checkFfmpeg(ffmpegPath: string): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(ffmpegPath, ['-hide_banner', '-version'], { timeout: 10_000 });
    return stdout.split('\n')[0] ?? 'ffmpeg';
  } catch (err) {
    throw new Error(`ffmpeg not usable at FFMPEG_PATH=${ffmpegPath} (${(err as Error).message}); install it (apt-get install ffmpeg) or set FFMPEG_PATH`);
  }
}
