/**
 * Monitoring's HTTP server (port 9000; reached through the proxy at /monitor and /api):
 * ops endpoints, the dashboard with its login, the JSON API and the WebSocket that pushes the
 * overview to every dashboard each refresh.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../../common/src/logger.ts';
import { handleOpsRequest, type Readiness } from '../../../common/src/ops-endpoints.ts';
import type { Overview } from '../analytics/overview.ts';
import type { MonitoringMetrics } from '../metrics.ts';
import type { AccessStore } from '../store/access-store.ts';
import { handleApi } from './api-routes.ts';
import { sendError } from './json.ts';
import { OpsAuth } from './ops-auth.ts';
import { dashboardPage, loginPage, PAGE_HEADERS } from './pages.ts';

const PUBLIC_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../public');
const require = createRequire(import.meta.url);

interface Asset {
  body: Buffer;
  type: string;
}

async function loadAssets(): Promise<Map<string, Asset>> {
  const uplotDir = path.dirname(require.resolve('uplot/package.json'));
  const files: Array<[string, string, string]> = [
    ['dashboard.js', path.join(PUBLIC_DIR, 'dashboard.js'), 'text/javascript; charset=utf-8'],
    ['dashboard.css', path.join(PUBLIC_DIR, 'dashboard.css'), 'text/css; charset=utf-8'],
    ['uPlot.iife.min.js', path.join(uplotDir, 'dist', 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
    ['uPlot.min.css', path.join(uplotDir, 'dist', 'uPlot.min.css'), 'text/css; charset=utf-8'],
  ];
  const assets = new Map<string, Asset>();
  for (const [name, file, type] of files) assets.set(name, { body: await readFile(file), type });
  return assets;
}

export interface MonitoringServerOptions {
  opsToken: string;
  store: AccessStore;
  registry: Registry;
  metrics: MonitoringMetrics;
  readiness: Readiness;
  overview: () => Promise<Overview>;
  logger: Logger;
}

export class MonitoringServer {
  readonly server: Server;
  private readonly auth: OpsAuth;
  private readonly sockets = new WebSocketServer({ noServer: true, maxPayload: 1024 });
  private assets = new Map<string, Asset>();

  constructor(private readonly options: MonitoringServerOptions) {
    this.auth = new OpsAuth(options.opsToken);
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        options.logger.error({ err, url: req.url }, 'request failed');
        if (!res.headersSent) sendError(res, 503, 'unavailable', 'the store did not answer; try again');
        else res.destroy();
      });
    });
    this.server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname !== '/api/live') {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      this.sockets.handleUpgrade(req, socket, head, (ws) => {
        if (!this.auth.isAuthenticated(req)) {
          ws.close(4401, 'ops token required');
          return;
        }
        this.options.metrics.liveClients.inc();
        ws.on('close', () => this.options.metrics.liveClients.dec());
        ws.on('error', () => undefined);
        void this.options.overview().then((o) => this.send(ws, JSON.stringify(o)), () => undefined);
      });
    });
  }

  async loadAssets(): Promise<void> {
    this.assets = await loadAssets();
  }

  /** Pushes an overview to every connected dashboard (serialised once). */
  broadcast(overview: Overview): void {
    if (this.sockets.clients.size === 0) return;
    const text = JSON.stringify(overview);
    for (const ws of this.sockets.clients) this.send(ws, text);
  }

  closeLiveConnections(): void {
    for (const ws of this.sockets.clients) ws.close(1001, 'monitoring is restarting');
  }

  private send(ws: WebSocket, text: string): void {
    // A dashboard that cannot keep up gets the next update instead of an ever-growing buffer.
    if (ws.readyState === ws.OPEN && ws.bufferedAmount < 1_000_000) ws.send(text);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { registry, readiness } = this.options;
    if (handleOpsRequest(req, res, registry, readiness)) return;
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    if (p === '/monitor' || p === '/monitor/') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'method_not_allowed', 'GET only');
      res.writeHead(200, PAGE_HEADERS);
      res.end(this.auth.isAuthenticated(req) ? dashboardPage() : loginPage(url.searchParams.has('failed')));
      return;
    }
    if (p === '/monitor/login' && req.method === 'POST') {
      const body = await readBody(req, 4096);
      const token = new URLSearchParams(body).get('token') ?? '';
      if (this.auth.tokenMatches(token)) {
        res.writeHead(303, { location: '/monitor', 'set-cookie': this.auth.sessionCookie(), 'cache-control': 'no-store' });
      } else {
        this.options.logger.warn({ client: req.socket.remoteAddress }, 'dashboard sign-in with a wrong token');
        res.writeHead(303, { location: '/monitor?failed', 'cache-control': 'no-store' });
      }
      res.end();
      return;
    }
    if (p === '/monitor/logout' && req.method === 'POST') {
      res.writeHead(303, { location: '/monitor', 'set-cookie': 'onair_ops=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0' });
      res.end();
      return;
    }
    if (p.startsWith('/monitor/assets/')) {
      const asset = this.assets.get(p.slice('/monitor/assets/'.length));
      if (!asset) return sendError(res, 404, 'not_found', 'no such asset');
      res.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length, 'cache-control': 'public, max-age=300' });
      res.end(req.method === 'HEAD' ? undefined : asset.body);
      return;
    }
    if (p === '/api' || p.startsWith('/api/')) {
      if (!this.auth.isAuthenticated(req)) {
        res.setHeader('www-authenticate', 'Bearer realm="onair ops"');
        return sendError(res, 401, 'unauthorized', 'send Authorization: Bearer <OPS_TOKEN>');
      }
      return handleApi(req, res, p, url.searchParams, this.options);
    }
    sendError(res, 404, 'not_found', 'monitoring serves /monitor, /api/..., /healthz, /readyz, /metrics');
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
