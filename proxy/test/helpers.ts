import http from 'node:http';
import { once } from 'node:events';
import { freePort, startService, waitFor, type ManagedProcess } from '../../common/testing/processes.ts';

export type BackendMode = 'normal' | 'destroy' | 'truncate';

/** The body every backend serves for /data paths: identical across backends, so a retried request is indistinguishable. */
export const DATA_BODY = Buffer.from('segment-payload-'.repeat(512)); // 8 KiB

/**
 * A small real web replica in the test process (127.0.0.1, ephemeral port):
 *   /readyz        200 when `ready`, else 503
 *   /echo...       JSON {backend, url, headers} of what it received
 *   /slow?ms=N     the data body after N ms (counted in `slowInFlight`)
 *   anything else  DATA_BODY
 * `mode`: 'destroy' kills the socket before any response byte (except /readyz); 'truncate' sends
 * the head and part of the body, then kills the socket.
 */
export class TestBackend {
  ready = true;
  mode: BackendMode = 'normal';
  readonly hits: string[] = [];
  readyzHits = 0;
  slowInFlight = 0;
  private constructor(readonly name: string, readonly server: http.Server, readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Requests other than /readyz. */
  get count(): number {
    return this.hits.length;
  }

  static async start(name: string, port = 0): Promise<TestBackend> {
    const server = http.createServer();
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    const backend = new TestBackend(name, server, typeof address === 'object' && address ? address.port : 0);
    server.on('request', (req, res) => backend.handle(req, res));
    return backend;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/readyz') {
      this.readyzHits++;
      res.writeHead(this.ready ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(this.ready ? 'ready\n' : 'not ready\n');
      return;
    }
    this.hits.push(req.url ?? '/');
    if (this.mode === 'destroy') {
      req.socket.destroy();
      return;
    }
    if (this.mode === 'truncate') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(DATA_BODY.length), 'x-backend': this.name });
      res.write(DATA_BODY.subarray(0, 1000));
      setTimeout(() => req.socket.destroy(), 30);
      return;
    }
    if (url.pathname.startsWith('/echo')) {
      // Its own X-Request-Id: the proxy must still answer with the id it resolved.
      res.writeHead(200, { 'content-type': 'application/json', 'x-backend': this.name, 'x-request-id': 'from-backend' });
      res.end(JSON.stringify({ backend: this.name, url: req.url, headers: req.headers }));
      return;
    }
    if (url.pathname.startsWith('/slow')) {
      this.slowInFlight++;
      const timer = setTimeout(() => {
        this.slowInFlight--;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-backend': this.name });
        res.end(DATA_BODY);
      }, Number(url.searchParams.get('ms') ?? '1000'));
      res.on('close', () => {
        if (!res.writableFinished) {
          clearTimeout(timer);
          this.slowInFlight--;
        }
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(DATA_BODY.length), 'x-backend': this.name });
    res.end(DATA_BODY);
  }

  /** Abrupt death: every connection cut, listener closed. */
  async kill(): Promise<void> {
    if (!this.server.listening) return;
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }
}

export interface RunningProxy {
  proc: ManagedProcess;
  port: number;
  url: string;
  token: string | undefined;
  stop(): Promise<void>;
}

/** Security settings a developer's shell might carry (the services inherit the environment): blank unless a test sets them. */
const UNSET_SECURITY_ENV = { VIEWER_ALLOW_CIDRS: '', FRONT_PROXIES: '', PLAYBACK_TOKEN_SECRET: '', LIMIT_EXEMPT_CIDRS: '', TLS_CERT_FILE: '', TLS_KEY_FILE: '' };

/**
 * Starts the real proxy (proxy/src/main.ts) on a free port with fast health checks. With TLS
 * (TLS_CERT_FILE set), `url` is https:// and `alive` must know how to reach it (the test's CA).
 */
export async function startProxy(env: Record<string, string>, name = 'proxy', alive?: (healthzUrl: string) => Promise<boolean>): Promise<RunningProxy> {
  const port = await freePort();
  const proc = startService('proxy', { PROXY_PORT: String(port), PROXY_HOST: '127.0.0.1', HEALTH_INTERVAL_MS: '100', HEALTH_TIMEOUT_MS: '500', ...UNSET_SECURITY_ENV, ...env }, name);
  const url = `${env.TLS_CERT_FILE ? 'https' : 'http'}://127.0.0.1:${port}`;
  const probe = alive ?? (async (healthz: string) => (await fetch(healthz, { signal: AbortSignal.timeout(2_000) })).ok);
  try {
    await waitFor(
      `${name} to answer /healthz`,
      async () => {
        if (!proc.running) throw new Error(`exited early:\n${proc.tail()}`);
        try {
          return await probe(`${url}/healthz`);
        } catch {
          return false;
        }
      },
      20_000,
    );
  } catch (err) {
    proc.kill();
    throw new Error(`${(err as Error).message}\n${proc.tail()}`);
  }
  return { proc, port, url, token: env.OPS_TOKEN, stop: async () => void (await proc.stop(10_000)) };
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: string }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

export interface BackendView {
  url: string;
  state: string;
  inFlight: number;
  /** Requests web holds on purpose (LL-HLS blocking reloads, hinted parts): not in inFlight. */
  held: number;
  holdsMoved: number;
  requests: number;
  retries: number;
  errors: Record<string, number>;
}

export async function listBackends(proxy: RunningProxy): Promise<BackendView[]> {
  const res = await fetch(`${proxy.url}/admin/backends`, { headers: { authorization: `Bearer ${proxy.token}` }, signal: AbortSignal.timeout(5_000) });
  if (res.status !== 200) throw new Error(`admin list: HTTP ${res.status}`);
  return ((await res.json()) as { backends: BackendView[] }).backends;
}

export async function stateOf(proxy: RunningProxy, backend: TestBackend): Promise<string | undefined> {
  return (await listBackends(proxy)).find((b) => b.url === backend.url)?.state;
}

export async function waitForState(proxy: RunningProxy, backend: TestBackend, state: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(`${backend.name} to be ${state}`, async () => (await stateOf(proxy, backend)) === state, timeoutMs);
}

/** Reads a counter/gauge value from /metrics (sum over series matching all `labels`). */
export async function metricValue(proxy: RunningProxy, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${proxy.url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export function accessRecords(proxy: RunningProxy): Array<Record<string, unknown>> {
  return proxy.proc
    .jsonLogs()
    .filter((l) => l.msg === 'access')
    .map((l) => l.access as Record<string, unknown>);
}

/** Runs `body`; on failure the proxy's last log lines are appended to the error. */
export function withLogs(proxy: () => RunningProxy | undefined, body: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await body();
    } catch (err) {
      const p = proxy();
      if (p && err instanceof Error) err.message += `\n${p.proc.tail(80)}`;
      throw err;
    }
  };
}
