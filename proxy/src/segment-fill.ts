/**
 * Fills the segment and playlist caches from the web pool: one GET to the least busy backend
 * (another one if that fails before answering), the answer read into memory. The GET asks for the
 * cache key: the path, with a playlist's canonical LL-HLS directives and nothing else of the
 * viewer's query.
 *
 * A held fill (a blocking playlist reload, a hinted part: web answers when the part is published)
 * is counted in the backend's `held`, not `inFlight`, goes through the held-request agent and has
 * the held idle limit (forwarder.ts). If the replica dies while holding it (reset, refused), or turns
 * unhealthy (HoldMovedError), it is sent to another replica: the viewers waiting for it see nothing.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../common/src/logger.ts';
import { EJECTING_ERRORS, HoldMovedError, type Backend, type HeldRequest } from './backend.ts';
import type { BackendPool } from './backend-pool.ts';
import { classifyUpstreamError } from './forwarder.ts';
import { isCacheableSegmentResponse, replayedHeaders, type CachedSegment, type SegmentFill } from './segment-cache.ts';

export interface PoolFillOptions {
  pool: BackendPool;
  agent: http.Agent;
  /** The agent of held fills (forwarder.ts createHeldAgent). */
  heldAgent?: http.Agent;
  /** An answer larger than this is not read: the fill resolves null and the requests are forwarded. */
  maxEntryBytes: number;
  /** No byte from the backend for this long: the attempt fails. */
  timeoutMs: number;
  /** The same for a held fill (longer than web's hold). */
  heldTimeoutMs?: number;
  logger: Logger;
}

/** Attempts that failed (not counting moves off a backend that turned unhealthy) before the fill gives up. */
const MAX_FAILURES = 2;
/** Moves of a held fill before it gives up (backends flapping). */
const MAX_MOVES = 2;

export function createPoolFill(options: PoolFillOptions): SegmentFill {
  return async (target, held) => {
    let last: Backend | null = null;
    let lastFailed = false;
    let failures = 0;
    let moves = 0;
    for (;;) {
      const backend = options.pool.pick(last);
      if (backend === null) return null;
      if (last !== null && lastFailed) last.retries++;
      try {
        return await fetchSegment(backend, target, held, options);
      } catch (err) {
        lastFailed = !(err instanceof HoldMovedError);
        if (lastFailed) failures++;
        else moves++;
        if (failures >= MAX_FAILURES || moves > MAX_MOVES) return null;
        last = backend;
      }
    }
  };
}

/** Resolves null for an answer too large to hold in memory; rejects when the backend failed. */
function fetchSegment(backend: Backend, target: string, held: boolean, options: PoolFillOptions): Promise<CachedSegment | null> {
  let req: http.ClientRequest | null = null;
  let headReceived = false;
  const hold: HeldRequest | null = held
    ? {
        moveHold() {
          if (!headReceived) req?.destroy(new HoldMovedError());
        },
      }
    : null;
  const startedAt = performance.now();
  backend.startRequest(hold);
  return new Promise<CachedSegment | null>((resolve, reject) => {
    let settled = false;
    const settle = (value: CachedSegment | null, err?: Error): void => {
      if (settled) return;
      settled = true;
      backend.finishRequest(hold);
      if (err instanceof HoldMovedError) {
        options.logger.info({ backend: backend.url, path: target }, 'held cache fill moved to another backend');
        reject(err);
      } else if (err) {
        // Cut off after the head: the backend died mid-body (the forwarder's 'aborted' too).
        const kind = headReceived ? 'aborted' : classifyUpstreamError(err, req, held ? performance.now() - startedAt : 0);
        backend.recordError(kind);
        if (EJECTING_ERRORS.has(kind)) backend.eject(`${kind} (${(err as NodeJS.ErrnoException).code ?? err.message})`);
        options.logger.warn({ backend: backend.url, type: kind, error: err.message, path: target }, 'cache fill failed');
        reject(err);
      } else {
        resolve(value);
      }
    };
    const upstream = backend.proxyOptions.target;
    const agent = held && options.heldAgent !== undefined ? options.heldAgent : options.agent;
    req = http.get({ host: upstream.hostname, port: upstream.port, path: target, agent }, (res) => {
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
    const timeoutMs = held ? (options.heldTimeoutMs ?? options.timeoutMs) : options.timeoutMs;
    req.setTimeout(timeoutMs, () => req?.destroy(Object.assign(new Error('no activity from the backend within the upstream timeout'), { code: 'UPSTREAM_TIMEOUT' })));
    req.once('error', (err) => settle(null, err));
  });
}
