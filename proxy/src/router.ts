import type { BackendPool } from './backend-pool.ts';

/** DESIGN.md: /monitor (dashboard) and /api/... (monitoring API) belong to the monitoring service. */
export function isMonitoringPath(path: string): boolean {
  return path.startsWith('/monitor') || path === '/api' || path.startsWith('/api/');
}

/** On-demand uploads (POST/GET /uploads, GET/DELETE /uploads/<id>) belong to ingest. Not /upload: that page is web's. */
export function isUploadsPath(path: string): boolean {
  return path === '/uploads' || path.startsWith('/uploads/');
}

/**
 * Which upstream pool serves a path. Everything goes to the web replicas unless a monitoring
 * upstream is configured; adding a route is one more pool and one more test here.
 */
export class Router {
  constructor(
    private readonly web: BackendPool,
    private readonly monitoring: BackendPool | null,
    private readonly ingest: BackendPool | null = null,
  ) {}

  route(path: string): BackendPool {
    if (this.monitoring !== null && isMonitoringPath(path)) return this.monitoring;
    if (this.ingest !== null && isUploadsPath(path)) return this.ingest;
    return this.web;
  }

  pools(): BackendPool[] {
    return [this.web, ...(this.monitoring === null ? [] : [this.monitoring]), ...(this.ingest === null ? [] : [this.ingest])];
  }
}
