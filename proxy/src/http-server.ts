import http, { IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../common/src/logger.ts';
import type { ClientAddresses } from './client-address.ts';
import type { ClientLimitsConfig } from './config.ts';
import type { ProxyMetrics } from './metrics.ts';
import { ProxyResponse } from './proxy-response.ts';
import { refuseOnSocket, type Refusal } from './refusals.ts';
import { resolveRequestId } from './request-id.ts';
import { describeRawRequest, type RequestRecords } from './request-records.ts';
import type { TlsCredentials } from './tls.ts';

export type RequestHandler = (req: IncomingMessage, res: ProxyResponse) => void;

/** How often Node looks for requests past HEADERS_TIMEOUT_MS / REQUEST_TIMEOUT_MS (its default, 30 s, would let a slowloris overstay by that much). */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;

/**
 * The listening server: HTTP, or HTTPS with TLS_CERT_FILE/TLS_KEY_FILE (WebSocket upgrades work on
 * either), with the size and time limits applied by Node's parser itself:
 * - MAX_HEADER_BYTES → Node's maxHeaderSize (request line + headers), answered 431;
 * - HEADERS_TIMEOUT_MS / REQUEST_TIMEOUT_MS → 408 and close, so a client that trickles its
 *   headers (slowloris) holds a connection for seconds, not minutes; others are not affected;
 * - KEEP_ALIVE_TIMEOUT_MS → idle keep-alive connections closed;
 * - MAX_CONNECTIONS → Node's maxConnections: connections beyond it are closed at accept (the
 *   cheapest answer when overloaded; players retry), counted as refusals{reason="overloaded"}.
 */
export function createProxyHttpServer(limits: ClientLimitsConfig, tls: TlsCredentials | null, onRequest: RequestHandler): http.Server {
  const options: http.ServerOptions<typeof IncomingMessage, typeof ProxyResponse> = {
    ServerResponse: ProxyResponse,
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
    // A missing Host is refused by request-target.ts, with an access record; Node's own 400 would have none.
    requireHostHeader: false,
  };
  const server =
    tls === null
      ? http.createServer<typeof IncomingMessage, typeof ProxyResponse>(options, onRequest)
      : https.createServer<typeof IncomingMessage, typeof ProxyResponse>(
          // A TLS handshake gets the time a request's headers get (Node's default is 120 s).
          { ...options, cert: tls.cert, key: tls.key, handshakeTimeout: limits.headersTimeoutMs || 120_000 },
          onRequest,
        );
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  if (limits.maxConnections > 0) server.maxConnections = limits.maxConnections;
  return server as unknown as http.Server;
}

/** The event on which a client connection is ready for HTTP: after the handshake with TLS. */
export function connectionEvent(server: http.Server): 'connection' | 'secureConnection' {
  return server instanceof https.Server ? 'secureConnection' : 'connection';
}

const OVERLOAD_LOG_INTERVAL_MS = 10_000;

/**
 * Answers and records what never reaches the request handler: requests Node cannot parse (400),
 * with headers over MAX_HEADER_BYTES (431), too slow to arrive (408), and CONNECT (405; Node would
 * just drop the socket); and counts connections closed at accept by MAX_CONNECTIONS.
 */
export function handleSocketRefusals(
  server: http.Server,
  addresses: ClientAddresses,
  records: RequestRecords,
  metrics: ProxyMetrics,
  logger: Logger,
  /** Refuses a request whose body broke while it was being relayed (its upstream exchange is dropped). */
  refuseInFlight: (res: ProxyResponse, reason: Refusal) => void,
): void {
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    // A connection that never sent a byte (e.g. a browser's unused preconnect) had no request: closed, nothing to record.
    if (timedOut && (socket as Socket).bytesRead === 0) return void socket.destroy();
    const reason: Refusal = err.code === 'HPE_HEADER_OVERFLOW' ? 'headers-too-large' : timedOut ? 'request-timeout' : 'bad-request';
    const { method, path } = describeRawRequest(err.rawPacket);
    const request = { clientIp: addresses.peerIp(socket as Socket), method, path, userAgent: '', requestId: resolveRequestId(undefined), startedAt: performance.now() };
    const answer = (): void => {
      if (!socket.writable) {
        socket.destroy();
        records.refusedOnSocket(request, 499, reason);
        return;
      }
      records.refusedOnSocket(request, refuseOnSocket(socket, reason, request.requestId), reason);
    };
    const inFlight = (socket as { _httpMessage?: ProxyResponse | null })._httpMessage;
    if (inFlight && !inFlight.writableFinished) {
      if (inFlight.req.complete) {
        // A pipelined bad request behind one still being answered: answered after that response, not in its middle.
        inFlight.once('close', answer);
      } else if (!inFlight.headersSent) {
        // The request being answered is the bad one (broken or too slow body): it gets the refusal, and its record.
        refuseInFlight(inFlight, reason);
      } else {
        // Its answer has started: let it finish, then close; a second answer would be one nobody asked for.
        inFlight.once('close', () => socket.destroy());
      }
      return;
    }
    answer();
  });

  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const requestId = resolveRequestId(undefined);
    const status = refuseOnSocket(socket, 'method-not-allowed', requestId);
    records.refusedOnSocket(
      { clientIp: addresses.clientIp(req), method: 'CONNECT', path: req.url ?? '', userAgent: req.headers['user-agent'] ?? '', requestId, startedAt: performance.now() },
      status,
      'method-not-allowed',
    );
  });

  let dropped = 0;
  let loggedAt = -Infinity;
  server.on('drop', () => {
    metrics.refused('overloaded');
    dropped++;
    const now = performance.now();
    if (now - loggedAt >= OVERLOAD_LOG_INTERVAL_MS) {
      logger.warn({ dropped, maxConnections: server.maxConnections }, 'connection limit reached: new connections closed at accept');
      loggedAt = now;
      dropped = 0;
    }
  });
}
