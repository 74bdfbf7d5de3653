import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BlockList } from 'node:net';
import { describePath } from '../../common/src/access-record.ts';
import { createRecordIds, type RecordIds } from '../../common/src/record-shipping/record-id.ts';
import { buildAccessRecord, type AccessLog } from './access-log.ts';
import type { MetricKind, WebMetrics } from './metrics.ts';
import { stripQuery } from './media-path.ts';

export interface RequestTracker {
  /** Observes one request until its response finishes or the connection closes. */
  track(req: IncomingMessage, res: ServerResponse): void;
  /** Metrics only, no access record: /healthz, /readyz and /metrics would flood the log. */
  trackOps(req: IncomingMessage, res: ServerResponse): void;
  /** Viewer requests (not ops) whose response is not yet fully handed to the OS. */
  readonly inFlight: number;
  /** Resolves when no viewer request is in flight, or after `timeoutMs`; true when it settled. */
  settled(timeoutMs: number): Promise<boolean>;
}

/** nginx's convention: the client went away before a response was started. */
const CLIENT_CLOSED_REQUEST = 499;

export function createRequestTracker(options: { instance: string; trustList: BlockList; accessLog: AccessLog; metrics: WebMetrics; recordIds?: RecordIds }): RequestTracker {
  const { instance, trustList, accessLog, metrics } = options;
  const recordIds = options.recordIds ?? createRecordIds(instance);
  let inFlight = 0;
  let onSettled: Array<() => void> = [];

  /** `ops` requests are counted but get no access record. */
  const observe = (req: IncomingMessage, res: ServerResponse, ops: boolean): void => {
    const startedAt = performance.now();
    const peer = req.socket.remoteAddress; // gone from the socket once the client has hung up
    const countBody = countBodyBytes(req, res);
    if (!ops) inFlight++;
    let done = false;
    const onDone = (): void => {
      if (done) return;
      done = true;
      if (!ops && --inFlight === 0) {
        for (const resolve of onSettled) resolve();
        onSettled = [];
      }
      const durationMs = performance.now() - startedAt;
      // 'close' without 'finish' means the client aborted; record what was handed over by then.
      const status = res.headersSent ? res.statusCode : CLIENT_CLOSED_REQUEST;
      const bytes = countBody();
      const path = stripQuery(req.url ?? '/');
      const { stream, kind } = describePath(path);
      const metricKind: MetricKind = ops ? 'ops' : kind;
      metrics.requests.inc({ kind: metricKind, status: String(status) });
      metrics.bytesSent.inc({ kind: metricKind }, bytes);
      metrics.duration.observe({ kind: metricKind }, durationMs / 1000);
      if (ops) return;
      accessLog.write(buildAccessRecord({ req, peer, path, stream, kind, status, bytes, durationMs, finishedAt: new Date(), recordId: recordIds.next() }, instance, trustList));
    };
    res.once('finish', onDone);
    res.once('close', onDone);
  };

  return {
    track: (req, res) => observe(req, res, false),
    trackOps: (req, res) => observe(req, res, true),
    get inFlight() {
      return inFlight;
    },
    settled(timeoutMs) {
      if (inFlight === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        onSettled.push(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    },
  };
}

/**
 * Counts body bytes written to `res` by wrapping its write/end (own properties, so they survive
 * express swapping the prototype). HEAD, 1xx, 204 and 304 responses have no body whatever was passed.
 */
function countBodyBytes(req: IncomingMessage, res: ServerResponse): () => number {
  let bytes = 0;
  const add = (chunk: unknown, encoding: unknown): void => {
    if (typeof chunk === 'string') bytes += Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
    else if (chunk instanceof Uint8Array) bytes += chunk.byteLength;
  };
  const write = res.write;
  const end = res.end;
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    add(chunk, rest[0]);
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as ServerResponse['write'];
  res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    if (typeof chunk !== 'function') add(chunk, rest[0]);
    return (end as (...args: unknown[]) => ServerResponse).call(this, chunk, ...rest);
  } as ServerResponse['end'];
  return () => {
    const status = res.statusCode;
    if (req.method === 'HEAD' || status < 200 || status === 204 || status === 304) return 0;
    return bytes;
  };
}
