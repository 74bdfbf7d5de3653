import type { BackendPool } from './backend-pool.ts';

/** DESIGN.md: /monitor (dashboard) and /api/... (monitoring API) belong to the monitoring service. */
export function isMonitoringPath(path: string): boolean {
  return path.startsWith('/monitor') || path === '/api' || path.startsWith('/api/');
}

/**
 * Which upstream pool serves a path. Everything goes to the web replicas unless a monitoring
 * upstream is configured; adding a route is one more pool and one more test here.
 */
export class Router {
  constructor(
    private readonly web: BackendPool,
    private readonly monitoring: BackendPool | null,
  ) {}

  route(path: string): BackendPool {
    if (this.monitoring !== null && isMonitoringPath(path)) return this.monitoring;
    return this.web;
  }

  pools(): BackendPool[] {
    return this.monitoring === null ? [this.web] : [this.web, this.monitoring];
  }
}
