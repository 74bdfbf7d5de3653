import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ProxyResponse } from './proxy-response.ts';

/**
 * Every way the proxy turns a request away, with its status and a short body that says why. The
 * reason goes into the access record (`refusal`) and `onair_proxy_refusals_total{reason}`.
 */
const REFUSALS = {
  /** VIEWER_ALLOW_CIDRS does not contain the client's address. */
  network: [403, 'this service is not available from your network'],
  /** PLAYBACK_TOKEN_SECRET is set and the request carries no token (query `token=` or cookie). */
  'token-missing': [403, 'this stream needs a playback link with a token'],
  /** A token that is malformed, forged, or signed for another stream. */
  'token-invalid': [403, 'the playback token is not valid for this stream'],
  'token-expired': [403, 'the playback link has expired; ask for a new one'],
  /** RATE_LIMIT_PER_IP: the client's token bucket is empty. */
  'rate-limited': [429, 'too many requests from your address; retry later'],
  /** MAX_CONNECTIONS_PER_IP: the request came on a connection beyond the limit (which is then closed). */
  'too-many-connections': [429, 'too many connections from your address; retry later'],
  /** MAX_CONNECTIONS: closed at accept, so this one only appears in metrics, never as an answer. */
  overloaded: [503, 'the proxy is at its connection limit; retry shortly'],
  /** Not a request we can parse: bad request line, absolute-form target, missing Host, … */
  'bad-request': [400, 'malformed request'],
  /** Dot-segments, encoded separators, double encoding, invalid UTF-8 or control characters in the path. */
  'bad-path': [400, 'the path contains dot-segments, encoded separators or control characters'],
  'uri-too-long': [414, 'the request target is too long'],
  'headers-too-large': [431, 'the request headers are too large'],
  /** TRACE, CONNECT, WebDAV and unknown methods. */
  'method-not-allowed': [405, 'this method is not allowed here'],
  /** HEADERS_TIMEOUT_MS / REQUEST_TIMEOUT_MS: the request did not arrive in time (slowloris). */
  'request-timeout': [408, 'the request took too long to arrive'],
  /** POST /uploads without the ops token (checked here too, so an anonymous client never streams a body to ingest). */
  unauthorized: [401, 'uploading needs the ops token (Authorization: Bearer <OPS_TOKEN>)'],
  /** An upload larger than UPLOAD_MAX_BYTES (declared, or counted while it streams). */
  'payload-too-large': [413, 'the upload is larger than UPLOAD_MAX_BYTES allows'],
  /** An Expect header other than 100-continue. */
  'expectation-failed': [417, 'this Expect header is not supported'],
} as const satisfies Record<string, readonly [number, string]>;

export type Refusal = keyof typeof REFUSALS;
export const REFUSAL_REASONS = Object.keys(REFUSALS) as Refusal[];

/** Methods the proxy relays; anything else (TRACE, TRACK, CONNECT, PROPFIND, …) is refused with 405. */
export const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS';

interface Answer {
  status: number;
  body: Buffer;
  length: string;
  /** Status line for answers written straight to the socket. */
  statusLine: string;
}

// Built once: refusing is on the path an abusive client hammers, so it allocates as little as possible.
const ANSWERS = new Map<Refusal, Answer>(
  REFUSAL_REASONS.map((reason) => {
    const [status, message] = REFUSALS[reason];
    const body = Buffer.from(`${status} ${STATUS_CODES[status]} (${reason}): ${message}\n`);
    return [reason, { status, body, length: String(body.length), statusLine: `HTTP/1.1 ${status} ${STATUS_CODES[status]}` }];
  }),
);

export function refusalStatus(reason: Refusal): number {
  return ANSWERS.get(reason)!.status;
}

export interface RefusalOptions {
  /** Seconds, for 429/503. */
  retryAfter?: number;
  /** Close the connection after the answer (refused networks, connections beyond the limit). */
  close?: boolean;
}

/** Answers a tracked request with the refusal; its access record carries the reason. */
export function refuse(res: ProxyResponse, reason: Refusal, options: RefusalOptions = {}): void {
  res.refusal = reason;
  res.servedBy = null;
  if (res.headersSent || res.destroyed) return void res.destroy();
  const answer = ANSWERS.get(reason)!;
  res.statusCode = answer.status;
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-length', answer.length);
  if (options.retryAfter !== undefined) res.setHeader('retry-after', String(options.retryAfter));
  if (answer.status === 405) res.setHeader('allow', ALLOWED_METHODS);
  if (options.close) res.setHeader('connection', 'close');
  res.end(answer.body);
}

/**
 * Answers on a bare socket (parse errors, timeouts, CONNECT, refused WebSocket upgrades: no
 * ServerResponse exists) and closes it once the answer is flushed. Returns the status written.
 */
export function refuseOnSocket(socket: Duplex, reason: Refusal, requestId: string, options: RefusalOptions = {}): number {
  const answer = ANSWERS.get(reason)!;
  socket.on('error', noop);
  if (!socket.writable) {
    socket.destroy();
    return answer.status;
  }
  let head = `${answer.statusLine}\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: ${answer.length}\r\nConnection: close\r\nX-Request-Id: ${requestId}\r\n`;
  if (options.retryAfter !== undefined) head += `Retry-After: ${options.retryAfter}\r\n`;
  if (answer.status === 405) head += `Allow: ${ALLOWED_METHODS}\r\n`;
  socket.write(`${head}\r\n`);
  socket.end(answer.body, () => socket.destroy());
  return answer.status;
}

function noop(): void {}
