import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { BACKEND_STATES, UPSTREAM_ERROR_KINDS } from './backend.ts';
import type { BackendPool } from './backend-pool.ts';
import type { RequestKind } from '../../common/src/access-record.ts';
import { REFUSAL_REASONS, type Refusal } from './refusals.ts';
import type { PlaylistCacheStats } from './playlist-cache.ts';
import type { SegmentCacheStats } from './segment-cache.ts';

/** Live figures the metrics read when scraped. */
export interface ConnectionFigures {
  /** Client connections open now. */
  openConnections(): number;
  /** Client addresses the per-address limits keep state for. */
  trackedClients(): number;
}

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/**
 * Prometheus metrics of the proxy. Per-backend figures are plain integers on the Backend objects
 * (incremented on the hot path for free) and read into the registry only when /metrics is scraped,
 * so a removed backend's series disappear with it.
 */
export class ProxyMetrics {
  private readonly durations: Histogram<'kind' | 'code'>;
  private readonly durationChildren = new Map<string, { observe(value: number): void }>();
  private readonly errorResponses: Counter<'status' | 'reason'>;
  private readonly refusals = new Map<string, { inc(): void }>();

  constructor(
    private readonly registry: Registry,
    pools: () => readonly BackendPool[],
    connections: ConnectionFigures,
  ) {
    const registers = [registry];
    new Gauge({
      name: 'onair_proxy_backend_state',
      help: 'Backend state: 1 for the state the backend is in, 0 for the others',
      labelNames: ['pool', 'backend', 'state'] as const,
      registers,
      collect() {
        this.reset();
        for (const pool of pools())
          for (const b of pool.backends())
            for (const state of BACKEND_STATES) if (state !== 'removed') this.set({ pool: pool.name, backend: b.url, state }, b.state === state ? 1 : 0);
      },
    });
    new Gauge({
      name: 'onair_proxy_backend_in_flight',
      help: 'Requests in flight to the backend (held ones excepted: onair_proxy_backend_held); what the balancer compares',
      labelNames: ['pool', 'backend'] as const,
      registers,
      collect() {
        this.reset();
        for (const pool of pools()) for (const b of pool.backends()) this.set({ pool: pool.name, backend: b.url }, b.inFlight);
      },
    });
    new Gauge({
      name: 'onair_proxy_backend_held',
      help: 'Requests the backend holds now until something is published (LL-HLS blocking playlist reloads, hinted parts); not in onair_proxy_backend_in_flight',
      labelNames: ['pool', 'backend'] as const,
      registers,
      collect() {
        this.reset();
        for (const pool of pools()) for (const b of pool.backends()) this.set({ pool: pool.name, backend: b.url }, b.held);
      },
    });
    new Counter({
      name: 'onair_proxy_backend_holds_moved_total',
      help: 'Held requests moved to another backend because this one turned unhealthy',
      labelNames: ['pool', 'backend'] as const,
      registers,
      collect() {
        this.reset();
        for (const pool of pools()) for (const b of pool.backends()) this.inc({ pool: pool.name, backend: b.url }, b.holdsMoved);
      },
    });
    new Counter({
      name: 'onair_proxy_backend_requests_total',
      help: 'Requests sent to the backend (attempts, retries included)',
      labelNames: ['pool', 'backend'] as const,
      registers,
      collect() {
        this.reset();
        for (const pool of pools()) for (const b of pool.backends()) this.inc({ pool: pool.name, backend: b.url }, b.requests);
      },
    });
    new Counter({
      name: 'onair_proxy_backend_errors_total',
      help: 'Failed attempts to the backend, by error type (client aborts are not counted)',
      labelNames: ['pool', 'backend', 'type'] as const,
      registers,
      collect() {
        this.reset();
        for (const pool of pools())
          for (const b of pool.backends()) for (const type of UPSTREAM_ERROR_KINDS) this.inc({ pool: pool.name, backend: b.url, type }, b.errors[type]);
      },
    });
    new Counter({
      name: 'onair_proxy_backend_retries_total',
      help: 'Requests retried on another backend after failing on this one',
      labelNames: ['pool', 'backend'] as const,
      registers,
      collect() {
        this.reset();
        for (const pool of pools()) for (const b of pool.backends()) this.inc({ pool: pool.name, backend: b.url }, b.retries);
      },
    });
    new Counter({
      name: 'onair_proxy_backend_health_checks_total',
      help: 'Active health checks of the backend, by result',
      labelNames: ['pool', 'backend', 'result'] as const,
      registers,
      collect() {
        this.reset();
        for (const pool of pools())
          for (const b of pool.backends()) {
            this.inc({ pool: pool.name, backend: b.url, result: 'pass' }, b.checksPassed);
            this.inc({ pool: pool.name, backend: b.url, result: 'fail' }, b.checksFailed);
          }
      },
    });
    this.durations = new Histogram({
      name: 'onair_proxy_request_duration_seconds',
      help: 'Time from request to the end of the response, for requests the proxy answers (ops endpoints excluded)',
      labelNames: ['kind', 'code'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.errorResponses = new Counter({
      name: 'onair_proxy_error_responses_total',
      help: 'Error responses generated by the proxy itself: 502 (upstream failed) and 503 (no backend available)',
      labelNames: ['status', 'reason'] as const,
      registers,
    });
    this.errorResponses.inc({ status: '502', reason: 'upstream_failed' }, 0);
    this.errorResponses.inc({ status: '503', reason: 'no_backend' }, 0);
    const refusals = new Counter({
      name: 'onair_proxy_refusals_total',
      help: 'Requests (and, for "overloaded", connections) the proxy turned away, by reason (proxy/README.md)',
      labelNames: ['reason'] as const,
      registers,
    });
    // Children made once (every reason shows, at 0 until it happens); counting is then one call.
    for (const reason of REFUSAL_REASONS) {
      const child = refusals.labels({ reason });
      child.inc(0);
      this.refusals.set(reason, child);
    }
    new Gauge({
      name: 'onair_proxy_connections',
      help: 'Client connections open now',
      registers,
      collect() {
        this.set(connections.openConnections());
      },
    });
    new Gauge({
      name: 'onair_proxy_tracked_clients',
      help: 'Client addresses the per-address limits hold state for',
      registers,
      collect() {
        this.set(connections.trackedClients());
      },
    });
  }

  refused(reason: Refusal | string): void {
    this.refusals.get(reason)?.inc();
  }

  observeRequest(kind: RequestKind, status: number, seconds: number): void {
    const code = STATUS_CLASSES[Math.floor(status / 100) - 1] ?? 'other';
    const key = `${kind}|${code}`;
    let child = this.durationChildren.get(key);
    if (child === undefined) {
      child = this.durations.labels({ kind, code });
      this.durationChildren.set(key, child);
    }
    child.observe(seconds);
  }

  /** The segment cache's counters and size, read when scraped. */
  observeSegmentCache(stats: () => SegmentCacheStats): void {
    const registers = [this.registry];
    fillOutcomeCounter(this.registry, 'onair_proxy_segment_cache_requests_total', 'Segment requests the cache took, by outcome: hit (in memory), shared (waited for a fill under way), fill (fetched from a backend)', stats);
    new Counter({
      name: 'onair_proxy_segment_cache_uncacheable_total',
      help: 'Fills that brought nothing to hold (backend error, not 200, not immutable, too large): those requests were forwarded',
      registers,
      collect() {
        this.reset();
        this.inc(stats().uncacheable);
      },
    });
    new Counter({
      name: 'onair_proxy_segment_cache_evictions_total',
      help: 'Segments dropped: size (to stay within SEGMENT_CACHE_MB) or idle (nobody asked for them for 2 minutes)',
      labelNames: ['reason'] as const,
      registers,
      collect() {
        const s = stats();
        this.reset();
        this.inc({ reason: 'size' }, s.evictions);
        this.inc({ reason: 'idle' }, s.idleEvictions);
      },
    });
    new Gauge({
      name: 'onair_proxy_segment_cache_bytes',
      help: 'Bytes of segments held in memory',
      registers,
      collect() {
        this.set(stats().bytes);
      },
    });
    new Gauge({
      name: 'onair_proxy_segment_cache_segments',
      help: 'Segments held in memory',
      registers,
      collect() {
        this.set(stats().entries);
      },
    });
  }

  /** The playlist cache's counters, read when scraped. */
  observePlaylistCache(stats: () => PlaylistCacheStats): void {
    const registers = [this.registry];
    new Counter({
      name: 'onair_proxy_playlist_cache_requests_total',
      help: 'Playlist requests answered at the proxy, by outcome (hit: held; shared: waited for a fill under way; fill: fetched from a backend) and directives (yes: LL-HLS _HLS_msn/_HLS_part/_HLS_skip, no: plain reload)',
      labelNames: ['outcome', 'directives'] as const,
      registers,
      collect() {
        const s = stats();
        this.reset();
        for (const directives of ['yes', 'no'] as const) {
          const o = s.byDirectives[directives];
          this.inc({ outcome: 'hit', directives }, o.hits);
          this.inc({ outcome: 'shared', directives }, o.sharedFills);
          this.inc({ outcome: 'fill', directives }, o.fills);
        }
      },
    });
    new Counter({
      name: 'onair_proxy_playlist_directives_malformed_total',
      help: 'Playlist requests with malformed LL-HLS directives: not cached, forwarded as sent',
      registers,
      collect() {
        this.reset();
        this.inc(stats().malformed);
      },
    });
    new Counter({
      name: 'onair_proxy_playlist_cache_evictions_total',
      help: 'Playlist answers dropped before they expired, to stay within the entry limit (least recently used first)',
      registers,
      collect() {
        this.reset();
        this.inc(stats().evictions);
      },
    });
    new Gauge({
      name: 'onair_proxy_playlist_cache_playlists',
      help: 'Playlist answers held now (one per path and directives)',
      registers,
      collect() {
        this.set(stats().entries);
      },
    });
  }

  errorResponse(status: 502 | 503): void {
    this.errorResponses.inc({ status: String(status), reason: status === 502 ? 'upstream_failed' : 'no_backend' });
  }
}

/** Requests a media cache took, by outcome (hit / shared / fill), read from its stats when scraped. */
function fillOutcomeCounter(registry: Registry, name: string, help: string, stats: () => { hits: number; sharedFills: number; fills: number }): void {
  new Counter({
    name,
    help,
    labelNames: ['outcome'] as const,
    registers: [registry],
    collect() {
      const s = stats();
      this.reset();
      this.inc({ outcome: 'hit' }, s.hits);
      this.inc({ outcome: 'shared' }, s.sharedFills);
      this.inc({ outcome: 'fill' }, s.fills);
    },
  });
}
