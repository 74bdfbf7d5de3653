/**
 * The monitoring API (JSON, ops token). DESIGN.md fixes GET /api/streams with viewers.ips and
 * viewers.sessions; the rest are ours:
 *   GET /api/streams                         the overview (same data the dashboard shows)
 *   GET /api/streams/<stream>/history?minutes=N | ?from=ISO&to=ISO   viewers over time
 *   GET /api/pipeline                        lag and record counters
 *   GET /api/recordings[?seconds=N]          recordings whose files were requested in the last N s
 *                                            (default: the viewer window), with distinct viewers;
 *                                            ingest's retention asks this before deleting one
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { isStreamName } from '../../../common/src/stream-name.ts';
import { historyBucketMs, type Overview } from '../analytics/overview.ts';
import type { AccessStore } from '../store/access-store.ts';
import { sendError, sendJson } from './json.ts';

export interface ApiContext {
  store: AccessStore;
  overview: () => Promise<Overview>;
  registry: Registry;
}

const MAX_RANGE_MS = 90 * 24 * 3600_000;
/** Longest window /api/recordings accepts: a day (each question reads the window's records). */
export const MAX_RECORDINGS_WINDOW_SECONDS = 86_400;

export async function handleApi(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams, ctx: ApiContext): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'method_not_allowed', 'the API is read-only: use GET');
  if (path === '/api/streams') {
    const overview = await ctx.overview();
    return sendJson(res, 200, overview, req.method === 'HEAD');
  }
  const history = /^\/api\/streams\/([^/]+)\/history$/.exec(path);
  if (history) {
    const stream = decodeURIComponent(history[1]!);
    if (!isStreamName(stream)) return sendError(res, 400, 'bad_stream', 'not a stream name');
    const now = Date.now();
    let from: number;
    let to: number;
    if (query.has('from') || query.has('to')) {
      from = Date.parse(query.get('from') ?? '');
      to = query.has('to') ? Date.parse(query.get('to')!) : now;
    } else {
      const minutes = Number(query.get('minutes') ?? '30');
      if (!Number.isFinite(minutes) || minutes <= 0) return sendError(res, 400, 'bad_range', 'minutes must be a positive number');
      to = now;
      from = now - minutes * 60_000;
    }
    if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) return sendError(res, 400, 'bad_range', 'from/to must be ISO-8601 times with from < to');
    if (to - from > MAX_RANGE_MS) return sendError(res, 400, 'bad_range', 'at most 90 days at once');
    const bucketMs = historyBucketMs(to - from);
    const start = Math.floor(from / bucketMs) * bucketMs;
    const points = await ctx.store.viewerHistory(stream, new Date(start), new Date(to), bucketMs);
    return sendJson(res, 200, { stream, bucketMs, points: points.map((p) => ({ t: p.t.toISOString(), ips: p.ips, sessions: p.sessions })) }, req.method === 'HEAD');
  }
  if (path === '/api/pipeline') {
    const [overview, newest] = await Promise.all([ctx.overview(), ctx.store.newestRecordTime()]);
    const now = Date.now();
    const metrics = await ctx.registry.getMetricsAsJSON();
    const counters: Record<string, number> = {};
    for (const m of metrics) {
      if (!m.name.startsWith('onair_monitoring_records_') && m.name !== 'onair_monitoring_store_write_failures_total') continue;
      counters[m.name.replace('onair_monitoring_', '')] = (m.values as Array<{ value: number }>).reduce((a, v) => a + v.value, 0);
    }
    // Lag read now, not from the overview (which may be up to one refresh old).
    const lag = { newestRecordAt: newest?.toISOString() ?? null, lagMs: newest ? Math.max(0, now - newest.getTime()) : null };
    return sendJson(res, 200, { ...overview.pipeline, ...lag, counters });
  }
  if (path === '/api/recordings') {
    let windowMs: number;
    if (query.has('seconds')) {
      const seconds = Number(query.get('seconds'));
      if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_RECORDINGS_WINDOW_SECONDS) {
        return sendError(res, 400, 'bad_window', `seconds must be a number in (0, ${MAX_RECORDINGS_WINDOW_SECONDS}]`);
      }
      windowMs = Math.round(seconds * 1000);
    } else {
      windowMs = (await ctx.overview()).windowMs; // the viewer window W: "watching now"
    }
    const now = new Date();
    const recordings = await ctx.store.recordingsWatched(now, windowMs);
    return sendJson(
      res,
      200,
      {
        generatedAt: now.toISOString(),
        windowSeconds: windowMs / 1000,
        recordings: recordings.map((r) => ({ stream: r.stream, session: r.session, viewers: r.viewers, lastRequestAt: r.lastRequestAt.toISOString() })),
      },
      req.method === 'HEAD',
    );
  }
  return sendError(res, 404, 'not_found', 'unknown API path: see /api/streams, /api/streams/<stream>/history, /api/pipeline, /api/recordings');
}
