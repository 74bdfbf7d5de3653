import http, { type IncomingHttpHeaders } from 'node:http';

/** A plain node:http client for the low-latency tests: many requests at once, and when each answer arrived. */
export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** performance.now() when the body was complete. */
  at: number;
}

/** One socket per request in flight, as many as asked for (fetch's pool would queue thousands). */
export function manySocketsAgent(): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 4096 });
}

export function get(port: number, target: string, options: { agent?: http.Agent; method?: string; signal?: AbortSignal; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, method: options.method ?? 'GET', agent: options.agent ?? false, headers: options.headers, signal: options.signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), at: performance.now() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}
