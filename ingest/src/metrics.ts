import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type IngestMetrics = ReturnType<typeof createIngestMetrics>;

/** Values read when /metrics is scraped (late-bound: the objects exist after the metrics). */
export interface IngestMetricSources {
  rtmpConnections: () => number;
  mediaFreeBytes: () => number | null;
  feedReaders?: () => number;
}

export function createIngestMetrics(registry: Registry, sources?: IngestMetricSources) {
  return {
    publishesAccepted: new Counter({ name: 'onair_ingest_publishes_accepted_total', help: 'Publish attempts accepted', registers: [registry] }),
    publishesRefused: new Counter({ name: 'onair_ingest_publishes_refused_total', help: 'Publish attempts refused, by reason', labelNames: ['reason'], registers: [registry] }),
    liveStreams: new Gauge({ name: 'onair_ingest_live_streams', help: 'Streams by state', labelNames: ['state'], registers: [registry] }),
    muxerRestarts: new Counter({ name: 'onair_ingest_muxer_restarts_total', help: 'ffmpeg runs restarted after dying while the publisher was live', registers: [registry] }),
    muxerStuck: new Counter({ name: 'onair_ingest_muxer_stuck_total', help: 'ffmpeg runs killed because they stopped reading input', registers: [registry] }),
    segmentsPublished: new Counter({ name: 'onair_ingest_segments_published_total', help: 'Segments added to public playlists', registers: [registry] }),
    segmentsOverTarget: new Counter({ name: 'onair_ingest_segments_over_target_total', help: 'Segments longer than the playlist target duration (unsteady keyframe interval)', registers: [registry] }),
    partsOverTarget: new Counter({ name: 'onair_ingest_parts_over_target_total', help: 'Parts longer than the playlist part target (an irregular frame interval)', registers: [registry] }),
    mediaLost: new Counter({ name: 'onair_ingest_media_lost_total', help: 'Parts or segments lost before they could be listed (a write failed, or a rendition lacked them): the playlist resumes after a discontinuity', labelNames: ['stream'], registers: [registry] }),
    feedReaders: new Gauge({
      name: 'onair_ingest_playlist_feed_readers',
      help: 'Web replicas reading the playlist feed (GET /playlists/feed)',
      registers: [registry],
      collect() {
        if (sources?.feedReaders) this.set(sources.feedReaders());
      },
    }),
    segmentDuration: new Histogram({ name: 'onair_ingest_segment_duration_seconds', help: 'Published segment durations', buckets: [0.5, 1, 1.5, 2, 3, 4, 6, 8, 10], registers: [registry] }),
    publisherDisconnects: new Counter({ name: 'onair_ingest_publisher_disconnects_total', help: 'Publishers that left, by how', labelNames: ['how'], registers: [registry] }),
    inputBytes: new Counter({ name: 'onair_ingest_input_bytes_total', help: 'FLV bytes fed to muxers', registers: [registry] }),
    rtmpConnectionsDropped: new Counter({ name: 'onair_ingest_rtmp_connections_dropped_total', help: 'RTMP connections closed by ingest for misbehaving or timing out, by reason', labelNames: ['reason'], registers: [registry] }),
    rtmpConnections: new Gauge({
      name: 'onair_ingest_rtmp_connections',
      help: 'Open RTMP connections (publishers and connections still in the handshake)',
      registers: [registry],
      collect() {
        if (sources) this.set(sources.rtmpConnections());
      },
    }),
    mediaWriteErrors: new Counter({ name: 'onair_ingest_media_write_errors_total', help: 'Media files that could not be written (file: part, segment, init, playlist, live-state)', labelNames: ['stream', 'file'], registers: [registry] }),
    archiveSegments: new Counter({ name: 'onair_ingest_archive_segments_total', help: 'Segments added to broadcast recordings', registers: [registry] }),
    archiveErrors: new Counter({ name: 'onair_ingest_archive_errors_total', help: 'Recording writes that failed (the live stream is not affected), by operation', labelNames: ['op'], registers: [registry] }),
    archiveSessionsDeleted: new Counter({ name: 'onair_ingest_archive_sessions_deleted_total', help: 'Recordings deleted by retention, by reason', labelNames: ['reason'], registers: [registry] }),
    archiveSessionsKeptWatched: new Counter({ name: 'onair_ingest_archive_sessions_kept_watched_total', help: 'Recordings due for deletion (reason: age or size) kept because they were watched within ARCHIVE_WATCH_WINDOW_SECONDS, per round', labelNames: ['reason'], registers: [registry] }),
    archiveRetentionDeferred: new Counter({ name: 'onair_ingest_archive_retention_deferred_total', help: 'Retention rounds that deleted nothing because monitoring could not say who watches recordings, by reason', labelNames: ['reason'], registers: [registry] }),
    // --- ffmpeg cost per broadcast (passthrough and quality ladder; README "Quality ladder") ---
    ffmpegCpuSeconds: new Counter({ name: 'onair_ingest_ffmpeg_cpu_seconds_total', help: 'CPU seconds (user + system) used by the ffmpeg of each stream', labelNames: ['stream'], registers: [registry] }),
    ffmpegCpuCores: new Gauge({ name: 'onair_ingest_ffmpeg_cpu_cores', help: 'CPU cores the ffmpeg of each live stream uses now (CPU seconds per second)', labelNames: ['stream'], registers: [registry] }),
    ffmpegSpeed: new Gauge({ name: 'onair_ingest_ffmpeg_speed', help: 'Media seconds ffmpeg outputs per wall second over the last 5 s (below 1: falling behind the live input)', labelNames: ['stream'], registers: [registry] }),
    ffmpegSlow: new Gauge({ name: 'onair_ingest_ffmpeg_slow', help: '1 while the ffmpeg of a stream has been slower than real time for several seconds', labelNames: ['stream'], registers: [registry] }),
    ffmpegSlowEvents: new Counter({ name: 'onair_ingest_ffmpeg_slow_total', help: 'Times the ffmpeg of a stream fell below real time (sustained)', labelNames: ['stream'], registers: [registry] }),
    renditions: new Gauge({ name: 'onair_ingest_renditions', help: 'Renditions of each live stream (1 = passthrough only)', labelNames: ['stream'], registers: [registry] }),
    ladderSegmentsDropped: new Counter({ name: 'onair_ingest_ladder_segments_dropped_total', help: 'Segments dropped from every rendition because one rendition lacked them', labelNames: ['stream'], registers: [registry] }),
    mediaDiskFull: new Gauge({ name: 'onair_ingest_media_disk_full', help: '1 while writes to MEDIA_DIR fail for lack of space', registers: [registry] }),
    mediaFreeBytes: new Gauge({
      name: 'onair_ingest_media_free_bytes',
      help: 'Free space on the MEDIA_DIR file system',
      registers: [registry],
      collect() {
        const free = sources?.mediaFreeBytes() ?? null;
        if (free !== null) this.set(free);
      },
    }),
  };
}
