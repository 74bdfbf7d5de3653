import type http from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import { closeHttpServer, listen } from '../../common/src/lifecycle.ts';
import type { Logger } from '../../common/src/logger.ts';
import { createMetricsRegistry, handleOpsRequest, type Readiness } from '../../common/src/ops-endpoints.ts';
import { createLoggerAccessLog, type AccessLog } from './access-log.ts';
import { AdminApi } from './admin-api.ts';
import { Admission } from './admission.ts';
import { BackendPool } from './backend-pool.ts';
import { BackendsFileWatcher } from './backends-file.ts';
import { ClientAddresses } from './client-address.ts';
import { ClientLimits } from './client-limits.ts';
import type { ProxyConfig } from './config.ts';
import { setForwardedHeaders } from './forwarded-headers.ts';
import { Forwarder, heldTimeoutMs } from './forwarder.ts';
import { CachedSegments } from './cached-segments.ts';
import { PlaylistCache } from './playlist-cache.ts';
import { PreloadHints } from './preload-hints.ts';
import { SegmentCache } from './segment-cache.ts';
import { createPoolFill } from './segment-fill.ts';
import { HealthChecker } from './health-checker.ts';
import { connectionEvent, createProxyHttpServer, handleSocketRefusals } from './http-server.ts';
import { ProxyMetrics } from './metrics.ts';
import { PlaybackGate } from './playback-gate.ts';
import type { ProxyResponse } from './proxy-response.ts';
import { refuse, refuseOnSocket, type Refusal } from './refusals.ts';
import { resolveRequestId } from './request-id.ts';
import { RequestRecords } from './request-records.ts';
import { isMonitoringPath, Router } from './router.ts';
import { discardRestOfBody, hasBody, isUploadRequest, UploadGate, watchBodyDeadline } from './upload-gate.ts';
import { isOpsPath, ViewerNetworks } from './viewer-access.ts';

export interface ProxyApp {
  readonly server: http.Server;
  readonly registry: Registry;
  readonly webPool: BackendPool;
  /** Loads backends, starts health checks and listens; resolves with the bound port. */
  start(): Promise<number>;
  /** Readiness false, health checks stop, in-flight requests drain, upstream sockets close. */
  stop(): Promise<void>;
}

/** How often held segments nobody asks for any more (and expired playlist answers) are dropped. */
const CACHE_SWEEP_INTERVAL_MS = 10_000;

