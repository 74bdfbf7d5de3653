import os from 'node:os';
import { z } from 'zod';
import { emptyAsUnset, env, parseEnv } from '../../common/src/config.ts';
import { recordShippingConfig, recordShippingEnv, type RecordShippingConfig } from '../../common/src/record-shipping/config.ts';
import { normalizeBackendUrl, parseBackendList } from './backend-url.ts';

/** DESIGN.md: the three local web replicas, used when neither BACKENDS nor BACKENDS_FILE is set. */
export const DEFAULT_BACKENDS = ['http://127.0.0.1:3001', 'http://127.0.0.1:3002', 'http://127.0.0.1:3003'];

const backendList = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    if (raw === undefined) return undefined;
    try {
      return parseBackendList(raw);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `${(err as Error).message}; expected comma-separated base URLs like http://127.0.0.1:3001,http://127.0.0.1:3002` });
      return z.NEVER;
    }
  });

const backendUrl = z.preprocess(
  emptyAsUnset,
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined) return undefined;
      try {
        return normalizeBackendUrl(raw);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    }),
);

export const proxyConfigSchema = z.object({
  PROXY_PORT: env.port(8080),
  PROXY_HOST: env.host('0.0.0.0'),
  /** Static backends. Unset → DESIGN.md's local replicas (unless BACKENDS_FILE is set); empty → none. */
  BACKENDS: backendList,
  /** JSON (array of URLs or {"backends": [...]}) or one URL per line; watched for changes. */
  BACKENDS_FILE: env.optionalString(),
  BACKENDS_FILE_POLL_MS: env.positiveInt(2000),
  HEALTH_INTERVAL_MS: env.positiveInt(1000),
  HEALTH_TIMEOUT_MS: env.positiveInt(800),
  UNHEALTHY_THRESHOLD: env.positiveInt(2),
  HEALTHY_THRESHOLD: env.positiveInt(1),
  /** Idle time after which an upstream request is abandoned (0 = never). */
  UPSTREAM_TIMEOUT_MS: env.nonNegativeInt(30_000),
  /** Bearer token of the admin API; the API is disabled when unset. */
  OPS_TOKEN: env.optionalString(),
  INSTANCE: z.preprocess(emptyAsUnset, z.string().max(200).optional()),
  /** When set, /monitor* and /api/* go to this upstream instead of the web pool. */
  MONITORING_URL: backendUrl,
  LOG_LEVEL: env.logLevel(),
  SHUTDOWN_TIMEOUT_MS: env.positiveInt(10_000),
  MAX_SOCKETS_PER_BACKEND: env.positiveInt(256),
  ...recordShippingEnv,
});

export interface ProxyConfig {
  port: number;
  host: string;
  backends: string[];
  backendsFile: string | undefined;
  backendsFilePollMs: number;
  healthIntervalMs: number;
  healthTimeoutMs: number;
  unhealthyThreshold: number;
  healthyThreshold: number;
  upstreamTimeoutMs: number;
  opsToken: string | undefined;
  instance: string;
  monitoringUrl: string | undefined;
  logLevel: z.infer<typeof proxyConfigSchema>['LOG_LEVEL'];
  shutdownTimeoutMs: number;
  maxSocketsPerBackend: number;
  /** Access-record shipping over the Fluent forward protocol; null when FLUENT_HOST is unset. */
  records: RecordShippingConfig | null;
}

/** Reads the proxy's configuration; throws ConfigError naming every bad variable. */
export function loadProxyConfig(environment: NodeJS.ProcessEnv = process.env): ProxyConfig {
  const e = parseEnv('proxy', proxyConfigSchema, environment);
  const instance = e.INSTANCE ?? `proxy-${os.hostname()}-${e.PROXY_PORT}`;
  return {
    port: e.PROXY_PORT,
    host: e.PROXY_HOST,
    backends: e.BACKENDS ?? (e.BACKENDS_FILE ? [] : [...DEFAULT_BACKENDS]),
    backendsFile: e.BACKENDS_FILE,
    backendsFilePollMs: e.BACKENDS_FILE_POLL_MS,
    healthIntervalMs: e.HEALTH_INTERVAL_MS,
    healthTimeoutMs: e.HEALTH_TIMEOUT_MS,
    unhealthyThreshold: e.UNHEALTHY_THRESHOLD,
    healthyThreshold: e.HEALTHY_THRESHOLD,
    upstreamTimeoutMs: e.UPSTREAM_TIMEOUT_MS,
    opsToken: e.OPS_TOKEN,
    instance,
    monitoringUrl: e.MONITORING_URL,
    logLevel: e.LOG_LEVEL,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    maxSocketsPerBackend: e.MAX_SOCKETS_PER_BACKEND,
    records: recordShippingConfig(e, instance),
  };
}
