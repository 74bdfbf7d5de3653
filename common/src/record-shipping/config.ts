import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_DATA_DIR, emptyAsUnset, env } from '../config.ts';

/**
 * Environment of access-record shipping, shared by web and proxy (spread into their schemas).
 * FLUENT_HOST unset = shipping off: records only go to the log, as before.
 */
export const recordShippingEnv = {
  /** Fluent forward receiver (fluentd, or monitoring's receiver); unset: no shipping. */
  FLUENT_HOST: z.preprocess(emptyAsUnset, z.string().min(1).optional()),
  FLUENT_PORT: env.port(24224),
  /** Spill folder for records the receiver has not taken yet; default DATA_DIR/spool/<instance>. */
  SPOOL_DIR: env.optionalString(),
  DATA_DIR: env.dir(DEFAULT_DATA_DIR),
  /** Records held in memory before spilling to disk. */
  RECORD_QUEUE_MAX: env.positiveInt(20_000),
  /** Disk cap of the spool; beyond it the oldest records are dropped (and counted). */
  SPOOL_MAX_MB: env.positiveInt(1024),
};

export interface RecordShippingConfig {
  host: string;
  port: number;
  spoolDir: string;
  maxQueuedRecords: number;
  maxSpoolBytes: number;
}

type ShippingEnv = z.infer<z.ZodObject<typeof recordShippingEnv>>;

/** null when FLUENT_HOST is unset. */
export function recordShippingConfig(e: ShippingEnv, instance: string): RecordShippingConfig | null {
  if (!e.FLUENT_HOST) return null;
  return {
    host: e.FLUENT_HOST,
    port: e.FLUENT_PORT,
    spoolDir: e.SPOOL_DIR ? path.resolve(e.SPOOL_DIR) : defaultSpoolDir(e.DATA_DIR, instance),
    maxQueuedRecords: e.RECORD_QUEUE_MAX,
    maxSpoolBytes: e.SPOOL_MAX_MB * 1024 * 1024,
  };
}

/** One folder per instance: two processes must never append to or replay the same files. */
export function defaultSpoolDir(dataDir: string, instance: string): string {
  return path.join(dataDir, 'spool', instance.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_') || 'default');
}
