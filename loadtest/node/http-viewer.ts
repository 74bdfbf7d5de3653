/**
 * Runs the viewer model (../lib/viewer.js) over real HTTP from Node: one keep-alive agent per
 * viewer, bound to the viewer's own loopback address so the proxy (and monitoring) see one client
 * per viewer, like k6's --local-ips.
 */
import http from 'node:http';
import { watchStream, type FetchResult, type ViewerAction, type ViewerObserver, type ViewerSummary } from '../lib/viewer.js';

export interface HttpViewerOptions {
  url: string;
  localAddress: string;
  sessionId: string;
  observer: ViewerObserver;
  variantPolicy?: 'highest' | 'lowest' | 'random';
  /** A request that takes longer fails as 'timeout'. */
  timeoutMs?: number;
}

/** Viewer i's address: 127.0.0.2–127.0.0.250 first (k6's --local-ips range), then 127.0.1.2–…250, … */
export function viewerAddress(index: number): string {
  return `127.0.${Math.floor(index / 249)}.${2 + (index % 249)}`;
}

/** One simulated player; `stop()` ends it at its next step and aborts a request in flight. */
export class HttpViewer {
  private readonly agent: http.Agent;
  private readonly controller = new AbortController();
  readonly done: Promise<ViewerSummary | null>;

  constructor(private readonly options: HttpViewerOptions) {
    // hls.js loads one fragment and one playlist at a time: two sockets suffice.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 2, localAddress: options.localAddress });
    this.done = this.run();
  }

  stop(): Promise<ViewerSummary | null> {
    this.controller.abort();
    return this.done;
  }

  private async run(): Promise<ViewerSummary | null> {
    const signal = this.controller.signal;
    const session: Generator<ViewerAction, ViewerSummary, unknown> = watchStream({
      url: this.options.url,
      startMs: performance.now(),
      durationMs: Number.POSITIVE_INFINITY,
      observer: this.options.observer,
      variantPolicy: this.options.variantPolicy ?? 'highest',
      sessionId: this.options.sessionId,
    });
    try {
      let step = session.next();
      while (!step.done) {
        if (signal.aborted) return null;
        const action = step.value;
        if (action.op === 'get') {
          const result = await this.get(action.url, action.what === 'playlist');
          if (signal.aborted) return null;
          step = session.next(result);
        } else {
          await sleepUntil(action.untilMs, signal);
          step = session.next(performance.now());
        }
      }
      return step.value;
    } finally {
      this.agent.destroy();
    }
  }

  private get(url: string, asText: boolean): Promise<FetchResult> {
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    return new Promise((resolve) => {
      const startMs = performance.now();
      let settled = false;
      const finish = (result: Omit<FetchResult, 'startMs' | 'endMs'>): void => {
        if (settled) return;
        settled = true;
        resolve({ ...result, startMs, endMs: performance.now() });
      };
      const req = http.get(url, { agent: this.agent, signal: this.controller.signal }, (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (asText) chunks.push(chunk);
        });
        res.on('end', () => finish({ status: res.statusCode ?? 0, body: asText ? Buffer.concat(chunks).toString('utf8') : null, bytes, error: null }));
        res.on('error', () => finish({ status: 0, body: null, bytes, error: 'network' }));
      });
      req.setTimeout(timeoutMs, () => {
        finish({ status: 0, body: null, bytes: 0, error: 'timeout' });
        req.destroy();
      });
      req.on('error', () => finish({ status: 0, body: null, bytes: 0, error: 'network' }));
    });
  }
}

function sleepUntil(untilMs: number, signal: AbortSignal): Promise<void> {
  const ms = untilMs - performance.now();
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
