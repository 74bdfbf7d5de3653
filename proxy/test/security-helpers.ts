import { execFileSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

/** What became of one raw connection: an HTTP answer, a close without one, a reset, or nothing in time. */
export interface RawOutcome {
  outcome: 'response' | 'closed' | 'reset' | 'timeout';
  /** Status of the first response, when one arrived with a well-formed status line. */
  status: number | null;
  /** Header block of the first response (lower-cased names), when one arrived. */
  headers: Record<string, string>;
  raw: string;
  ms: number;
}

const STATUS_LINE = /^HTTP\/1\.[01] ([1-5]\d\d) [^\r\n]*\r\n/;

const CONTINUE = /^HTTP\/1\.[01] 100 [^\r\n]*\r\n\r\n/;

/**
 * Parses the first final response head in `raw` (interim "100 Continue" heads skipped); null when
 * it does not start with a valid status line.
 */
export function parseResponseHead(raw: string): { status: number; headers: Record<string, string> } | null {
  while (CONTINUE.test(raw)) raw = raw.replace(CONTINUE, '');
  const line = STATUS_LINE.exec(raw);
  if (line === null) return null;
  const end = raw.indexOf('\r\n\r\n');
  const headers: Record<string, string> = {};
  for (const h of raw.slice(line[0].length, end === -1 ? raw.length : end).split('\r\n')) {
    const colon = h.indexOf(':');
    if (colon > 0) headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
  }
  return { status: Number(line[1]), headers };
}

export interface RawOptions {
  localAddress?: string;
  /** Give up after this long (the outcome is then 'timeout'). */
  timeoutMs?: number;
  /**
   * Half-close after writing (default false). Node's server then abandons requests it is still
   * answering (httpAllowHalfOpen is off), so only use it for requests the proxy answers at once.
   */
  end?: boolean;
  /** Read until the server closes, even after a complete response (pipelining). Default: stop at the first complete response. */
  untilClose?: boolean;
  /** Writes the request itself (e.g. byte by byte); `payload` is ignored. */
  write?: (socket: net.Socket) => void;
}

/** Sends bytes on a fresh TCP connection to 127.0.0.1:port and reads until the server closes it. */
export function rawExchange(port: number, payload: string | Buffer, options: RawOptions = {}): Promise<RawOutcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let reset = false;
    let settled = false;
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: options.localAddress });
    const finish = (outcome: RawOutcome['outcome'] | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const raw = Buffer.concat(chunks).toString('latin1');
      const head = parseResponseHead(raw);
      resolve({
        outcome: outcome ?? (head !== null ? 'response' : reset ? 'reset' : 'closed'),
        status: head?.status ?? null,
        headers: head?.headers ?? {},
        raw,
        ms: Math.round(performance.now() - started),
      });
      socket.destroy();
    };
    const timer = setTimeout(() => finish('timeout'), options.timeoutMs ?? 10_000);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (!options.untilClose && responseComplete(Buffer.concat(chunks).toString('latin1'))) finish('response');
    });
    socket.on('error', () => {
      reset = true;
    });
    socket.on('close', () => finish(null));
    socket.on('connect', () => {
      if (options.write) return options.write(socket);
      socket.write(payload);
      if (options.end === true) socket.end();
    });
  });
}

/** Whether `raw` holds a whole response: a head, and the body its Content-Length or chunked framing announces. */
function responseComplete(raw: string): boolean {
  while (CONTINUE.test(raw)) raw = raw.replace(CONTINUE, '');
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) return false;
  const head = parseResponseHead(raw);
  if (head === null) return false;
  const body = raw.length - end - 4;
  if (head.headers['content-length'] !== undefined) return body >= Number(head.headers['content-length']);
  if (head.headers['transfer-encoding'] === 'chunked') return raw.endsWith('0\r\n\r\n');
  return head.status === 101 || head.status === 204 || head.status === 304;
}

export interface SimpleResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One GET (or other method) with node:http, optionally from a given local address (127.0.0.x). */
export function httpRequest(url: string, options: { method?: string; headers?: Record<string, string>; localAddress?: string; agent?: http.Agent | false } = {}): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, localAddress: options.localAddress, agent: options.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A self-signed certificate for 127.0.0.1 / localhost, made with the openssl command. */
export function selfSignedCertificate(dir: string, name = 'proxy'): { cert: string; key: string } {
  const cert = path.join(dir, `${name}-cert.pem`);
  const key = path.join(dir, `${name}-key.pem`);
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    { stdio: 'ignore' },
  );
  return { cert, key };
}
