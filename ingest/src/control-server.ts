import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { handleOpsRequest, type Readiness } from '../../common/src/ops-endpoints.ts';
import type { BroadcastStatus } from './broadcasts.ts';

/**
 * Ingest's control HTTP (port 8001, for ops and the launcher, not for viewers):
 * GET /streams (live streams, since when, input codec/resolution/bitrate, muxer and playlist
 * state, quality ladder and renditions, ffmpeg CPU and speed), /healthz, /readyz, /metrics.
 */
export function createControlServer(registry: Registry, readiness: Readiness, streams: () => BroadcastStatus[]): Server {
  return createServer((req, res) => {
    if (handleOpsRequest(req, res, registry, readiness)) return;
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/streams' && (req.method === 'GET' || req.method === 'HEAD')) {
      const body = JSON.stringify({ streams: streams() });
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('not found: ingest serves /streams, /healthz, /readyz and /metrics\n');
  });
}
