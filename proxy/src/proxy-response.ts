import { ServerResponse, type ClientRequest, type IncomingMessage } from 'node:http';
import { HoldMovedError, type Backend, type HeldRequest } from './backend.ts';
import type { BackendPool } from './backend-pool.ts';

/** Told when a response the proxy answered is over (finished or cut); writes the access record. */
export interface ResponseObserver {
  responseClosed(res: ProxyResponse): void;
}

/**
 * The server's response class (http.createServer({ ServerResponse: ProxyResponse })): it carries the
 * per-request state of the proxy — timing, client address, request id, which backend is handling it —
 * so the hot path needs no per-request closures, maps or wrappers, and it counts the body bytes
 * actually handed to the client socket.
 */
export class ProxyResponse extends ServerResponse<IncomingMessage> implements HeldRequest {
  /** Body bytes written to the client (headers and chunk framing excluded). */
  bytesOut = 0;
  startedAt = 0;
  path = '';
  clientIp = '';
  requestId = '';
  /** The pool this request is routed to. */
  pool: BackendPool | null = null;
  /** The backend with an attempt outstanding: counted in its in-flight (or held) until the attempt settles. */
  attempt: Backend | null = null;
  /**
   * Web holds the answer until something is published (a blocking playlist reload, a hinted part):
   * counted in the backend's `held`, not `inFlight`, and sent with the held-request agent and timeout.
   */
  held = false;
  /** performance.now() when the current attempt started. */
  attemptStartedAt = 0;
  /** The backend whose response is being relayed (null when the proxy answers itself). */
  servedBy: Backend | null = null;
  /** Answered from the proxy's segment cache without an upstream request (the record's backend is then "cache"). */
  fromCache = false;
  /** Answered by a segment-cache fill this request caused: the backend that served the fill. */
  filledFrom: string | null = null;
  retried = false;
  upstreamReq: ClientRequest | null = null;
  upstreamRes: IncomingMessage | null = null;
  observer: ResponseObserver | null = null;
  /** Why the proxy refused this request (refusals.ts); null when it did not. Goes into the access record. */
  refusal: string | null = null;
  /** A Set-Cookie the proxy adds to the relayed response (the playback-token cookie). */
  setCookie: string[] | null = null;

  /** Ends the count of the outstanding attempt at its backend; returns that backend (null when there was none). */
  releaseAttempt(): Backend | null {
    const backend = this.attempt;
    if (backend === null) return null;
    this.attempt = null;
    backend.finishRequest(this.held ? this : null);
    return backend;
  }

  /** The backend turned unhealthy while holding this request: cut it (the forwarder retries it elsewhere) unless its answer is arriving. */
  moveHold(): void {
    if (this.upstreamRes === null) this.upstreamReq?.destroy(new HoldMovedError());
  }

  /** Starts tracking: `observer.responseClosed(this)` runs once when the response is over. */
  track(observer: ResponseObserver, path: string, clientIp: string, requestId: string, startedAt: number): void {
    this.observer = observer;
    this.path = path;
    this.clientIp = clientIp;
    this.requestId = requestId;
    this.startedAt = startedAt;
    this.once('close', onClose);
  }

  override write(chunk: any, encoding?: any, callback?: any): boolean {
    if (!this.headersSent && this.servedBy !== null) finalizeProxiedHead(this);
    if (chunk != null && typeof chunk !== 'function' && !this.destroyed) this.bytesOut += byteLength(chunk, encoding);
    return super.write(chunk, encoding, callback);
  }

  override end(chunk?: any, encoding?: any, callback?: any): this {
    if (!this.headersSent && this.servedBy !== null) finalizeProxiedHead(this);
    if (chunk != null && typeof chunk !== 'function' && !this.destroyed) this.bytesOut += byteLength(chunk, encoding);
    return super.end(chunk, encoding, callback);
  }
}

function onClose(this: ProxyResponse): void {
  this.observer?.responseClosed(this);
}

function byteLength(chunk: any, encoding: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  return typeof chunk.byteLength === 'number' ? (chunk.byteLength as number) : 0;
}

/**
 * Last touch on a relayed response's head, just before it goes out:
 * - the backend's Connection / Keep-Alive headers describe the proxy↔backend connection, not ours:
 *   http-proxy copies them onto the client response, where they would override Node's own keep-alive
 *   decision (a client asking for `Connection: close` would be kept open). They are replaced by Node's
 *   decision for this client connection (removeHeader('connection') would suppress the header altogether);
 * - X-Request-Id is ours (a backend answering with another id would otherwise replace it);
 * - the proxy's own cookie is added here, after a retry has discarded the failed attempt's headers.
 */
function finalizeProxiedHead(res: ProxyResponse): void {
  res.removeHeader('keep-alive');
  res.setHeader('connection', res.shouldKeepAlive ? 'keep-alive' : 'close');
  res.setHeader('x-request-id', res.requestId);
  if (res.setCookie !== null) res.appendHeader('set-cookie', res.setCookie);
}
