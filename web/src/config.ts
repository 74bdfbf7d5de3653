import os from 'node:os';
import { z } from 'zod';
import { createTrustList } from '../../common/src/access-record.ts';
import { DEFAULT_MEDIA_DIR, emptyAsUnset, env, parseEnv } from '../../common/src/config.ts';
import { recordShippingConfig, recordShippingEnv, type RecordShippingConfig } from '../../common/src/record-shipping/config.ts';

/** Comma list of IPs/CIDRs; checked here so a typo fails at start-up, not at the first request. */
const trustedProxies = z
  .string()
  .default('127.0.0.1,::1')
  .transform((value) => value.split(',').map((entry) => entry.trim()).filter(Boolean))
  .superRefine((entries, ctx) => {
    try {
      createTrustList(entries);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });

/**
 * Ingest's playlist feed (docs/low-latency-hls.md), e.g. http://ingest:8001/playlists/feed: new
 * playlist versions pushed the moment they exist, for replicas whose file system gives no change
 * events (NFS). Unset or empty: off (file-system events and re-reads only).
 */
const ingestFeedUrl = z.preprocess(
  emptyAsUnset,
  z
    .string()
    .refine((value) => {
      try {
        const url = new URL(value);
        return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
      } catch {
        return false;
      }
    }, 'must be an http:// or https:// URL like http://ingest:8001/playlists/feed')
    .optional(),
);

export const webConfigSchema = z.object({
  WEB_PORT: env.port(3001),
  WEB_HOST: env.host('0.0.0.0'),
  MEDIA_DIR: env.dir(DEFAULT_MEDIA_DIR),
  INSTANCE: z.string().optional(),
  TRUSTED_PROXIES: trustedProxies,
  MEDIA_CACHE_MB: env.nonNegativeInt(256),
  LOG_LEVEL: env.logLevel(),
  SHUTDOWN_TIMEOUT_MS: env.positiveInt(10_000),
  INGEST_FEED_URL: ingestFeedUrl,
  ...recordShippingEnv,
});

export interface WebConfig {
  port: number;
  host: string;
  mediaDir: string;
  /** Which replica this is, in access records and metrics. */
  instance: string;
  trustedProxies: string[];
  mediaCacheBytes: number;
  logLevel: z.infer<typeof webConfigSchema>['LOG_LEVEL'];
  shutdownTimeoutMs: number;
  /** Ingest's playlist feed; null when INGEST_FEED_URL is unset. */
  ingestFeedUrl: string | null;
  /** Access-record shipping over the Fluent forward protocol; null when FLUENT_HOST is unset. */
  records: RecordShippingConfig | null;
}

export function loadWebConfig(environment: NodeJS.ProcessEnv = process.env): WebConfig {
  const e = parseEnv('web', webConfigSchema, environment);
  const instance = e.INSTANCE || `web-${os.hostname()}-${e.WEB_PORT}`;
  return {
    port: e.WEB_PORT,
    host: e.WEB_HOST,
    mediaDir: e.MEDIA_DIR,
    instance,
    trustedProxies: e.TRUSTED_PROXIES,
    mediaCacheBytes: e.MEDIA_CACHE_MB * 1024 * 1024,
    logLevel: e.LOG_LEVEL,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    ingestFeedUrl: e.INGEST_FEED_URL ?? null,
    records: recordShippingConfig(e, instance),
  };
}
