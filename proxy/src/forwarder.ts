import http, { type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import HttpProxy from 'http-proxy';
import type { Logger } from '../../common/src/logger.ts';
import { EJECTING_ERRORS, HoldMovedError, type Backend, type UpstreamErrorKind } from './backend.ts';
import type { BackendPool } from './backend-pool.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { ProxyResponse } from './proxy-response.ts';
import { discardRestOfBody } from './upload-gate.ts';

export interface ForwarderOptions {
  maxSocketsPerBackend: number;
  /** Idle time after which an upstream exchange is abandoned; 0 = never. */
  upstreamTimeoutMs: number;
}

const kClient = Symbol('onair.proxy.client-response');
const kForwarder = Symbol('onair.proxy.forwarder');
type UpstreamResponse = IncomingMessage & { [kClient]?: ProxyResponse; [kForwarder]?: Forwarder };

class UpstreamTimeoutError extends Error {
  readonly code = 'UPSTREAM_TIMEOUT';
}

/**
 * Web holds a blocking playlist reload or a hinted part for up to 3 × TARGETDURATION (6 s at the
 * usual 2 s) and sends nothing meanwhile: a held request's idle limit is never below this, whatever
 * UPSTREAM_TIMEOUT_MS says (it covers target durations up to 10 s).
 */
export const HELD_MIN_TIMEOUT_MS = 30_000;

/** The idle limit of a held upstream request: UPSTREAM_TIMEOUT_MS, at least HELD_MIN_TIMEOUT_MS; 0 (never) stays 0. */
export function heldTimeoutMs(upstreamTimeoutMs: number): number {
  return upstreamTimeoutMs === 0 ? 0 : Math.max(upstreamTimeoutMs, HELD_MIN_TIMEOUT_MS);
}

/**
 * A reset on a reused keep-alive socket is the idle-close race (the backend closed the socket as we
 * sent on it: not evidence it is down) only when it comes right after the request went out. A held
 * request reset later was read and held by a replica that then died: a real reset, which ejects.
 */
export const STALE_SOCKET_WINDOW_MS = 500;

/**
 * The keep-alive agent of held requests: separate from the main one so that requests that wait
 * seconds on purpose never take the sockets (MAX_SOCKETS_PER_BACKEND) that segments and plain
 * playlists need. Not capped: each held request is one viewer request, already bounded by the
 * connection limits.
 */
export function createHeldAgent(): http.Agent {
  return new http.Agent({ keepAlive: true, keepAliveMsecs: 1_000, maxSockets: Infinity, maxFreeSockets: 1_024, timeout: 4_000, scheduling: 'lifo' });
}

/**
 * Relays requests to a pool's backends with http-proxy:
 * - one shared keep-alive agent (without it http-proxy sends `Connection: close` upstream);
 * - an attempt that fails before the client got any byte is retried once on another backend for
 *   GET/HEAD without a body (a replica dying must not show as an error to viewers); otherwise 502;
 * - a connection-level failure ejects the backend from rotation at once (passive health check);
 * - a client that goes away is not a backend failure.
 * Per-request state lives on the ProxyResponse; handlers are created once, not per request.
 */
export class Forwarder {
  readonly agent: http.Agent;
  /** For requests web holds (blocking playlist reloads, hinted parts): see createHeldAgent. */
  readonly heldAgent: http.Agent = createHeldAgent();
  private readonly heldTimeoutMs: number;
  private readonly proxy: HttpProxy;
  /** Upgraded (WebSocket) client sockets: the HTTP server no longer tracks them, so shutdown must. */
  private readonly upgraded = new Set<Socket>();

  constructor(
    private readonly options: ForwarderOptions,
    private readonly metrics: ProxyMetrics,
    private readonly logger: Logger,
  ) {
    this.agent = new http.Agent({
      keepAlive: true,
      keepAliveMsecs: 1_000,
      maxSockets: options.maxSocketsPerBackend,
      maxFreeSockets: Math.min(options.maxSocketsPerBackend, 64),
      // Idle pooled sockets are closed after 4 s — before Node's default 5 s server keep-alive timeout —
      // and sooner when the backend announces a shorter `Keep-Alive: timeout=`, to avoid reusing a socket
      // the backend is closing. LIFO reuses warm sockets and lets the surplus expire.
      timeout: 4_000,
      scheduling: 'lifo',
    });
    this.heldTimeoutMs = heldTimeoutMs(options.upstreamTimeoutMs);
    this.proxy = HttpProxy.createProxyServer({
      agent: this.agent,
      xfwd: false, // set by setForwardedHeaders: overwritten, never appended to what the client sent
      prependPath: false,
      // Hop-by-hop: a client's `Connection: close` must not close our pooled upstream socket.
      headers: { connection: 'keep-alive' },
    });
    // The per-call callback receives errors; this listener only guarantees an error can never crash the process.
    this.proxy.on('error', (err: Error) => this.logger.error({ err }, 'http-proxy error without a handler'));
    this.proxy.on('proxyReq', this.onProxyReq);
    this.proxy.on('proxyRes', this.onProxyRes);
  }

  /** Sends the request to the pool's least busy backend; answers 503 when none is available. */
  forward(req: IncomingMessage, res: ProxyResponse, pool: BackendPool): void {
    const backend = pool.pick(null);
    if (backend === null) {
      this.replyNoBackend(res);
      return;
    }
    res.pool = pool;
    this.attempt(req, res, backend);
  }

  /** WebSocket upgrades (the monitoring dashboard). No retry: a socket is not replayable. */
  forwardUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, pool: BackendPool): void {
    socket.on('error', noop);
    this.upgraded.add(socket);
    socket.once('close', () => this.upgraded.delete(socket));
    const backend = pool.pick(null);
    if (backend === null) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    // Upgrades do not use the pooled agent and need the client's Connection: Upgrade.
    this.proxy.ws(req, socket, head, { target: backend.proxyOptions.target, agent: false, headers: {} }, (err) => {
      this.logger.warn({ backend: backend.url, code: (err as NodeJS.ErrnoException).code, err: err.message }, 'websocket proxy error');
      socket.destroy();
    });
  }

  /**
   * Drops the upstream exchange of a request the client broke (a malformed or too slow body): not a
   * backend failure, so nothing is counted against the backend and nothing is retried.
   */
  abandon(res: ProxyResponse): void {
    if (res.releaseAttempt() === null) return;
    res.upstreamReq?.destroy();
    res.upstreamReq = null;
    if (res.upstreamRes !== null) discardStagedResponse(res);
  }

  /** Cuts WebSocket connections (long-lived: a dashboard reconnects; draining them would only delay shutdown). */
  closeUpgraded(): void {
    for (const socket of this.upgraded) socket.destroy();
    this.upgraded.clear();
  }

  close(): void {
    this.closeUpgraded();
    this.agent.destroy();
    this.heldAgent.destroy();
  }

  private attempt(req: IncomingMessage, res: ProxyResponse, backend: Backend): void {
    res.attempt = backend;
    res.upstreamReq = null;
    res.attemptStartedAt = performance.now();
    backend.startRequest(res.held ? res : null);
    try {
      this.proxy.web(req, res, res.held ? { target: backend.proxyOptions.target, agent: this.heldAgent } : backend.proxyOptions, this.onError);
    } catch (err) {
      // http.request can throw synchronously (e.g. an invalid header value): answer instead of crashing.
      this.onError(err as Error, req, res, backend.proxyOptions.target);
    }
  }

  private readonly onProxyRes = (proxyRes: IncomingMessage, req: IncomingMessage, rawRes: ServerResponse): void => {
    const res = rawRes as ProxyResponse;
    res.servedBy = res.attempt;
    res.upstreamRes = proxyRes;
    // The backend answered before it had the whole body (ingest refusing an upload): nothing more goes
    // upstream; the rest of the body is read and discarded (bounded) so the client gets to read this answer.
    if (!req.complete && !isReplayable(req)) {
      discardRestOfBody(req);
      const upstreamReq = res.upstreamReq;
      proxyRes.once('end', () => upstreamReq?.destroy());
    }
    (proxyRes as UpstreamResponse)[kClient] = res;
    (proxyRes as UpstreamResponse)[kForwarder] = this;
    proxyRes.once('close', onUpstreamClose);
  };

  private readonly onProxyReq = (proxyReq: ClientRequest, _req: IncomingMessage, res: ServerResponse): void => {
    (res as ProxyResponse).upstreamReq = proxyReq;
    const timeoutMs = (res as ProxyResponse).held ? this.heldTimeoutMs : this.options.upstreamTimeoutMs;
    if (timeoutMs > 0) proxyReq.setTimeout(timeoutMs, onUpstreamTimeout);
  };

  /** An attempt failed (http-proxy callback). Called at most once per attempt that is still current. */
  private readonly onError = (err: Error, req: IncomingMessage, rawRes: ServerResponse | Socket, target?: unknown): void => {
    const res = rawRes as ProxyResponse;
    const backend = res.attempt;
    // A late error of an attempt already settled (e.g. the first of a retried request): nothing to do.
    if (backend === null || backend.proxyOptions.target !== target) return;
    res.releaseAttempt();
    const upstreamReq = res.upstreamReq;
    res.upstreamReq = null;
    if (clientGone(req, res)) return;
    if (res.upstreamRes !== null && !req.complete) {
      // The backend answered early and closed while the body was still being sent (ingest refusing an
      // upload): the write error is the consequence, not a backend failure. A cut answer is cut for the client too.
      if (!res.upstreamRes.complete) res.destroy();
      return;
    }

    if (err instanceof HoldMovedError) {
      this.failAttempt(req, res, backend, null, err);
      return;
    }
    const heldForMs = res.held ? performance.now() - res.attemptStartedAt : 0;
    this.failAttempt(req, res, backend, classifyUpstreamError(err, upstreamReq, heldForMs), err);
  };

  /** The upstream response stopped before its end (the backend died after sending its head). */
  upstreamAborted(res: ProxyResponse, upstream: IncomingMessage): void {
    const backend = res.attempt;
    if (backend === null || res.upstreamRes !== upstream) return;
    res.releaseAttempt();
    if (clientGone(res.req, res)) return;
    this.failAttempt(res.req, res, backend, 'aborted', new Error('upstream response ended prematurely'));
  }

  /** `kind` null: a held request moved off a backend that turned unhealthy (not counted as its error; retried even after a retry). */
  private failAttempt(req: IncomingMessage, res: ProxyResponse, backend: Backend, kind: UpstreamErrorKind | null, err: Error): void {
    if (kind === null) this.logger.info({ backend: backend.url, request_id: res.requestId, path: res.path }, 'held request moved to another backend');
    else this.backendFailed(backend, kind, err, res);
    if (res.headersSent) {
      // Bytes already reached the client: it cannot be replayed; cut the response so the client retries.
      res.destroy();
      return;
    }
    // The failed backend's status and headers may be staged on the response (head received, no body byte sent yet).
    if (res.upstreamRes !== null) discardStagedResponse(res);
    if ((!res.retried || kind === null) && isReplayable(req) && res.pool !== null) {
      let next = res.pool.pick(backend);
      // A stale keep-alive socket says nothing about the backend: trying it again on a fresh connection is fine.
      if (next === null && kind === 'stale_socket') next = res.pool.pick(null);
      if (next !== null) {
        res.retried = true;
        backend.retries++;
        this.attempt(req, res, next);
        return;
      }
    }
    this.replyUpstreamFailed(res);
  }

  private backendFailed(backend: Backend, kind: UpstreamErrorKind, err: Error, res: ProxyResponse): void {
    backend.recordError(kind);
    if (EJECTING_ERRORS.has(kind)) backend.eject(`${kind} (${(err as NodeJS.ErrnoException).code ?? err.message})`);
    this.logger.warn(
      { backend: backend.url, type: kind, code: (err as NodeJS.ErrnoException).code, error: err.message, request_id: res.requestId, path: res.path, headersSent: res.headersSent },
      'upstream request failed',
    );
  }

  private replyNoBackend(res: ProxyResponse): void {
    this.metrics.errorResponse(503);
    replyText(res, 503, 'no backend available: the service is starting or overloaded, retry shortly\n', true);
  }

  private replyUpstreamFailed(res: ProxyResponse): void {
    this.metrics.errorResponse(502);
    replyText(res, 502, 'upstream failed: the backend did not answer\n', false);
  }
}

