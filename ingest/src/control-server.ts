import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { handleOpsRequest, type Readiness } from '../../common/src/ops-endpoints.ts';
import type { BroadcastStatus } from './broadcast/broadcasts.ts';

/**
 * Ingest's control HTTP (port 8001, for ops and the launcher, not for viewers):
 * GET /streams (live streams, since when, input codec/resolution/bitrate, muxer and playlist
 * state, quality ladder and renditions, ffmpeg CPU and speed), /healthz, /readyz, /metrics.
 */
export function createControlServer(
  registry: Registry,
  readiness: Readiness,
  streams: () => BroadcastStatus[],
  /** More routes (the upload API): true when it answered the request. */
  routes?: (req: IncomingMessage, res: ServerResponse, path: string) => boolean,
): Server {
  const server = createServer((req, res) => {
    if (handleOpsRequest(req, res, registry, readiness)) return;
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (routes?.(req, res, path)) return;
    if (path === '/streams' && (req.method === 'GET' || req.method === 'HEAD')) {
      const body = JSON.stringify({ streams: streams() });
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('not found: ingest serves /streams, /uploads, /healthz, /readyz and /metrics\n');
  });
  // An upload of gigabytes takes longer than Node's 5-minute request limit; uploads have their own idle timeout.
  server.requestTimeout = 0;
  return server;
}
