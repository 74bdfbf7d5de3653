import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import type { Logger } from '../../common/src/logger.ts';
import { secretMatcher } from '../../common/src/secret-match.ts';
import type { BackendPool } from './backend-pool.ts';
import { normalizeBackendUrl } from './backend-url.ts';
import type { ProxyResponse } from './proxy-response.ts';

export const ADMIN_PREFIX = '/admin';
const MAX_BODY_BYTES = 16 * 1024;

const urlBody = z.object({ url: z.string().min(1, 'url must not be empty') });

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/**
 * Run-time backend management on the proxy's own port, `Authorization: Bearer <OPS_TOKEN>`:
 *   GET    /admin/backends                 list (state, in-flight, totals)
 *   POST   /admin/backends        {"url"}  add (pending until a health check passes)
 *   POST   /admin/backends/drain  {"url"}  drain (no new requests; removed when in-flight reaches 0)
 *   DELETE /admin/backends?url=…           remove at once
 * Without OPS_TOKEN the API is disabled (403). The token is compared in constant time.
 */
export class AdminApi {
  private readonly tokenMatches: ((candidate: string) => boolean) | null;

  constructor(
    private readonly pool: BackendPool,
    opsToken: string | undefined,
    private readonly logger: Logger,
  ) {
    this.tokenMatches = opsToken ? secretMatcher(opsToken) : null;
  }

  handles(path: string): boolean {
    return path === ADMIN_PREFIX || path.startsWith(`${ADMIN_PREFIX}/`);
  }

  handle(req: IncomingMessage, res: ProxyResponse, path: string): void {
    this.dispatch(req, res, path).catch((err: unknown) => {
      if (err instanceof HttpError) return sendJson(res, err.status, { error: err.message });
      this.logger.error({ err }, 'admin API failure');
      sendJson(res, 500, { error: 'internal error' });
    });
  }

  private async dispatch(req: IncomingMessage, res: ProxyResponse, path: string): Promise<void> {
    if (this.tokenMatches === null) throw new HttpError(403, 'admin API disabled: set OPS_TOKEN to enable it');
    if (!this.authorized(req.headers.authorization)) {
      res.setHeader('www-authenticate', 'Bearer realm="onair-proxy"');
      throw new HttpError(401, 'missing or wrong bearer token');
    }
    const method = req.method ?? 'GET';
    if (path === '/admin/backends') {
      if (method === 'GET' || method === 'HEAD') return sendJson(res, 200, this.list());
      if (method === 'POST') return this.add(req, res);
      if (method === 'DELETE') return this.remove(req, res);
      res.setHeader('allow', 'GET, HEAD, POST, DELETE');
      throw new HttpError(405, `method ${method} not allowed on ${path}`);
    }
    if (path === '/admin/backends/drain') {
      if (method === 'POST') return this.drain(req, res);
      res.setHeader('allow', 'POST');
      throw new HttpError(405, `method ${method} not allowed on ${path}`);
    }
    throw new HttpError(404, `no admin endpoint ${path}`);
  }

  private authorized(header: string | undefined): boolean {
    const match = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    return match !== null && this.tokenMatches!(match[1]!);
  }

  private list(): unknown {
    return { pool: this.pool.name, healthy: this.pool.healthyCount, backends: this.pool.backends().map((b) => b.snapshot()) };
  }

  private async add(req: IncomingMessage, res: ProxyResponse): Promise<void> {
    const url = validUrl((await readJson(req)).url);
    const { backend, created } = this.pool.add(url);
    this.logger.info({ backend: backend.url, created, by: 'admin-api' }, created ? 'backend added' : 'backend add requested (already present)');
    sendJson(res, created ? 201 : 200, { backend: backend.snapshot() });
  }

  private async drain(req: IncomingMessage, res: ProxyResponse): Promise<void> {
    const url = validUrl((await readJson(req)).url);
    const backend = this.pool.drain(url);
    if (!backend) throw new HttpError(404, `no backend ${url}`);
    this.logger.info({ backend: backend.url, inFlight: backend.inFlight, by: 'admin-api' }, 'backend drain requested');
    sendJson(res, 202, { backend: backend.snapshot() });
  }

  private async remove(req: IncomingMessage, res: ProxyResponse): Promise<void> {
    const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
    const raw = query.get('url');
    if (raw === null || raw === '') throw new HttpError(400, 'query parameter url is required: DELETE /admin/backends?url=http://host:port');
    const url = validUrl(raw);
    const backend = this.pool.remove(url);
    if (!backend) throw new HttpError(404, `no backend ${url}`);
    this.logger.info({ backend: backend.url, inFlight: backend.inFlight, by: 'admin-api' }, 'backend removed');
    sendJson(res, 200, { removed: backend.url, backend: backend.snapshot() });
  }
}


function validUrl(raw: string): string {
  try {
    return normalizeBackendUrl(raw);
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
}

async function readJson(req: IncomingMessage): Promise<z.infer<typeof urlBody>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `body is not valid JSON (${(err as Error).message}); expected {"url": "http://host:port"}`);
  }
  const result = urlBody.safeParse(parsed);
  if (!result.success) {
    throw new HttpError(400, `expected {"url": "http://host:port"}: ${result.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
  }
  return result.data;
}

function sendJson(res: ProxyResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}
