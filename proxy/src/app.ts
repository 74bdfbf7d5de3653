import http, { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { Registry } from 'prom-client';
import { describePath, normalizeIp } from '../../common/src/access-record.ts';
import { sessionIdFromRequest } from '../../common/src/cmcd.ts';
import { closeHttpServer, listen } from '../../common/src/lifecycle.ts';
import type { Logger } from '../../common/src/logger.ts';
import { createMetricsRegistry, handleOpsRequest, type Readiness } from '../../common/src/ops-endpoints.ts';
import { createRecordIds } from '../../common/src/record-shipping/record-id.ts';
import { createLoggerAccessLog, type AccessLog } from './access-log.ts';
import { AdminApi } from './admin-api.ts';
import { BackendPool } from './backend-pool.ts';
import { BackendsFileWatcher } from './backends-file.ts';
import type { ProxyConfig } from './config.ts';
import { setForwardedHeaders } from './forwarded-headers.ts';
import { Forwarder } from './forwarder.ts';
import { HealthChecker } from './health-checker.ts';
import { ProxyMetrics } from './metrics.ts';
import { ProxyResponse, type ResponseObserver } from './proxy-response.ts';
import { resolveRequestId } from './request-id.ts';
import { isMonitoringPath, Router } from './router.ts';

export interface ProxyApp {
  readonly server: http.Server;
  readonly registry: Registry;
  readonly webPool: BackendPool;
  /** Loads backends, starts health checks and listens; resolves with the bound port. */
  start(): Promise<number>;
  /** Readiness false, health checks stop, in-flight requests drain, upstream sockets close. */
  stop(): Promise<void>;
}

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
  const router = new Router(webPool, monitoringPool);
  const metrics = new ProxyMetrics(registry, () => router.pools());
  const forwarder = new Forwarder({ maxSocketsPerBackend: config.maxSocketsPerBackend, upstreamTimeoutMs: config.upstreamTimeoutMs }, metrics, logger);
  const healthChecker = new HealthChecker(router.pools(), { intervalMs: config.healthIntervalMs, timeoutMs: config.healthTimeoutMs }, logger);
  const admin = new AdminApi(webPool, config.opsToken, logger);
  const fileWatcher = config.backendsFile ? new BackendsFileWatcher(config.backendsFile, webPool, config.backendsFilePollMs, logger) : null;
  const instance = config.instance;
  const recordIds = createRecordIds(instance);
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

  /** One access record and one duration observation per request the proxy answered. */
  const observer: ResponseObserver = {
    responseClosed(res) {
      if (res.attempt !== null) {
        res.attempt.finishRequest();
        res.attempt = null;
        // The client left before the end: stop the upstream exchange too. (http-proxy only does this on
        // the request's 'aborted' event, which Node no longer emits once a GET has been fully received.)
        if (!res.writableFinished) res.upstreamReq?.destroy();
      }
      res.upstreamReq = null;
      res.upstreamRes = null;
      const req = res.req;
      const method = req.method ?? 'GET';
      // 499: the client went away before any response was sent (nginx's convention).
      const status = res.headersSent ? res.statusCode : 499;
      const bytes = method === 'HEAD' || status === 204 || status === 304 || status < 200 ? 0 : res.bytesOut;
      const durationMs = performance.now() - res.startedAt;
      const { stream, kind } = describePath(res.path);
      accessLog.write({
        '@timestamp': new Date().toISOString(),
        stream,
        kind,
        client_ip: res.clientIp,
        method,
        path: res.path,
        status,
        bytes,
        duration_ms: Math.round(durationMs * 1000) / 1000,
        tier: 'proxy',
        instance,
        user_agent: req.headers['user-agent'] ?? '',
        session_id: sessionIdFromRequest(req.url ?? '', req.headers),
        record_id: recordIds.next(),
        backend: res.servedBy?.url ?? null,
        request_id: res.requestId,
      });
      metrics.observeRequest(kind, status, durationMs / 1000);
    },
  };

  const onRequest = (req: IncomingMessage, res: ProxyResponse): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if ((path === '/healthz' || path === '/readyz' || path === '/metrics') && handleOpsRequest(req, res, registry, readiness)) return;

    const clientIp = normalizeIp(req.socket.remoteAddress ?? '');
    const requestId = resolveRequestId(req.headers['x-request-id']);
    res.track(observer, path, clientIp, requestId, performance.now());
    res.setHeader('x-request-id', requestId);
    if (path.charCodeAt(0) !== 47 /* "/" */) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('bad request: origin-form request target expected\n');
      return;
    }
    if (admin.handles(path)) {
      admin.handle(req, res, path);
      return;
    }
    setForwardedHeaders(req, clientIp, requestId);
    forwarder.forward(req, res, router.route(path));
  };

  // ProxyResponse carries per-request state; the server is used as a plain http.Server elsewhere.
  const server = http.createServer<typeof IncomingMessage, typeof ProxyResponse>({ ServerResponse: ProxyResponse }, onRequest) as unknown as http.Server;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  // WebSocket upgrades only for the monitoring route (its live dashboard); registered only when
  // there is one, because Node hands every request carrying an Upgrade header to this listener.
  if (monitoringPool !== null) {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q === -1 ? url : url.slice(0, q);
      if (!isMonitoringPath(path)) {
        socket.on('error', () => {});
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      setForwardedHeaders(req, normalizeIp(req.socket.remoteAddress ?? ''), resolveRequestId(req.headers['x-request-id']));
      forwarder.forwardUpgrade(req, socket as import('node:net').Socket, head, monitoringPool);
    });
  }

  return {
    server,
    registry,
    webPool,
    async start() {
      for (const url of config.backends) webPool.add(url);
      if (monitoringPool !== null && config.monitoringUrl) monitoringPool.add(config.monitoringUrl);
      if (fileWatcher) await fileWatcher.start();
      healthChecker.start();
      return listen(server, config.port, config.host);
    },
    async stop() {
      stopping = true;
      healthChecker.stop();
      fileWatcher?.stop();
      forwarder.closeUpgraded();
      // Leave a second of the shutdown budget for closing sockets and flushing logs.
      await closeHttpServer(server, Math.max(500, config.shutdownTimeoutMs - 1_000));
      forwarder.close();
    },
  };
}
