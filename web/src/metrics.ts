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
    playlistCacheHits: new Counter({ name: 'web_playlist_cache_hits_total', help: "Playlist requests answered from memory (a live playlist's held version, or the ~100 ms micro-cache of recordings)", registers }),
    playlistCacheMisses: new Counter({ name: 'web_playlist_cache_misses_total', help: 'Playlist requests that waited for a read of the file', registers }),
    clientErrors: new Counter({ name: 'web_http_client_errors_total', help: 'Connections rejected by the HTTP parser before a request existed', registers }),
  };
}

/** Why a held request (blocking playlist reload, hinted part) was answered. */
export type HeldOutcome = 'ready' | 'timeout' | 'gone' | 'abandoned';
export type HeldKind = 'playlist' | 'part';
export type VersionSource = 'watch' | 'feed' | 'read';
/** A counter, or one labelled child of one. */
export interface Count {
  inc(value?: number): void;
}

/** Low-latency HLS: live playlist versions, held requests and ingest's playlist feed. */
export interface LowLatencyMetrics {
  /** Versions that replaced the held one, by how web learnt of them (watch = read after a file-system event). */
  versions: Record<VersionSource, Count>;
  /** Held requests answered, by kind and outcome; children bound once so a wake of 1 000 is one inc(). */
  finished: Record<HeldKind, Record<HeldOutcome, Count>>;
  hintedPartHolds: Counter;
  /** Present only when INGEST_FEED_URL is set. */
  feed: FeedMetrics | null;
}

export interface FeedMetrics {
  connected: Gauge;
  versions: Counter;
  /** Lines whose `file` is not a live media playlist path or whose text is not a playlist. */
  refused: Counter;
  disconnects: Counter;
}

export function createLowLatencyMetrics(
  registry: Registry,
  read: { livePlaylists: () => number; held: (kind: HeldKind) => number },
  feedConfigured: boolean,
): LowLatencyMetrics {
  const registers = [registry];
  new Gauge({ name: 'web_live_playlists', help: 'Live playlist files whose newest version web holds in memory', registers, collect() { this.set(read.livePlaylists()); } });
  new Gauge({
    name: 'web_held_requests',
    help: 'Requests held now: blocking playlist reloads (playlist) and hinted parts not yet written (part)',
    labelNames: ['kind'],
    registers,
    collect() {
      this.set({ kind: 'playlist' }, read.held('playlist'));
      this.set({ kind: 'part' }, read.held('part'));
    },
  });
  const versions = new Counter({ name: 'web_playlist_versions_total', help: 'New live playlist versions taken in, by source (watch: file-system event, feed: ingest push, read: re-read on demand)', labelNames: ['source'], registers });
  const finished = new Counter({
    name: 'web_held_requests_finished_total',
    help: 'Held requests answered: ready (what they waited for arrived), timeout (3 x TARGETDURATION), gone (client left), abandoned (the playlist moved on without the hinted part)',
    labelNames: ['kind', 'outcome'],
    registers,
  });
  const outcomes = (kind: HeldKind): Record<HeldOutcome, Count> => ({
    ready: finished.labels(kind, 'ready'),
    timeout: finished.labels(kind, 'timeout'),
    gone: finished.labels(kind, 'gone'),
    abandoned: finished.labels(kind, 'abandoned'),
  });
  return {
    versions: {
      watch: versions.labels('watch'),
      feed: versions.labels('feed'),
      read: versions.labels('read'),
    },
    finished: { playlist: outcomes('playlist'), part: outcomes('part') },
    hintedPartHolds: new Counter({ name: 'web_hinted_part_holds_total', help: 'Requests for the preload-hinted part held until it was written', registers }),
    feed: feedConfigured
      ? {
          connected: new Gauge({ name: 'web_playlist_feed_connected', help: "1 while ingest's playlist feed (INGEST_FEED_URL) is connected; 0: web falls back to the file system", registers }),
          versions: new Counter({ name: 'web_playlist_feed_versions_total', help: 'Playlist versions received from the feed', registers }),
          refused: new Counter({ name: 'web_playlist_feed_refused_total', help: 'Feed lines refused: file not a live media playlist path, or text not a playlist', registers }),
          disconnects: new Counter({ name: 'web_playlist_feed_disconnects_total', help: 'Feed connections lost (ended, failed or silent for 6 s)', registers }),
        }
      : null,
  };
}
