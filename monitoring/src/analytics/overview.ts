/**
 * The ops picture at one moment: per stream viewers now (unique IPs and player sessions),
 * peak, request/egress rates, error rate and per-backend share; pipeline lag; backend health.
 * Built every REFRESH_MS by one timer and shared by the API and every dashboard.
 */
import { readLiveState } from '../../../common/src/live-state.ts';
import { ingestStateFile } from '../../../common/src/media-layout.ts';
import type { Logger } from '../../../common/src/logger.ts';
import type { AccessStore, ViewerCount } from '../store/access-store.ts';
import { collectSenderStats, type SenderStats } from './sender-stats.ts';

export interface StreamOverview {
  stream: string;
  live: boolean;
  state: 'live' | 'reconnecting' | 'offline';
  since: string | null;
  video: { codec: string; width: number; height: number; fps: number } | null;
  viewers: ViewerCount;
  peak: ViewerCount & { at: string | null };
  requestsPerSecond: number;
  egressBytesPerSecond: number;
  /** share of requests answered with 5xx over the rate window */
  errorRate: number;
  /** share of requests per backend over the rate window */
  backendShare: Record<string, number>;
  /** From ingest's GET /streams while live: the quality ladder and what its ffmpeg costs (null: not live or ingest unreachable). */
  transcode: StreamTranscode | null;
}

export interface StreamTranscode {
  /** "720p,360p" or "off" (passthrough) */
  ladder: string;
  renditions: string[];
  cpuCores: number | null;
  speed: number | null;
  slow: boolean;
}

export interface BackendRow {
  url: string;
  state: string;
  inFlight?: number;
  [key: string]: unknown;
}

export interface Overview {
  generatedAt: string;
  windowMs: number;
  streams: StreamOverview[];
  pipeline: { newestRecordAt: string | null; lagMs: number | null; storeUp: boolean; senders: SenderStats | null };
  backends: BackendRow[] | null;
  /** Whether ingest's control API answered (null: no INGEST_URL). */
  ingest: { url: string; up: boolean } | null;
}

export interface OverviewOptions {
  store: AccessStore;
  mediaDir: string;
  windowMs: number;
  /** Rates (requests/s, bytes/s, errors) are averaged over this much recent time. */
  rateWindowMs?: number;
  proxyUrl?: string | undefined;
  /** Ingest's control HTTP base URL (GET /streams). */
  ingestUrl?: string | undefined;
  opsToken: string;
  logger: Logger;
}

const PEAK_BUCKET_MS = 10_000;
const PEAK_REFRESH_MS = 15_000;
const PEAK_LOOKBACK_MS = 24 * 3600_000;
const SENDER_REFRESH_MS = 5000;

export class OverviewBuilder {
  private peaks = new Map<string, { value: ViewerCount & { at: string | null }; refreshedAt: number }>();
  private readonly rateWindowMs: number;
  private senders: { stats: SenderStats; at: number } | null = null;

  constructor(private readonly options: OverviewOptions) {
    this.rateWindowMs = options.rateWindowMs ?? 10_000;
  }

  async build(now = new Date()): Promise<Overview> {
    const { store, windowMs } = this.options;
    const [liveState, viewers, newest, backends, ingest] = await Promise.all([
      readLiveState(ingestStateFile(this.options.mediaDir), now.getTime()),
      store.viewersNow(now, windowMs),
      store.newestRecordTime(),
      this.fetchBackends(),
      this.fetchIngestStreams(),
    ]);
    const senders = await this.senderStats(backends, now.getTime());
    const live = new Map(liveState.streams.map((s) => [s.stream, s]));
    const names = [...new Set([...live.keys(), ...viewers.keys()])].sort();
    const from = new Date(now.getTime() - this.rateWindowMs);
    const seconds = this.rateWindowMs / 1000;
    const streams = await Promise.all(
      names.map(async (stream): Promise<StreamOverview> => {
        const info = live.get(stream);
        const current = viewers.get(stream) ?? { ips: 0, sessions: 0 };
        const [traffic, peak] = await Promise.all([store.traffic(stream, 'proxy', from, now), this.peak(stream, now, current)]);
        const share: Record<string, number> = {};
        for (const [backend, n] of Object.entries(traffic.byBackend)) share[backend] = traffic.requests ? n / traffic.requests : 0;
        return {
          stream,
          live: info !== undefined,
          state: info?.state ?? 'offline',
          since: info?.since ?? null,
          video: info?.video ?? null,
          viewers: current,
          peak,
          requestsPerSecond: traffic.requests / seconds,
          egressBytesPerSecond: traffic.bytes / seconds,
          errorRate: traffic.requests ? traffic.serverErrors / traffic.requests : 0,
          backendShare: share,
          transcode: ingest?.streams.get(stream) ?? null,
        };
      }),
    );
    return {
      generatedAt: now.toISOString(),
      windowMs,
      streams,
      pipeline: { newestRecordAt: newest?.toISOString() ?? null, lagMs: newest ? Math.max(0, now.getTime() - newest.getTime()) : null, storeUp: true, senders },
      backends,
      ingest: this.options.ingestUrl ? { url: this.options.ingestUrl, up: ingest !== null } : null,
    };
  }

