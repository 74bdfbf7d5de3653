/**
 * Fills the segment cache from the web pool: one GET to the least busy backend (another one if
 * that fails before answering), the answer read into memory.
 */
import http from 'node:http';
import type { Logger } from '../../common/src/logger.ts';
import { EJECTING_ERRORS, type Backend } from './backend.ts';
import type { BackendPool } from './backend-pool.ts';
import { classifyUpstreamError } from './forwarder.ts';
import { isCacheableSegmentResponse, replayedHeaders, type CachedSegment, type SegmentFill } from './segment-cache.ts';

export interface PoolFillOptions {
  pool: BackendPool;
  agent: http.Agent;
  /** An answer larger than this is not read: the fill resolves null and the requests are forwarded. */
  maxEntryBytes: number;
  /** No byte from the backend for this long: the attempt fails. */
  timeoutMs: number;
  logger: Logger;
}

export function createPoolFill(options: PoolFillOptions): SegmentFill {
  return async (path) => {
    const first = options.pool.pick(null);
    if (first === null) return null;
    try {
      return await fetchSegment(first, path, options);
    } catch {
      const second = options.pool.pick(first);
      if (second === null) return null;
      first.retries++;
      return fetchSegment(second, path, options).catch(() => null);
    }
  };
}

/** Resolves null for an answer too large to hold in memory; rejects when the backend failed. */
function fetchSegment(backend: Backend, path: string, options: PoolFillOptions): Promise<CachedSegment | null> {
  backend.startRequest();
  return new Promise<CachedSegment | null>((resolve, reject) => {
    let settled = false;
    let headReceived = false;
    const settle = (value: CachedSegment | null, err?: Error): void => {
      if (settled) return;
      settled = true;
      backend.finishRequest();
      if (err) {
        // Cut off after the head: the backend died mid-body (the forwarder's 'aborted' too).
        const kind = headReceived ? 'aborted' : classifyUpstreamError(err, req);
        backend.recordError(kind);
        if (EJECTING_ERRORS.has(kind)) backend.eject(`${kind} (${(err as NodeJS.ErrnoException).code ?? err.message})`);
        options.logger.warn({ backend: backend.url, type: kind, error: err.message, path }, 'segment cache fill failed');
        reject(err);
      } else {
        resolve(value);
      }
    };
    const target = backend.proxyOptions.target;
    const req = http.get({ host: target.hostname, port: target.port, path, agent: options.agent }, (res) => {
      headReceived = true;
      const declared = res.headers['content-length'] === undefined ? null : Number(res.headers['content-length']);
      if (declared !== null && !(declared <= options.maxEntryBytes)) {
        res.destroy();
        settle(null);
        return;
      }
      const chunks: Buffer[] = [];
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > options.maxEntryBytes) {
          res.destroy();
          settle(null);
          return;
        }
        chunks.push(chunk);
      });
      res.once('end', () => {
        if (declared !== null && received !== declared) return settle(null, new Error('upstream response ended prematurely'));
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received);
        settle({ status: res.statusCode ?? 502, headers: replayedHeaders(res.headers, received), body, filledFrom: backend.url, cacheable: isCacheableSegmentResponse(res.statusCode, res.headers) });
      });
      res.once('error', (err) => settle(null, err));
      res.once('close', () => {
        if (!res.complete) settle(null, new Error('upstream response ended prematurely'));
      });
    });
    req.setTimeout(options.timeoutMs, () => req.destroy(Object.assign(new Error('no activity from the backend within the upstream timeout'), { code: 'UPSTREAM_TIMEOUT' })));
    req.once('error', (err) => settle(null, err));
  });
}
