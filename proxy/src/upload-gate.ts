import type { IncomingMessage } from 'node:http';
import { secretMatcher } from '../../common/src/secret-match.ts';
import type { UploadLimits } from './config.ts';
import type { ProxyResponse } from './proxy-response.ts';
import type { Refusal } from './refusals.ts';

/** Room for the multipart framing and the title around the file (ingest allows the same). */
export const MULTIPART_OVERHEAD_BYTES = 1024 * 1024;

/** The upload request: the one request allowed a large body and a long time to arrive. */
export function isUploadRequest(req: IncomingMessage, path: string): boolean {
  return req.method === 'POST' && path === '/uploads';
}

/** Whether a request carries a body (a GET's Content-Length: 0 does not count). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * POST /uploads at the edge, before a byte of the body goes anywhere: the ops token (when the proxy
 * has one; ingest checks it again), and the size: a declared Content-Length over the limit is
 * refused at once, a chunked body is counted while it streams (watchUploadSize).
 */
export class UploadGate {
  private readonly matches: ((candidate: string) => boolean) | null;
  readonly maxBodyBytes: number;

  constructor(opsToken: string | undefined, readonly limits: UploadLimits) {
    this.matches = opsToken ? secretMatcher(opsToken) : null;
    this.maxBodyBytes = limits.maxFileBytes + MULTIPART_OVERHEAD_BYTES;
  }

  /** A refusal for the upload request, or null: relay it. */
  refusal(req: IncomingMessage): Refusal | null {
    if (this.matches !== null) {
      const header = req.headers.authorization ?? '';
      const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
      if (token === '' || !this.matches(token)) return 'unauthorized';
    }
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > this.maxBodyBytes) return 'payload-too-large';
    return null;
  }

  /**
   * Counts the body as it is relayed; past the limit, `onTooLarge` runs once (the caller refuses
   * the request and drops its upstream exchange). Attached after the body is piped upstream.
   */
  watchSize(req: IncomingMessage, res: ProxyResponse, onTooLarge: () => void): void {
    let received = 0;
    const limit = this.maxBodyBytes;
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received <= limit) return;
      req.off('data', onData);
      onTooLarge();
    };
    req.on('data', onData);
    res.once('close', () => req.off('data', onData));
  }
}

/**
 * REQUEST_TIMEOUT_MS for request bodies, kept by the proxy itself: Node's own request timeout is
 * one value per server, and it is raised to UPLOAD_TIMEOUT_MS so an upload can take its time;
 * every other request with a body must still arrive within REQUEST_TIMEOUT_MS (slow-body clients).
 * Bodiless requests are complete with their headers (HEADERS_TIMEOUT_MS covers those).
 */
export function watchBodyDeadline(req: IncomingMessage, res: ProxyResponse, timeoutMs: number, onLate: () => void): void {
  const timer = setTimeout(() => {
    if (!req.complete && !res.writableFinished) onLate();
  }, timeoutMs);
  const clear = (): void => clearTimeout(timer);
  req.once('end', clear);
  res.once('close', clear);
}

/** How long a refused request's body is still read (and thrown away) so its client gets to read the answer. */
export const REFUSED_BODY_LINGER_MS = 10_000;

/**
 * After answering a request whose body is still arriving (an upload refused for its token or size,
 * or answered early by ingest): the rest of the body is read and discarded, so a client that sends
 * its whole body before reading (fetch, most HTTP libraries) sees the answer instead of a reset
 * connection, like nginx's lingering close. Bounded: after REFUSED_BODY_LINGER_MS the connection is cut.
 */
export function discardRestOfBody(req: IncomingMessage, lingerMs = REFUSED_BODY_LINGER_MS): void {
  if (req.complete) return;
  req.unpipe();
  req.resume();
  const timer = setTimeout(() => req.socket.destroy(), lingerMs);
  timer.unref();
  const clear = (): void => clearTimeout(timer);
  req.once('end', clear);
  req.once('close', clear);
}
