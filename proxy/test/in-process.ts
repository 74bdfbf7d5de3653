/**
 * The proxy built in the test process (buildProxy, real HTTP on 127.0.0.1, an ephemeral port), for
 * tests that need to look at its insides (backend counters, access records) without a child process.
 */
import http from 'node:http';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { waitFor } from '../../common/testing/processes.ts';
import type { ProxyAccessRecord } from '../src/access-log.ts';
import { buildProxy, type ProxyApp } from '../src/app.ts';
import type { Backend } from '../src/backend.ts';
import { loadProxyConfig } from '../src/config.ts';

export interface InProcessProxy {
  app: ProxyApp;
  url: string;
  port: number;
  records: ProxyAccessRecord[];
  /** The proxy's log lines (JSON). */
  logs: Array<Record<string, unknown>>;
  backend(url: string): Backend;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

export const OPS_TOKEN = 'in-process-ops-token';

export async function startInProcessProxy(env: Record<string, string>): Promise<InProcessProxy> {
  const config = loadProxyConfig({
    PROXY_PORT: '0',
    PROXY_HOST: '127.0.0.1',
    HEALTH_INTERVAL_MS: '100',
    HEALTH_TIMEOUT_MS: '500',
    OPS_TOKEN,
    INSTANCE: 'proxy-in-process',
    SHUTDOWN_TIMEOUT_MS: '2000',
    ...env,
  });
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  const records: ProxyAccessRecord[] = [];
  const app = buildProxy(config, logger, { write: (record) => records.push(record) });
  const port = await app.start();
  const url = `http://127.0.0.1:${port}`;
  return {
    app,
    url,
    port,
    records,
    logs,
    backend(backendUrl) {
      const found = app.webPool.backends().find((b) => b.url === backendUrl);
      if (found === undefined) throw new Error(`no backend ${backendUrl}`);
      return found;
    },
    async metric(name, labels = {}) {
      const text = await app.registry.metrics();
      let sum = 0;
      for (const line of text.split('\n')) {
        if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
        if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return sum;
    },
    stop: () => app.stop(),
  };
}

export async function waitForHealthy(proxy: InProcessProxy, backendUrl: string, healthy = true): Promise<void> {
  await waitFor(`${backendUrl} to be ${healthy ? 'healthy' : 'out of rotation'}`, () => (proxy.backend(backendUrl).state === 'healthy') === healthy, 10_000, 20);
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** performance.now() when the last byte arrived. */
  doneAt: number;
}

/** A client with its own connection pool (many concurrent requests, each on its own socket). */
export function client(maxSockets = 256): { get(url: string, headers?: Record<string, string>): Promise<Answer>; close(): void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  return {
    get(url, headers = {}) {
      return new Promise<Answer>((resolve, reject) => {
        const req = http.get(url, { agent, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), doneAt: performance.now() }));
          res.once('error', reject);
        });
        req.setTimeout(15_000, () => req.destroy(new Error(`no answer within 15 s: ${url}`)));
        req.once('error', reject);
      });
    },
    close: () => agent.destroy(),
  };
}
