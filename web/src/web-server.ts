import { mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createTrustList } from '../../common/src/access-record.ts';
import { closeHttpServer, listen } from '../../common/src/lifecycle.ts';
import type { Logger } from '../../common/src/logger.ts';
import { liveRoot } from '../../common/src/media-layout.ts';
import type { Registry } from 'prom-client';
import { createMetricsRegistry, handleOpsRequest } from '../../common/src/ops-endpoints.ts';
import { createPinoAccessLog, type AccessLog } from './access-log.ts';
import { loadAssets } from './assets.ts';
import type { WebConfig } from './config.ts';
import { LivePlaylists } from './live-playlists.ts';
import { LiveSegments } from './live-segments.ts';
import { LiveStreams } from './live-streams.ts';
import { loadPlaylist } from './media-files.ts';
import { createMediaHandler, sendMedia } from './media-handler.ts';
import { ARCHIVE_PREFIX, LIVE_PREFIX, stripQuery } from './media-path.ts';
import { createLowLatencyMetrics, createWebMetrics, type FeedMetrics } from './metrics.ts';
import { PlaylistFeedClient } from './playlist-feed.ts';
import { createPagesApp } from './pages-app.ts';
import { ReadinessState } from './readiness.ts';
import { Recordings } from './recordings.ts';
import { createRequestTracker } from './request-tracker.ts';
import { sendText } from './responses.ts';
import { SegmentCache } from './segment-cache.ts';
import { Uploads } from './uploads.ts';
import { UPLOADED_FILES_PREFIX } from '../../common/src/upload-layout.ts';

const OPS_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Idle keep-alive connections live longer than the proxy's pooled sockets are likely to idle,
 * so the proxy rarely sends a request on a socket we are closing at that very moment.
 */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

export interface WebServer {
  server: Server;
  /** Resolves with the bound port. */
  listen(): Promise<number>;
  /** Readiness false first, then stop accepting, let in-flight requests finish. */
  drain(): Promise<void>;
}

export async function createWebServer(
  config: WebConfig,
  logger: Logger,
  accessLog: AccessLog = createPinoAccessLog(logger),
  registry: Registry = createMetricsRegistry('web', config.instance),
): Promise<WebServer> {
  const liveDir = liveRoot(config.mediaDir);
  // Ingest normally creates it; creating it here lets web start (and be ready) first.
  await mkdir(liveDir, { recursive: true }).catch((err: unknown) => logger.warn({ err, liveDir }, 'could not create the live media directory'));

  const assets = await loadAssets();
  const liveStreams = new LiveStreams(config.mediaDir, logger);
  const readiness = new ReadinessState(liveDir);
  await Promise.all([liveStreams.start(), readiness.start()]);

  const segmentCache = new SegmentCache(config.mediaCacheBytes);
  const metrics = createWebMetrics(registry, {
    segmentCacheBytes: () => segmentCache.bytes,
    segmentCacheEntries: () => segmentCache.size,
    segmentCacheEvictions: () => segmentCache.evictions,
    liveStreams: () => liveStreams.list().length,
  });
  const tracker = createRequestTracker({ instance: config.instance, trustList: createTrustList(config.trustedProxies), accessLog, metrics });
  const liveSegments = new LiveSegments(segmentCache);
  const lowLatency = createLowLatencyMetrics(registry, { livePlaylists: () => livePlaylists.size, held: (kind) => livePlaylists.heldNow(kind) }, config.ingestFeedUrl !== null);
  const livePlaylists = new LivePlaylists(config.mediaDir, {
    now: () => performance.now(),
    logger,
    metrics: lowLatency,
    loadPlaylist,
    loadPart: (file) => liveSegments.loadBody(file),
    sendPart: (res, media, body) => sendMedia(res.req, res, media, body),
  });
  livePlaylists.start();
  const feed = config.ingestFeedUrl === null ? null : startPlaylistFeed(config.ingestFeedUrl, livePlaylists, lowLatency.feed!, logger);
  const handleMedia = createMediaHandler({ mediaDir: config.mediaDir, liveSegments, livePlaylists, metrics, logger });
  const pages = createPagesApp({ liveStreams, recordings: new Recordings(config.mediaDir, logger), uploads: new Uploads(config.mediaDir, logger), assets, logger });

  // Routing by hand before express: media is the hot path and must not pay for middleware.
  const route = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const path = stripQuery(url);
    if (OPS_PATHS.has(path)) {
      tracker.trackOps(req, res);
      handleOpsRequest(req, res, registry, readiness.readiness);
      return;
    }
    tracker.track(req, res);
    // Absolute-form or asterisk targets are for proxies, not for an origin server.
    if (!url.startsWith('/')) return sendText(req, res, 400, 'bad request\n');
    if (path.startsWith(LIVE_PREFIX) || path.startsWith(ARCHIVE_PREFIX) || path.startsWith(UPLOADED_FILES_PREFIX)) return handleMedia(req, res, path);
    pages(req, res);
  };

  const server = createServer((req, res) => {
    try {
      route(req, res);
    } catch (err) {
      logger.error({ err, url: req.url }, 'request handler failed');
      if (!res.headersSent) sendText(req, res, 500, 'internal error\n');
      else res.destroy();
    }
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;

  // Requests the HTTP parser refuses (garbage, unknown methods, huge headers) never reach a handler.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    metrics.clientErrors.inc();
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    logger.info({ code: err.code, peer: socket.remoteAddress }, 'malformed request refused');
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });

  return {
    server,
    async listen() {
      const port = await listen(server, config.port, config.host);
      readiness.markListening();
      return port;
    },
    async drain() {
      readiness.markDraining();
      liveStreams.stop();
      feed?.stop();
      // Held reloads get the current playlist now (hls.js reloads, through the proxy, from another
      // replica) instead of holding the drain up for 3 target durations.
      livePlaylists.close();
      // Leave a margin inside the process's shutdown timeout so draining ends with exit 0.
      const budgetMs = Math.floor(config.shutdownTimeoutMs * 0.8);
      const startedAt = performance.now();
      // closeHttpServer cuts connections Node calls idle, and Node calls a response idle as soon as
      // end() was called, even while a big segment is still flushing to a slow viewer. So first let
      // the responses under way reach the OS (we keep answering meanwhile; the proxy sees /readyz 503).
      const inFlight = tracker.inFlight;
      if (!(await tracker.settled(budgetMs / 2))) logger.warn({ inFlight: tracker.inFlight }, 'responses still in flight, closing anyway');
      else if (inFlight > 0) logger.info({ inFlight }, 'responses in flight finished');
      await closeHttpServer(server, Math.max(0, budgetMs - (performance.now() - startedAt)));
    },
  };
}

/**
 * Ingest's playlist feed into the live playlists. "Configured but disconnected" shows as
 * web_playlist_feed_connected 0 and a log line, never as not ready: the files are the fallback.
 */
function startPlaylistFeed(url: string, livePlaylists: LivePlaylists, metrics: FeedMetrics, logger: Logger): PlaylistFeedClient {
  metrics.connected.set(0);
  const feed = new PlaylistFeedClient(
    url,
    {
      version: (file, text) => {
        if (livePlaylists.feedVersion(file, text)) metrics.versions.inc();
        else metrics.refused.inc();
      },
      connected: () => metrics.connected.set(1),
      disconnected: () => {
        metrics.connected.set(0);
        metrics.disconnects.inc();
        livePlaylists.feedLost();
      },
    },
    logger,
  );
  feed.start();
  return feed;
}
