import http from 'node:http';
import type { Logger } from '../../common/src/logger.ts';
import type { Backend } from './backend.ts';
import type { BackendPool } from './backend-pool.ts';

export interface HealthCheckOptions {
  intervalMs: number;
  timeoutMs: number;
}

/**
 * Active checks: `GET /readyz` on every backend that may take traffic, every interval; 2xx within
 * the timeout passes, anything else (status, refusal, timeout) fails. A new backend is checked at once.
 * Checks use their own small keep-alive agent so they never queue behind viewer traffic.
 */
export class HealthChecker {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1, timeout: 4_000 });
  private readonly outstanding = new Set<http.ClientRequest>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly onAdded = (backend: Backend): void => this.check(backend);

  constructor(
    private readonly pools: readonly BackendPool[],
    private readonly options: HealthCheckOptions,
    private readonly logger: Logger,
  ) {}

  start(): void {
    for (const pool of this.pools) pool.on('added', this.onAdded);
    this.checkAll();
    this.timer = setInterval(() => this.checkAll(), this.options.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const pool of this.pools) pool.off('added', this.onAdded);
    for (const req of this.outstanding) req.destroy();
    this.outstanding.clear();
    this.agent.destroy();
  }

  private checkAll(): void {
    for (const pool of this.pools) for (const backend of pool.backends()) this.check(backend);
  }

  private check(backend: Backend, isRetry = false): void {
    if (this.stopped || backend.checking || !backend.wantsChecks) return;
    backend.checking = true;
    let settled = false;
    const req = http.request({
      host: backend.host,
      port: backend.port,
      path: '/readyz',
      method: 'GET',
      agent: this.agent,
      headers: { 'user-agent': 'onair-proxy-health-check' },
    });
    const finish = (ok: boolean, detail: string, retry = false): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.outstanding.delete(req);
      backend.checking = false;
      if (this.stopped) return;
      // A keep-alive socket the backend closed while idle is not evidence against the backend: ask again on a new connection.
      if (retry && !isRetry) return this.check(backend, true);
      const before = backend.state;
      backend.recordCheck(ok, detail);
      if (!ok && before === backend.state) this.logger.debug({ backend: backend.url, detail }, 'health check failed');
    };
    const timer = setTimeout(() => {
      finish(false, `no answer within ${this.options.timeoutMs} ms`);
      req.destroy();
    }, this.options.timeoutMs);
    this.outstanding.add(req);
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      res.on('error', () => {});
      res.on('end', () => finish(status >= 200 && status < 300, `HTTP ${status}`));
      res.on('close', () => finish(false, 'connection closed during the answer'));
      res.resume();
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      finish(false, err.code ?? err.message, req.reusedSocket && err.code === 'ECONNRESET');
    });
    req.end();
  }
}
