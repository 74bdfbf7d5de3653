import os from 'node:os';
import { z } from 'zod';
import { emptyAsUnset, env, parseEnv } from '../../common/src/config.ts';
import { MIN_PLAYBACK_SECRET_LENGTH } from '../../common/src/playback-token.ts';
import { recordShippingConfig, recordShippingEnv, type RecordShippingConfig } from '../../common/src/record-shipping/config.ts';
import { normalizeBackendUrl, parseBackendList } from './backend-url.ts';
import { checkTlsFiles, type TlsCredentials } from './tls.ts';

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
  OPS_TOKEN: z.preprocess(emptyAsUnset, z.string().min(12, 'the ops token must be at least 12 characters (the same rule as monitoring)').optional()),
  INSTANCE: z.preprocess(emptyAsUnset, z.string().max(200).optional()),
  /** When set, /monitor* and /api/* go to this upstream instead of the web pool. */
  MONITORING_URL: backendUrl,
  /** Ingest's control HTTP: /uploads and /uploads/* (on-demand uploads) go there. */
  INGEST_URL: z.preprocess((v) => emptyAsUnset(v) ?? 'http://127.0.0.1:8001', backendUrl),
  /** Largest video file an upload may carry (the request may be 1 MiB larger: multipart framing and title). */
  UPLOAD_MAX_BYTES: env.positiveInt(4 * 1024 ** 3),
  /** Time an upload request (POST /uploads) may take to arrive, instead of REQUEST_TIMEOUT_MS (0 = no limit). */
  UPLOAD_TIMEOUT_MS: env.nonNegativeInt(4 * 3600_000),
  LOG_LEVEL: env.logLevel(),
  SHUTDOWN_TIMEOUT_MS: env.positiveInt(10_000),
  MAX_SOCKETS_PER_BACKEND: env.positiveInt(256),
  /** Memory for media segments held at the proxy (proxy/README.md "Segment cache"); 0 = off. */
  SEGMENT_CACHE_MB: env.nonNegativeInt(256),
  /** A segment larger than this is forwarded, never held. */
  SEGMENT_CACHE_MAX_SEGMENT_MB: env.positiveInt(16),
  /** How long a playlist answer is held at the proxy (one upstream request per playlist per period); 0 = off. */
  PLAYLIST_CACHE_MS: z.coerce.number().int().min(0).max(500).default(100),

  // --- who may watch (README "Security"): unset/empty lists mean "everyone" / "nobody" ---
  /** Networks allowed to use the proxy (everything but /healthz, /readyz, /metrics); empty = everyone. */
  VIEWER_ALLOW_CIDRS: env.addressList(),
  /** TLS terminators / load balancers in front of the proxy whose X-Forwarded-For is believed; empty = none (the proxy is the edge). */
  FRONT_PROXIES: env.addressList(),
  /** When set, /live/<stream>/ needs a signed playback token (`onair tokens sign`). */
  PLAYBACK_TOKEN_SECRET: z.preprocess(
    emptyAsUnset,
    z.string().min(MIN_PLAYBACK_SECRET_LENGTH, `at least ${MIN_PLAYBACK_SECRET_LENGTH} characters (e.g. openssl rand -hex 32)`).optional(),
  ),

  // --- limits (0 = off); defaults sized for a company NAT, see proxy/README.md ---
  /** Client connections in total; beyond, new connections are closed at accept. */
  MAX_CONNECTIONS: env.nonNegativeInt(20_000),
  /**
   * Open connections per client address; requests on the ones beyond get 429. Sized for 500 LL-HLS
   * viewers behind one company NAT (proxy/README.md "Limits"): 2-3 connections each, measured.
   */
  MAX_CONNECTIONS_PER_IP: env.nonNegativeInt(2_000),
  /** Sustained requests per second per client address (token bucket refill rate): 500 viewers × ~7/s. */
  RATE_LIMIT_PER_IP: env.nonNegativeInt(5_000),
  /** Token bucket size: requests a client address may send at once (500 viewers tuning in together, ~13/s each). */
  RATE_LIMIT_BURST: env.positiveInt(10_000),
  /** Addresses the per-address limits (connections, rate) do not apply to. */
  LIMIT_EXEMPT_CIDRS: env.addressList(),
  /** Longest request target (path + query) accepted; longer → 414. */
  MAX_URL_BYTES: env.nonNegativeInt(4_096),
  /** Node's maxHeaderSize: request line + headers; larger → 431 (cannot be off). */
  MAX_HEADER_BYTES: z.coerce.number().int().min(1_024).max(1_048_576).default(16_384),
  /** Time to receive a request's headers (slowloris); → 408 and close. */
  HEADERS_TIMEOUT_MS: env.nonNegativeInt(10_000),
  /** Time to receive a whole request (headers + body). */
  REQUEST_TIMEOUT_MS: env.nonNegativeInt(30_000),
  /** Idle time after which a keep-alive connection is closed. */
  KEEP_ALIVE_TIMEOUT_MS: env.nonNegativeInt(5_000),

  // --- TLS: both or neither ---
  TLS_CERT_FILE: env.optionalString(),
  TLS_KEY_FILE: env.optionalString(),
  ...recordShippingEnv,
}).superRefine((e, ctx) => {
  for (const problem of checkTlsFiles(e.TLS_CERT_FILE, e.TLS_KEY_FILE).problems) {
    ctx.addIssue({ code: 'custom', path: [problem.variable], message: problem.message });
  }
  if (e.HEADERS_TIMEOUT_MS > 0 && e.REQUEST_TIMEOUT_MS > 0 && e.HEADERS_TIMEOUT_MS > e.REQUEST_TIMEOUT_MS) {
    ctx.addIssue({ code: 'custom', path: ['HEADERS_TIMEOUT_MS'], message: `must not exceed REQUEST_TIMEOUT_MS (${e.REQUEST_TIMEOUT_MS})` });
  }
  if (e.MAX_URL_BYTES > e.MAX_HEADER_BYTES) {
    ctx.addIssue({ code: 'custom', path: ['MAX_URL_BYTES'], message: `must not exceed MAX_HEADER_BYTES (${e.MAX_HEADER_BYTES}): the request line counts towards it` });
  }
});

