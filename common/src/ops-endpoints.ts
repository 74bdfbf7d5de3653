import type { IncomingMessage, ServerResponse } from 'node:http';
import { collectDefaultMetrics, Registry } from 'prom-client';

export interface Readiness {
  /** null when ready, otherwise a short reason shown in the /readyz body. */
  (): string | null;
}

export function createMetricsRegistry(service: string, instance: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service, instance });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * GET /healthz (process alive), GET /readyz (able to serve now), GET /metrics (Prometheus).
 * Returns false when the path is not an ops path so the caller can route it.
 */
export function handleOpsRequest(
  req: IncomingMessage,
  res: ServerResponse,
  registry: Registry,
  readiness: Readiness,
): boolean {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (path !== '/healthz' && path !== '/readyz' && path !== '/metrics') return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    res.end('method not allowed\n');
    return true;
  }
  if (path === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end('ok\n');
    return true;
  }
  if (path === '/readyz') {
    const reason = readiness();
    res.writeHead(reason === null ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end(reason === null ? 'ready\n' : `not ready: ${reason}\n`);
    return true;
  }
  registry.metrics().then(
    (body) => {
      res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
      res.end(body);
    },
    (err: unknown) => {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`metrics unavailable: ${String(err)}\n`);
    },
  );
  return true;
}
