import os from 'node:os';
import { z } from 'zod';
import { DEFAULT_DATA_DIR, DEFAULT_MEDIA_DIR, env, parseEnv } from '../../common/src/config.ts';

export const monitoringConfigSchema = z.object({
  MONITORING_HOST: env.host('0.0.0.0'),
  MONITORING_PORT: env.port(9000),
  MEDIA_DIR: env.dir(DEFAULT_MEDIA_DIR),
  DATA_DIR: env.dir(DEFAULT_DATA_DIR),
  /** Where records are stored: the embedded database, or Elasticsearch (docker-compose). */
  STORE: z.enum(['duckdb', 'elasticsearch']).default('duckdb'),
  ELASTICSEARCH_URL: env.optionalString(),
  ELASTICSEARCH_USERNAME: env.optionalString(),
  ELASTICSEARCH_PASSWORD: env.optionalString(),
  ELASTICSEARCH_API_KEY: env.optionalString(),
  /** on: monitoring is the Fluent forward receiver (local mode); off: fluentd is (containers). */
  FLUENT_RECEIVER: z.enum(['on', 'off']).default('on'),
  FLUENT_RECEIVER_HOST: env.host('127.0.0.1'),
  FLUENT_RECEIVER_PORT: env.port(24224),
  /** DESIGN.md's W: a viewer counts while it fetched within this window. */
  VIEWER_WINDOW_MS: z.coerce.number().int().min(1000).default(30_000),
  /** How often the dashboard and the live snapshot are refreshed (≤ 2 s). */
  REFRESH_MS: z.coerce.number().int().min(200).max(2000).default(1000),
  RETENTION_DAYS: z.coerce.number().positive().default(30),
  /** Embedded store: DuckDB's memory_limit (its buffer pool grows up to this; DuckDB's own default is 80 % of RAM). */
  DUCKDB_MEMORY_LIMIT: z.string().regex(/^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i, 'a size such as 512MB or 1GB').default('512MB'),
  /** The proxy's base URL, for its backend table (admin API, same ops token). */
  PROXY_URL: env.optionalString(),
  /** Ingest's control HTTP, for each live stream's quality ladder and ffmpeg CPU (GET /streams). */
  INGEST_URL: z.string().url().default('http://127.0.0.1:8001'),
  OPS_TOKEN: z.string().min(12, 'the ops token must be at least 12 characters'),
  INSTANCE: z.string().min(1).default(`monitoring-${os.hostname()}`),
  LOG_LEVEL: env.logLevel(),
  SHUTDOWN_TIMEOUT_MS: env.positiveInt(10_000),
});

export type MonitoringConfig = z.infer<typeof monitoringConfigSchema>;

export function loadMonitoringConfig(source: NodeJS.ProcessEnv = process.env): MonitoringConfig {
  const config = parseEnv('monitoring', monitoringConfigSchema, source);
  if (config.STORE === 'elasticsearch' && !config.ELASTICSEARCH_URL) {
    parseEnv('monitoring', monitoringConfigSchema.refine(() => false, { message: 'required when STORE=elasticsearch', path: ['ELASTICSEARCH_URL'] }), source);
  }
  return config;
}