/** Limits on what one client, and all of them, may take (0 = off). */
export interface ClientLimitsConfig {
  maxConnections: number;
  maxConnectionsPerIp: number;
  ratePerIp: number;
  rateBurst: number;
  exempt: string[];
  maxUrlBytes: number;
  maxHeaderBytes: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

/** The upload request's own limits (README "On-demand uploads"): viewer limits stay for everything else. */
export interface UploadLimits {
  /** The video file's limit; the request body may exceed it by the multipart allowance. */
  maxFileBytes: number;
  /** Whole upload request; 0 = none. */
  timeoutMs: number;
}

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
  /** Where /uploads* go (ingest's control port). */
  ingestUrl: string;
  uploads: UploadLimits;
  logLevel: z.infer<typeof proxyConfigSchema>['LOG_LEVEL'];
  shutdownTimeoutMs: number;
  maxSocketsPerBackend: number;
  segmentCache: { maxBytes: number; maxSegmentBytes: number };
  playlistCacheMs: number;
  /** Access-record shipping over the Fluent forward protocol; null when FLUENT_HOST is unset. */
  records: RecordShippingConfig | null;
  /** Networks allowed in (IPs/CIDRs); empty = everyone. */
  viewerAllowCidrs: string[];
  /** Peers whose X-Forwarded-For / X-Forwarded-Proto are believed; empty = none. */
  frontProxies: string[];
  playbackTokenSecret: string | undefined;
  limits: ClientLimitsConfig;
  /** HTTPS on PROXY_PORT when set. */
  tls: TlsCredentials | null;
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
    ingestUrl: e.INGEST_URL!,
    uploads: { maxFileBytes: e.UPLOAD_MAX_BYTES, timeoutMs: e.UPLOAD_TIMEOUT_MS },
    logLevel: e.LOG_LEVEL,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    maxSocketsPerBackend: e.MAX_SOCKETS_PER_BACKEND,
    segmentCache: { maxBytes: e.SEGMENT_CACHE_MB * 1024 * 1024, maxSegmentBytes: e.SEGMENT_CACHE_MAX_SEGMENT_MB * 1024 * 1024 },
    playlistCacheMs: e.PLAYLIST_CACHE_MS,
    records: recordShippingConfig(e, instance),
    viewerAllowCidrs: e.VIEWER_ALLOW_CIDRS,
    frontProxies: e.FRONT_PROXIES,
    playbackTokenSecret: e.PLAYBACK_TOKEN_SECRET,
    limits: {
      maxConnections: e.MAX_CONNECTIONS,
      maxConnectionsPerIp: e.MAX_CONNECTIONS_PER_IP,
      ratePerIp: e.RATE_LIMIT_PER_IP,
      rateBurst: e.RATE_LIMIT_BURST,
      exempt: e.LIMIT_EXEMPT_CIDRS,
      maxUrlBytes: e.MAX_URL_BYTES,
      maxHeaderBytes: e.MAX_HEADER_BYTES,
      headersTimeoutMs: e.HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: e.KEEP_ALIVE_TIMEOUT_MS,
    },
    // Checked by the schema already; read again here to keep the contents.
    tls: checkTlsFiles(e.TLS_CERT_FILE, e.TLS_KEY_FILE).credentials,
  };
}