/** Wires the proxy together; nothing runs until start(). */
export function buildProxy(
  config: ProxyConfig,
  logger: Logger,
  accessLog: AccessLog = createLoggerAccessLog(logger),
  registry: Registry = createMetricsRegistry('proxy', config.instance),
): ProxyApp {
  const thresholds = { healthyThreshold: config.healthyThreshold, unhealthyThreshold: config.unhealthyThreshold };
  const webPool = new BackendPool('web', thresholds);
  const monitoringPool = config.monitoringUrl ? new BackendPool('monitoring', thresholds) : null;
  const ingestPool = new BackendPool('ingest', thresholds);
  const router = new Router(webPool, monitoringPool, ingestPool);
  const uploadGate = new UploadGate(config.opsToken, config.uploads);
  const networks = new ViewerNetworks(config.viewerAllowCidrs);
  const addresses = new ClientAddresses(config.frontProxies);
  const limits = new ClientLimits({
    maxConnectionsPerIp: config.limits.maxConnectionsPerIp,
    ratePerIp: config.limits.ratePerIp,
    rateBurst: config.limits.rateBurst,
    // A front proxy carries many clients on its connections: limits apply to the forwarded addresses instead.
    exempt: [...config.limits.exempt, ...config.frontProxies],
    allows: (ip) => networks.allows(ip),
  });
  const gate = config.playbackTokenSecret ? new PlaybackGate(config.playbackTokenSecret) : null;
  const admission = new Admission(limits, addresses, gate, config.limits.maxUrlBytes);
  const metrics = new ProxyMetrics(registry, () => router.pools(), {
    openConnections: () => limits.openConnections,
    trackedClients: () => limits.trackedClients,
  });
  const records = new RequestRecords(config.instance, accessLog, metrics);
  const forwarder = new Forwarder({ maxSocketsPerBackend: config.maxSocketsPerBackend, upstreamTimeoutMs: config.upstreamTimeoutMs }, metrics, logger);
  const segmentCache = new SegmentCache(config.segmentCache.maxBytes, config.segmentCache.maxSegmentBytes);
  metrics.observeSegmentCache(() => segmentCache.stats());
  let cacheSweep: NodeJS.Timeout | null = null;
  const hints = new PreloadHints();
  const playlistCache = new PlaylistCache(config.playlistCacheMs, { onFilled: (path, answer) => hints.update(path, answer.body) });
  metrics.observePlaylistCache(() => playlistCache.stats());
  const fillTimeoutMs = config.upstreamTimeoutMs || 30_000;
  const cachedSegments = new CachedSegments(
    segmentCache,
    playlistCache,
    createPoolFill({
      pool: webPool,
      agent: forwarder.agent,
      heldAgent: forwarder.heldAgent,
      maxEntryBytes: config.segmentCache.maxSegmentBytes,
      timeoutMs: fillTimeoutMs,
      heldTimeoutMs: heldTimeoutMs(fillTimeoutMs),
      logger,
    }),
    hints,
  );
  const healthChecker = new HealthChecker(router.pools(), { intervalMs: config.healthIntervalMs, timeoutMs: config.healthTimeoutMs }, logger);
  const admin = new AdminApi(webPool, config.opsToken, logger);
  const fileWatcher = config.backendsFile ? new BackendsFileWatcher(config.backendsFile, webPool, config.backendsFilePollMs, logger) : null;
  let stopping = false;

  for (const pool of router.pools()) {
    pool.on('change', ({ backend, from, to, reason }) => {
      const fields = { pool: pool.name, backend: backend.url, from, to, reason, inFlight: backend.inFlight };
      if (to === 'unhealthy') logger.warn(fields, 'backend state changed');
      else logger.info(fields, 'backend state changed');
    });
  }

  const readiness: Readiness = () => {
    if (stopping) return 'shutting down';
    if (!server.listening) return 'not listening';
    if (webPool.healthyCount === 0) return `no healthy backend (0 of ${webPool.size})`;
    return null;
  };

  /** Starts the access record of a request (one per request, refusals included). */
  const track = (req: IncomingMessage, res: ProxyResponse, path: string, now: number): void => {
    const requestId = resolveRequestId(req.headers['x-request-id']);
    res.track(records, path, addresses.clientIp(req), requestId, now);
    res.setHeader('x-request-id', requestId);
  };

  const onRequest = (req: IncomingMessage, res: ProxyResponse): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (isOpsPath(path) && handleOpsRequest(req, res, registry, readiness)) return;
    const query = q === -1 ? '' : url.slice(q + 1);

    const now = performance.now();
    track(req, res, path, now);
    if (admission.refuses(req, res, url, path, now)) return;
    const upload = isUploadRequest(req, path);
    if (upload) {
      const refusal = uploadGate.refusal(req);
      if (refusal !== null) {
        refuse(res, refusal);
        discardRestOfBody(req);
        return;
      }
    } else if (config.limits.requestTimeoutMs > 0 && hasBody(req)) {
      watchBodyDeadline(req, res, config.limits.requestTimeoutMs, () => dropBrokenRequest(res, 'request-timeout'));
    }
    if (admin.handles(path)) {
      admin.handle(req, res, path);
      return;
    }
    const pool = router.route(path);
    const forward = (): void => {
      setForwardedHeaders(req, res.clientIp, res.requestId, addresses.proto(req));
      forwarder.forward(req, res, pool);
    };
    if (pool === webPool && cachedSegments.handle(req, res, path, query, forward)) return;
    forward();
    // Counted as it streams to ingest (never buffered): a chunked body has no length to check up front.
    if (upload) {
      uploadGate.watchSize(req, res, () => {
        forwarder.abandon(res);
        refuse(res, 'payload-too-large');
        discardRestOfBody(req);
      });
    }
  };

  /** A request whose body broke a limit while relayed: its upstream exchange is dropped, the client refused and disconnected. */
  const dropBrokenRequest = (res: ProxyResponse, reason: Refusal): void => {
    forwarder.abandon(res);
    refuse(res, reason, { close: true });
  };

  // Node's request timeout is one value per server: it is the upload's (UPLOAD_TIMEOUT_MS); every
  // other request body gets REQUEST_TIMEOUT_MS from watchBodyDeadline, headers HEADERS_TIMEOUT_MS.
  const serverLimits = {
    ...config.limits,
    requestTimeoutMs: config.uploads.timeoutMs === 0 ? 0 : Math.max(config.limits.requestTimeoutMs, config.uploads.timeoutMs),
  };
  const server = createProxyHttpServer(serverLimits, config.tls, onRequest);
  // Per-address connection counts; with TLS, once the handshake is done (handshakes are bounded by
  // MAX_CONNECTIONS and their own timeout).
  server.on(connectionEvent(server), (socket: Socket) => limits.connectionOpened(socket, addresses.peerIp(socket), performance.now()));
  handleSocketRefusals(server, addresses, records, metrics, logger, (res, reason) => {
    forwarder.abandon(res);
    refuse(res, reason, { close: true });
  });
  // An Expect other than 100-continue: Node would answer 417 itself, without an access record.
  server.on('checkExpectation', (req: IncomingMessage, res: ProxyResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    track(req, res, q === -1 ? url : url.slice(0, q), performance.now());
    refuse(res, 'expectation-failed');
  });

  // WebSocket upgrades only for the monitoring route (its live dashboard); registered only when
  // there is one, because Node hands every request carrying an Upgrade header to this listener.
  if (monitoringPool !== null) {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q === -1 ? url : url.slice(0, q);
      const clientIp = addresses.clientIp(req);
      const requestId = resolveRequestId(req.headers['x-request-id']);
      const now = performance.now();
      const refusal = admission.upgradeRefusal(req, clientIp, url, path, now);
      if (refusal !== null) {
        const status = refuseOnSocket(socket, refusal.reason, requestId, { retryAfter: refusal.retryAfter });
        records.refusedOnSocket({ clientIp, method: req.method ?? 'GET', path, userAgent: req.headers['user-agent'] ?? '', requestId, startedAt: now }, status, refusal.reason);
        return;
      }
      if (!isMonitoringPath(path)) {
        socket.on('error', () => {});
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      setForwardedHeaders(req, clientIp, requestId, addresses.proto(req));
      forwarder.forwardUpgrade(req, socket as Socket, head, monitoringPool);
    });
  }

  return {
    server,
    registry,
    webPool,
    async start() {
      for (const url of config.backends) webPool.add(url);
      if (monitoringPool !== null && config.monitoringUrl) monitoringPool.add(config.monitoringUrl);
      ingestPool.add(config.ingestUrl);
      if (fileWatcher) await fileWatcher.start();
      healthChecker.start();
      limits.start();
      cacheSweep = setInterval(() => {
        segmentCache.sweep();
        playlistCache.sweep();
      }, CACHE_SWEEP_INTERVAL_MS);
      cacheSweep.unref();
      return listen(server, config.port, config.host);
    },
    async stop() {
      stopping = true;
      healthChecker.stop();
      fileWatcher?.stop();
      limits.stop();
      if (cacheSweep !== null) clearInterval(cacheSweep);
      forwarder.closeUpgraded();
      // Leave a second of the shutdown budget for closing sockets and flushing logs.
      await closeHttpServer(server, Math.max(500, config.shutdownTimeoutMs - 1_000));
      forwarder.close();
      segmentCache.clear();
      playlistCache.clear();
    },
  };
}
