import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { RequestKind } from '../../common/src/access-record.ts';

/** `ops` is /healthz, /readyz, /metrics: counted here, never access-logged. */
export type MetricKind = RequestKind | 'ops';

export interface WebMetrics {
  requests: Counter<'kind' | 'status'>;
  bytesSent: Counter<'kind'>;
  duration: Histogram<'kind'>;
  segmentCacheHits: Counter;
  segmentCacheMisses: Counter;
  playlistCacheHits: Counter;
  playlistCacheMisses: Counter;
  /** Requests rejected by the HTTP parser (malformed request line, bad method, oversized headers). */
  clientErrors: Counter;
}

export function createWebMetrics(
  registry: Registry,
  gauges: { segmentCacheBytes: () => number; segmentCacheEntries: () => number; segmentCacheEvictions: () => number; liveStreams: () => number },
): WebMetrics {
  const registers = [registry];
  const sampled = (name: string, help: string, read: () => number): void => {
    new Gauge({ name, help, registers, collect() { this.set(read()); } });
  };
  sampled('web_segment_cache_bytes', 'Bytes of segment bodies held in memory', gauges.segmentCacheBytes);
  sampled('web_segment_cache_entries', 'Segments held in memory', gauges.segmentCacheEntries);
  new Counter({
    name: 'web_segment_cache_evictions_total',
    help: 'Segments evicted from memory to stay within MEDIA_CACHE_MB',
    registers,
    collect() {
      // The cache keeps the count; mirror it at scrape time instead of hooking every eviction.
      this.reset();
      this.inc(gauges.segmentCacheEvictions());
    },
  });
  sampled('web_live_streams', 'Streams live now according to ingest', gauges.liveStreams);
  return {
    requests: new Counter({ name: 'web_http_requests_total', help: 'HTTP requests answered, by kind and status', labelNames: ['kind', 'status'], registers }),
    bytesSent: new Counter({ name: 'web_http_response_bytes_total', help: 'Response body bytes sent, by kind', labelNames: ['kind'], registers }),
    duration: new Histogram({
      name: 'web_http_request_duration_seconds',
      help: 'Time to serve a request, by kind',
      labelNames: ['kind'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    }),
    segmentCacheHits: new Counter({ name: 'web_segment_cache_hits_total', help: 'Segment requests answered from memory', registers }),
    segmentCacheMisses: new Counter({ name: 'web_segment_cache_misses_total', help: 'Segment requests that read the file', registers }),
    playlistCacheHits: new Counter({ name: 'web_playlist_cache_hits_total', help: 'Playlist requests answered from the ~100 ms micro-cache', registers }),
    playlistCacheMisses: new Counter({ name: 'web_playlist_cache_misses_total', help: 'Playlist requests that read (or joined a read of) the file', registers }),
    clientErrors: new Counter({ name: 'web_http_client_errors_total', help: 'Connections rejected by the HTTP parser before a request existed', registers }),
  };
}
