import os from 'node:os';
import { z } from 'zod';
import { parseLadderSpec } from '../../common/src/ladder-spec.ts';
import { DEFAULT_DATA_DIR, DEFAULT_MEDIA_DIR, emptyAsUnset, env, parseEnv } from '../../common/src/config.ts';

/** UPLOAD_LADDER=on. */
const DEFAULT_UPLOAD_LADDER = '720p,480p,360p';

export const ingestConfigSchema = z.object({
  RTMP_HOST: env.host('0.0.0.0'),
  RTMP_PORT: env.port(1935),
  CONTROL_HOST: env.host('0.0.0.0'),
  CONTROL_PORT: env.port(8001),
  MEDIA_DIR: env.dir(DEFAULT_MEDIA_DIR),
  DATA_DIR: env.dir(DEFAULT_DATA_DIR),
  FFMPEG_PATH: z.string().min(1).default('ffmpeg'),
  /** ffmpeg's -hls_time: segments are cut at the first keyframe after this, so = keyframe interval. */
  HLS_SEGMENT_SECONDS: env.positiveNumber(1),
  HLS_WINDOW_SEGMENTS: z.coerce.number().int().min(3).max(100).default(6),
  HLS_DELETE_GRACE_SEGMENTS: z.coerce.number().int().min(1).max(100).default(2),
  /**
   * 0 = low latency: 2 s (or HLS_SEGMENT_SECONDS if longer), fixed before the first segment ends
   * because the first part is listed at once; classic: chosen from the broadcast's first segment.
   */
  HLS_TARGET_DURATION: env.nonNegativeInt(0),
  /** Low-latency HLS (README "Low-latency HLS"): parts, blocking playlist reload. off = classic HLS, segments only. */
  HLS_LOW_LATENCY: env.bool(true),
  /** Nominal part duration; parts end on frame boundaries (10 frames at 30 fps, 8 at 25). */
  HLS_PART_SECONDS: z.coerce.number().min(0.1).max(2).default(1 / 3),
  /** PART-HOLD-BACK in part targets: how far behind the newest part players stay (spec: at least 2, should be 3). */
  HLS_PART_HOLD_BACK_PARTS: z.coerce.number().min(2).max(10).default(3),
  PUBLISH_IDLE_TIMEOUT_MS: z.coerce.number().int().min(1000).default(5000),
  /** A connection must have completed the handshake and be publishing this long after connecting. */
  RTMP_HANDSHAKE_TIMEOUT_MS: z.coerce.number().int().min(1000).default(10_000),
  /** Networks publishers may connect from (comma list of IPs/CIDRs); empty = anywhere. */
  PUBLISH_ALLOW_CIDRS: env.addressList(),
  RECONNECT_GRACE_MS: env.nonNegativeInt(15_000),
  RTMP_MAX_CONNECTIONS: env.positiveInt(64),
  MUXER_MAX_BACKOFF_MS: env.positiveInt(5000),
  LIVE_STATE_HEARTBEAT_MS: z.coerce.number().int().min(200).default(2000),
  /** Record every broadcast under MEDIA_DIR/archive/<stream>/<session>/ (README "Recordings"). */
  ARCHIVE: env.bool(true),
  /** Recordings that ended longer ago than this are deleted; 0 = kept forever. */
  ARCHIVE_MAX_AGE_HOURS: z.coerce.number().min(0).default(0),
  /** Oldest ended recordings are deleted while the archive is larger than this; 0 = no cap. */
  ARCHIVE_MAX_GB: z.coerce.number().min(0).default(0),
  /** How often retention runs (and once at start). */
  ARCHIVE_RETENTION_INTERVAL_MS: z.coerce.number().int().min(1000).default(600_000),
  /**
   * on: retention asks monitoring (MONITORING_URL, OPS_TOKEN) which recordings were watched within
   * ARCHIVE_WATCH_WINDOW_SECONDS, keeps those, and deletes no recording in a round monitoring cannot
   * answer. off: deletes by age and size alone (for installations without monitoring).
   */
  ARCHIVE_WATCH_CHECK: z.enum(['on', 'off']).default('on'),
  /** A recording whose files were requested this recently is being watched (generous: a paused player asks nothing). */
  ARCHIVE_WATCH_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86_400).default(1800),
  /** monitoring's base URL (its /api, with OPS_TOKEN): who watches recordings. */
  MONITORING_URL: z.preprocess(emptyAsUnset, z.string().url('MONITORING_URL must be a URL such as http://127.0.0.1:9000').default('http://127.0.0.1:9000')),
  /** The ops credential: authenticates uploads and ingest's calls to the monitoring API. */
  OPS_TOKEN: z.preprocess(emptyAsUnset, z.string().min(12, 'the ops token must be at least 12 characters (the same rule as monitoring)').optional()),
  // --- on-demand uploads (README "On-demand uploads"; they need OPS_TOKEN) ---
  FFPROBE_PATH: z.string().min(1).default('ffprobe'),
  /** Largest accepted video file, bytes (4 GiB). */
  UPLOAD_MAX_BYTES: env.positiveInt(4 * 1024 ** 3),
  /** An upload whose body sends nothing for this long is abandoned (its partial file deleted). */
  UPLOAD_IDLE_TIMEOUT_MS: z.coerce.number().int().min(1000).default(60_000),
  /** Segment duration of transcoded uploads (keyframes every this many seconds). */
  UPLOAD_SEGMENT_SECONDS: z.coerce.number().int().min(1).max(10).default(4),
  /** Transcodes running at once. */
  UPLOAD_CONCURRENCY: z.coerce.number().int().min(1).max(8).default(1),
  /** Niceness of upload transcodes (0–19): live broadcasts keep the CPU they need. */
  UPLOAD_NICE: z.coerce.number().int().min(0).max(19).default(10),
  /** Transcode uploads to the quality ladder: `off`, `on` (= 720p,480p,360p) or rungs like `1080p,720p,360p`. */
  UPLOAD_LADDER: z
    .string()
    .default('off')
    .transform((v) => (['on', 'true', '1', 'yes'].includes(v.trim().toLowerCase()) ? DEFAULT_UPLOAD_LADDER : ['false', '0', 'no'].includes(v.trim().toLowerCase()) ? 'off' : v))
    .superRefine((v, ctx) => {
      try {
        parseLadderSpec(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }),
  /** x264 preset of live quality-ladder renditions (README "Quality ladder"). */
  LADDER_PRESET: z.enum(['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow']).default('veryfast'),
  /** Seconds ffmpeg's speed must stay below 1.0x (or back above) before ingest warns (or says it recovered). */
  FFMPEG_SLOW_SECONDS: z.coerce.number().int().min(1).max(600).default(5),
  INSTANCE: z.string().min(1).default(`ingest-${os.hostname()}`),
  LOG_LEVEL: env.logLevel(),
  SHUTDOWN_TIMEOUT_MS: env.positiveInt(15_000),
});

export type IngestConfig = z.infer<typeof ingestConfigSchema>;

export function loadIngestConfig(source: NodeJS.ProcessEnv = process.env): IngestConfig {
  return parseEnv('ingest', ingestConfigSchema, source);
}
