import { execFile } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { createTrustList } from '../../common/src/access-record.ts';
import { closeHttpServer, listen, loadConfigOrExit, runUntilSignal } from '../../common/src/lifecycle.ts';
import { createLogger, flushLogger } from '../../common/src/logger.ts';
import { ingestStateFile, liveRoot } from '../../common/src/media-layout.ts';
import { createMetricsRegistry } from '../../common/src/ops-endpoints.ts';
import { applyRetention, endAbandonedArchives } from './archive/archive-maintenance.ts';
import { RecordingWatchers } from './archive/recording-watchers.ts';
import { BroadcastManager } from './broadcasts.ts';
import { loadIngestConfig } from './config.ts';
import { createControlServer } from './control-server.ts';
import { endAbandonedPlaylists } from './hls/stream-playlist.ts';
import { LiveStateWriter } from './live-state-writer.ts';
import { MediaDiskHealth } from './media-disk.ts';
import { createIngestMetrics } from './metrics.ts';
import { decidePublish } from './publish-policy.ts';
import { RtmpServer } from './rtmp/rtmp-server.ts';
import { StreamKeys } from './stream-keys.ts';
import { createUploads } from './uploads/uploads.ts';

const config = loadConfigOrExit(() => loadIngestConfig());
const logger = createLogger('ingest', config.LOG_LEVEL);
const registry = createMetricsRegistry('ingest', config.INSTANCE);
const metrics = createIngestMetrics(registry, {
  rtmpConnections: () => rtmp.connectionCount,
  mediaFreeBytes: () => mediaDisk.freeBytes(),
});
let stopping = false;

const mediaDisk = new MediaDiskHealth(config.MEDIA_DIR, metrics, logger);
const keys = new StreamKeys(config.DATA_DIR, logger);
let liveState: LiveStateWriter | null = null;
const broadcasts = new BroadcastManager(config, logger, metrics, mediaDisk, () => liveState?.update(), (stream) => keys.get(stream)?.ladder);
liveState = new LiveStateWriter(ingestStateFile(config.MEDIA_DIR), config.LIVE_STATE_HEARTBEAT_MS, () => broadcasts.status(), logger, {
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

let rtmpListening = false;
const uploads = createUploads(config, registry, logger);
const control = createControlServer(
  registry,
  () => (stopping ? 'shutting down' : !rtmpListening ? 'RTMP not listening' : !keys.loaded ? 'stream registry not loaded' : null),
  () => broadcasts.status(),
  uploads.handle,
);

async function checkFfmpeg(): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(config.FFMPEG_PATH, ['-hide_banner', '-version'], { timeout: 10_000 });
    return stdout.split('\n')[0] ?? 'ffmpeg';
  } catch (err) {
    throw new Error(`ffmpeg not usable at FFMPEG_PATH=${config.FFMPEG_PATH} (${(err as Error).message}); install it (apt-get install ffmpeg) or set FFMPEG_PATH`);
  }
}

let retentionTimer: NodeJS.Timeout | null = null;
let retentionRunning = false;
/** Who watches recordings (monitoring); null with ARCHIVE_WATCH_CHECK=off. */
const recordingWatchers =
  config.ARCHIVE_WATCH_CHECK === 'on'
    ? new RecordingWatchers({ monitoringUrl: config.MONITORING_URL, opsToken: config.OPS_TOKEN, windowSeconds: config.ARCHIVE_WATCH_WINDOW_SECONDS })
    : null;

/** Background retention pass; never overlaps itself, never fails the service. */
function runRetention(): void {
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
}

async function start(): Promise<void> {
  const ffmpegVersion = await checkFfmpeg();
  await mkdir(liveRoot(config.MEDIA_DIR), { recursive: true });
  // Work folders of runs that a crash interrupted hold nothing a viewer can use.
  await rm(path.join(config.MEDIA_DIR, 'ingest', 'work'), { recursive: true, force: true });
  await endAbandonedPlaylists(liveRoot(config.MEDIA_DIR), logger);
  await endAbandonedArchives(config.MEDIA_DIR, logger).catch((err: unknown) => logger.error({ err }, 'could not check the archive for open recordings'));
  if (config.ARCHIVE_MAX_AGE_HOURS > 0 || config.ARCHIVE_MAX_GB > 0) {
    const watchCheck = { watchCheck: config.ARCHIVE_WATCH_CHECK, monitoringUrl: config.MONITORING_URL, windowSeconds: config.ARCHIVE_WATCH_WINDOW_SECONDS };
    if (!recordingWatchers) logger.warn(watchCheck, 'recording retention without a watch check (ARCHIVE_WATCH_CHECK=off): a recording may be deleted while someone watches it');
    else if (!config.OPS_TOKEN) logger.warn(watchCheck, 'recording retention cannot ask monitoring without OPS_TOKEN: no recording will be deleted (set OPS_TOKEN, or ARCHIVE_WATCH_CHECK=off)');
    else logger.info(watchCheck, 'recording retention keeps recordings being watched (asks monitoring)');
    runRetention();
    retentionTimer = setInterval(runRetention, config.ARCHIVE_RETENTION_INTERVAL_MS);
    retentionTimer.unref();
  }
  await uploads.start();
  await keys.start();
  await liveState!.start();
  const controlPort = await listen(control, config.CONTROL_PORT, config.CONTROL_HOST);
  const rtmpPort = await rtmp.listen();
  rtmpListening = true;
  logger.info({ rtmpPort, controlPort, mediaDir: config.MEDIA_DIR, dataDir: config.DATA_DIR, streams: keys.size, ffmpeg: ffmpegVersion }, 'ingest listening');
}

runUntilSignal({
  logger,
  shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
  stop: async () => {
    stopping = true;
    if (retentionTimer) clearInterval(retentionTimer);
    rtmp.stopAccepting();
    rtmpListening = false;
    await Promise.all([broadcasts.endAll(), uploads.stop()]);
    rtmp.close();
    await liveState!.stop();
    keys.stop();
    await closeHttpServer(control, 2000);
  },
});

start().catch(async (err: unknown) => {
  logger.fatal({ err }, `ingest could not start: ${(err as Error).message}`);
  await flushLogger(logger);
  process.exit(1);
});
