import { Counter, Gauge, type Registry } from 'prom-client';

/** Why records were given up on: every one is counted, so "nothing lost" can be checked. */
export type DropReason =
  /** The spool reached its size cap: the oldest records on disk were deleted. */
  | 'spool_full'
  /** Writing to the spool failed (disk full, permissions). */
  | 'spool_write_error'
  /** The spool folder could not be created or read. */
  | 'spool_unavailable'
  /** Too many records waiting to be written to disk (a disk slower than the traffic). */
  | 'spool_backlog'
  /** A spool line that does not parse (a torn write after a crash). */
  | 'spool_corrupt'
  /** A record the client refuses to encode: retrying cannot help. */
  | 'invalid';

export const DROP_REASONS: readonly DropReason[] = ['spool_full', 'spool_write_error', 'spool_unavailable', 'spool_backlog', 'spool_corrupt', 'invalid'];

export interface ShipperMetrics {
  sent: Counter;
  acked: Counter;
  spilled: Counter;
  replayed: Counter;
  retried: Counter;
  dropped: Counter<'reason'>;
}

/**
 * onair_records_* in the service's registry. Gauges are read at scrape time from the shipper, so
 * they cost nothing per record.
 */
export function createShipperMetrics(registry: Registry, read: { queued: () => number; spooled: () => number; receiverUp: () => boolean }): ShipperMetrics {
  const registers = [registry];
  new Gauge({
    name: 'onair_records_queued',
    help: 'Access records held in memory: waiting, in flight, or loaded from the spool for replay',
    registers,
    collect() {
      this.set(read.queued());
    },
  });
  new Gauge({
    name: 'onair_records_spooled',
    help: 'Access records in spool files on disk, not yet acknowledged',
    registers,
    collect() {
      this.set(read.spooled());
    },
  });
  new Gauge({
    name: 'onair_records_receiver_up',
    help: '1 while connected to the Fluent receiver',
    registers,
    collect() {
      this.set(read.receiverUp() ? 1 : 0);
    },
  });
  const dropped = new Counter({ name: 'onair_records_dropped_total', help: 'Access records given up on, by reason', labelNames: ['reason'] as const, registers });
  for (const reason of DROP_REASONS) dropped.inc({ reason }, 0);
  return {
    sent: new Counter({ name: 'onair_records_sent_total', help: 'Access records written to the receiver (retries and replays included)', registers }),
    acked: new Counter({ name: 'onair_records_acked_total', help: 'Access records acknowledged by the receiver', registers }),
    spilled: new Counter({ name: 'onair_records_spilled_total', help: 'Access records written to the disk spool (memory queue full, or shutdown)', registers }),
    replayed: new Counter({ name: 'onair_records_replayed_total', help: 'Access records read back from the disk spool and acknowledged', registers }),
    retried: new Counter({ name: 'onair_records_retried_total', help: 'Access records queued again after their batch failed or was not acknowledged in time', registers }),
    dropped,
  };
}
