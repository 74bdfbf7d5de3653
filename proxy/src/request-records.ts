import { performance } from 'node:perf_hooks';
import { describePath, MAX_RECORDED_PATH_LENGTH } from '../../common/src/access-record.ts';
import { sessionIdFromRequest } from '../../common/src/cmcd.ts';
import { createRecordIds } from '../../common/src/record-shipping/record-id.ts';
import type { AccessLog } from './access-log.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { ProxyResponse, ResponseObserver } from './proxy-response.ts';
import type { Refusal } from './refusals.ts';
import { SEGMENT_CACHE_BACKEND } from './segment-cache.ts';

/** A path as recorded: cut to what monitoring accepts, so a long one never costs the record. */
function recordedPath(path: string): string {
  return path.length <= MAX_RECORDED_PATH_LENGTH ? path : path.slice(0, MAX_RECORDED_PATH_LENGTH);
}

/** What a request that never became an IncomingMessage (parse error, timeout) looked like, as far as it got. */
export interface RawRequest {
  clientIp: string;
  method: string;
  path: string;
  userAgent: string;
  requestId: string;
  startedAt: number;
}

/**
 * Exactly one access record per request the proxy answers (its own /healthz, /readyz, /metrics
 * excepted), refusals included: those carry `refusal` and are counted by reason. Requests
 * refused before Node produced a request object (parse errors, timeouts, CONNECT) are recorded
 * through `refusedOnSocket`, with what could be read of them.
 */
export class RequestRecords implements ResponseObserver {
  private readonly recordIds;

  constructor(
    private readonly instance: string,
    private readonly accessLog: AccessLog,
    private readonly metrics: ProxyMetrics,
  ) {
    this.recordIds = createRecordIds(instance);
  }

  responseClosed(res: ProxyResponse): void {
    if (res.releaseAttempt() !== null) {
      // The client left before the end: stop the upstream exchange too. (http-proxy only does this on
      // the request's 'aborted' event, which Node no longer emits once a GET has been fully received.)
      if (!res.writableFinished) res.upstreamReq?.destroy();
    }
    res.upstreamReq = null;
    res.upstreamRes = null;
    const req = res.req;
    const method = req.method ?? 'GET';
    // 499: the client went away before any response was sent (nginx's convention).
    const status = res.headersSent ? res.statusCode : 499;
    const bytes = method === 'HEAD' || status === 204 || status === 304 || status < 200 ? 0 : res.bytesOut;
    const durationMs = performance.now() - res.startedAt;
    const { stream, kind } = describePath(res.path);
    this.accessLog.write({
      '@timestamp': new Date().toISOString(),
      stream,
      kind,
      client_ip: res.clientIp,
      method,
      path: recordedPath(res.path),
      status,
      bytes,
      duration_ms: Math.round(durationMs * 1000) / 1000,
      tier: 'proxy',
      instance: this.instance,
      user_agent: req.headers['user-agent'] ?? '',
      session_id: sessionIdFromRequest(req.url ?? '', req.headers),
      record_id: this.recordIds.next(),
      backend: res.fromCache ? SEGMENT_CACHE_BACKEND : (res.filledFrom ?? res.servedBy?.url ?? null),
      request_id: res.requestId,
      refusal: res.refusal,
    });
    if (res.refusal !== null) this.metrics.refused(res.refusal);
    this.metrics.observeRequest(kind, status, durationMs / 1000);
  }

  refusedOnSocket(request: RawRequest, status: number, refusal: Refusal): void {
    const { stream, kind } = describePath(request.path);
    const durationMs = performance.now() - request.startedAt;
    this.accessLog.write({
      '@timestamp': new Date().toISOString(),
      stream,
      kind,
      client_ip: request.clientIp,
      method: request.method,
      path: recordedPath(request.path),
      status,
      bytes: 0,
      duration_ms: Math.round(durationMs * 1000) / 1000,
      tier: 'proxy',
      instance: this.instance,
      user_agent: request.userAgent,
      session_id: null,
      record_id: this.recordIds.next(),
      backend: null,
      request_id: request.requestId,
      refusal,
    });
    this.metrics.refused(refusal);
    this.metrics.observeRequest(kind, status, durationMs / 1000);
  }
}

const REQUEST_LINE = /^([A-Z]{1,16}) ([\x21-\x7e]{1,4096})/;

/**
 * Method and path of a request Node could not parse, from the bytes it choked on (the start of
 * the request when they are the first packet; otherwise "-" and ""): printable ASCII only.
 */
export function describeRawRequest(rawPacket: Buffer | undefined): { method: string; path: string } {
  if (rawPacket === undefined || rawPacket.length === 0) return { method: '-', path: '' };
  const line = REQUEST_LINE.exec(rawPacket.toString('latin1', 0, Math.min(rawPacket.length, 4200)));
  if (line === null) return { method: '-', path: '' };
  const target = line[2]!;
  const q = target.indexOf('?');
  return { method: line[1]!, path: q === -1 ? target : target.slice(0, q) };
}