  /** Ingest's live streams: ladder, renditions, ffmpeg CPU and speed. Null when ingest does not answer. */
  private async fetchIngestStreams(): Promise<{ streams: Map<string, StreamTranscode> } | null> {
    if (!this.options.ingestUrl) return null;
    try {
      const res = await fetch(`${this.options.ingestUrl}/streams`, { signal: AbortSignal.timeout(1000) });
      if (!res.ok) return null;
      const body = (await res.json()) as { streams?: Array<Record<string, unknown>> };
      const streams = new Map<string, StreamTranscode>();
      for (const s of body.streams ?? []) {
        if (typeof s.stream !== 'string') continue;
        const t = (s.transcode ?? {}) as { cpuCores?: unknown; speed?: unknown; slow?: unknown };
        const renditions = Array.isArray(s.renditions) ? s.renditions.map((r) => String((r as { name?: unknown }).name)) : [];
        streams.set(s.stream, {
          ladder: typeof s.ladder === 'string' ? s.ladder : 'off',
          renditions,
          cpuCores: typeof t.cpuCores === 'number' ? t.cpuCores : null,
          speed: typeof t.speed === 'number' ? t.speed : null,
          slow: t.slow === true,
        });
      }
      return { streams };
    } catch {
      return null; // ingest down or slow: the dashboard says so, the rest of the overview goes on
    }
  }

  /** Highest viewer count over the last 24 h (10 s buckets), kept current with the live count. */
  private async peak(stream: string, now: Date, current: ViewerCount): Promise<ViewerCount & { at: string | null }> {
    let cached = this.peaks.get(stream);
    if (!cached || now.getTime() - cached.refreshedAt > PEAK_REFRESH_MS) {
      const history = await this.options.store.viewerHistory(stream, new Date(now.getTime() - PEAK_LOOKBACK_MS), now, PEAK_BUCKET_MS);
      let best: ViewerCount & { at: string | null } = { ips: 0, sessions: 0, at: null };
      for (const point of history) {
        if (point.ips > best.ips || (point.ips === best.ips && point.sessions > best.sessions)) best = { ips: point.ips, sessions: point.sessions, at: point.t.toISOString() };
      }
      cached = { value: best, refreshedAt: now.getTime() };
      this.peaks.set(stream, cached);
    }
    if (current.ips > cached.value.ips) cached.value = { ...current, at: now.toISOString() };
    else if (current.sessions > cached.value.sessions && current.ips === cached.value.ips) cached.value = { ...current, at: now.toISOString() };
    return cached.value;
  }

  /** The proxy and every web backend it knows, polled at most every 5 s. */
  private async senderStats(backends: BackendRow[] | null, now: number): Promise<SenderStats | null> {
    if (!this.options.proxyUrl) return null;
    if (!this.senders || now - this.senders.at >= SENDER_REFRESH_MS) {
      const urls = [this.options.proxyUrl, ...(backends ?? []).map((b) => b.url)];
      this.senders = { stats: await collectSenderStats(urls), at: now };
    }
    return this.senders.stats;
  }

  private async fetchBackends(): Promise<BackendRow[] | null> {
    if (!this.options.proxyUrl) return null;
    try {
      const res = await fetch(`${this.options.proxyUrl}/admin/backends`, {
        headers: { authorization: `Bearer ${this.options.opsToken}` },
        signal: AbortSignal.timeout(1000),
      });
      if (!res.ok) return null;
      const body = (await res.json()) as { backends?: BackendRow[] };
      return body.backends ?? null;
    } catch {
      return null;
    }
  }
}

/** History resolution: 10 s for the last hours, coarser beyond (bounded number of points). */
export function historyBucketMs(rangeMs: number): number {
  if (rangeMs <= 6 * 3600_000) return 10_000;
  if (rangeMs <= 48 * 3600_000) return 60_000;
  if (rangeMs <= 14 * 24 * 3600_000) return 600_000;
  return 3600_000;
}
