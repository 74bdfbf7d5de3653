import type { Registry } from 'prom-client';
import type { Logger } from '../logger.ts';
import type { RecordShippingConfig } from './config.ts';
import { RecordShipper } from './record-shipper.ts';

export { RecordShipper, SHIPPER_DEFAULTS, type RecordShipperOptions, type ShipperStats } from './record-shipper.ts';
export { createRecordIds, type RecordIds } from './record-id.ts';
export { recordShippingConfig, recordShippingEnv, defaultSpoolDir, type RecordShippingConfig } from './config.ts';

/** A service's shipper, or null when FLUENT_HOST is unset (records then only go to the log). */
export function startRecordShipping(config: RecordShippingConfig | null, registry: Registry, logger: Logger): RecordShipper | null {
  if (config === null) {
    logger.info('access record shipping off (FLUENT_HOST unset): records go to the log only');
    return null;
  }
  logger.info(
    { receiver: `${config.host}:${config.port}`, spoolDir: config.spoolDir, maxQueuedRecords: config.maxQueuedRecords, maxSpoolBytes: config.maxSpoolBytes },
    'shipping access records over the Fluent forward protocol',
  );
  return new RecordShipper({ ...config, registry, logger });
}

/**
 * How long the shipper may try to deliver on shutdown: what is left of the service's shutdown
 * budget after draining HTTP, minus a margin for spilling, fsync and the log flush. Never long:
 * whatever is not delivered is safe in the spool anyway.
 */
export function shipperCloseBudgetMs(shutdownTimeoutMs: number, elapsedMs: number): number {
  return Math.max(0, Math.min(5_000, shutdownTimeoutMs - elapsedMs - 1_500));
}
