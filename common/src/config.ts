import path from 'node:path';
import { z } from 'zod';
import { createTrustList } from './access-record.ts';

/** Thrown when the environment does not satisfy a service's schema; the message lists every problem. */
export class ConfigError extends Error {
  readonly code = 'ONAIR_CONFIG_INVALID';
  constructor(service: string, readonly problems: string[]) {
    super(`${service}: invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Variables whose values are credentials (OPS_TOKEN, PLAYBACK_TOKEN_SECRET, *_PASSWORD, *_KEY); *_FILE names a path. */
const SECRET_NAME = /^(?!.*_FILE$).*(TOKEN|SECRET|PASSWORD|_KEY$)/;

/**
 * Parses `env` with a zod object schema whose keys are environment variable names.
 * Every problem is reported at once, by variable name, so an operator fixes them in one go.
 */
export function parseEnv<S extends z.ZodObject>(service: string, schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = issue.path.join('.') || '(environment)';
    const value = env[name];
    // A secret's value never reaches a log or a terminal, not even a wrong one: only its length.
    const shown = value === undefined ? 'unset' : SECRET_NAME.test(name) ? `got ${value.length} characters` : `got ${JSON.stringify(value)}`;
    return `${name}: ${issue.message} (${shown})`;
  });
  throw new ConfigError(service, problems);
}

/** An empty or blank variable counts as unset (compose files and shells often pass `VAR=`). */
export const emptyAsUnset = (value: unknown): unknown => (typeof value === 'string' && value.trim() === '' ? undefined : value);

/** Reusable field schemas: environment values are strings, these coerce and validate them. */
export const env = {
  /** An optional string; empty counts as unset. */
  optionalString: () => z.preprocess(emptyAsUnset, z.string().optional()),
  port: (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback),
  positiveInt: (fallback: number) => z.coerce.number().int().positive().default(fallback),
  nonNegativeInt: (fallback: number) => z.coerce.number().int().min(0).default(fallback),
  positiveNumber: (fallback: number) => z.coerce.number().positive().default(fallback),
  bool: (fallback: boolean) =>
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])
      .default(fallback ? 'true' : 'false')
      .transform((v) => v === 'true' || v === '1' || v === 'yes' || v === 'on'),
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  host: (fallback: string) => z.string().min(1).default(fallback),
  /**
   * A comma list of IP addresses and CIDRs (IPv4 and IPv6), e.g. `10.0.0.0/8,2001:db8::/32,192.0.2.7`;
   * checked here so a typo fails at start-up, not at the first request. Unset or empty = [].
   */
  addressList: () =>
    z
      .string()
      .default('')
      .transform((value) => value.split(',').map((entry) => entry.trim()).filter(Boolean))
      .superRefine((entries, ctx) => {
        try {
          createTrustList(entries);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: `${(err as Error).message}; expected comma-separated addresses or CIDRs like 10.0.0.0/8,2001:db8::/32` });
        }
      }),
  dir: (fallback: string) =>
    z
      .string()
      .min(1)
      .default(fallback)
      .transform((p) => path.resolve(p)),
};

/** Where things live unless MEDIA_DIR / DATA_DIR say otherwise (DESIGN.md: folders under ./var/). */
export const DEFAULT_MEDIA_DIR = 'var/media';
export const DEFAULT_DATA_DIR = 'var/data';