function replyText(res: ProxyResponse, status: number, body: string, retryAfter: boolean): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  res.servedBy = null;
  const headers: Record<string, string> = {
    'content-type': 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': String(Buffer.byteLength(body)),
  };
  if (retryAfter) headers['retry-after'] = '1';
  res.writeHead(status, headers);
  res.end(body);
}

function onUpstreamClose(this: UpstreamResponse): void {
  if (this.complete) return;
  const res = this[kClient];
  if (res !== undefined) this[kForwarder]?.upstreamAborted(res, this);
}

function discardStagedResponse(res: ProxyResponse): void {
  for (const name of res.getHeaderNames()) if (name !== 'x-request-id') res.removeHeader(name);
  res.statusCode = 200;
  res.statusMessage = '';
  res.servedBy = null;
  res.upstreamRes = null;
}

function onUpstreamTimeout(this: ClientRequest): void {
  this.destroy(new UpstreamTimeoutError('no activity from the backend within the upstream timeout'));
}

function noop(): void {}

function clientGone(req: IncomingMessage, res: ServerResponse): boolean {
  return res.destroyed || req.socket.destroyed;
}

/** GET/HEAD without a body can be sent again: nothing of the request was consumed. */
export function isReplayable(req: IncomingMessage): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const length = req.headers['content-length'];
  return (length === undefined || length === '0') && req.headers['transfer-encoding'] === undefined;
}

/** `heldForMs`: how long a held request had been waiting (0 for others): see STALE_SOCKET_WINDOW_MS. */
export function classifyUpstreamError(err: Error, upstreamReq: ClientRequest | null, heldForMs = 0): UpstreamErrorKind {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ECONNRESET':
    case 'EPIPE':
      // The classic keep-alive race: the backend closed an idle socket just as we reused it.
      return upstreamReq?.reusedSocket && heldForMs < STALE_SOCKET_WINDOW_MS ? 'stale_socket' : 'reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'ETIMEDOUT':
      return 'unreachable';
    case 'UPSTREAM_TIMEOUT':
      return 'timeout';
    default:
      return 'other';
  }
}
