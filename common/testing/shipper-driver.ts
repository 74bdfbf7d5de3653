/**
 * Test/bench-only: a process that ships synthetic access records with a RecordShipper, so tests
 * can crash (SIGKILL) or stop (SIGTERM → close()) a shipper that is not the test process.
 *   node --import tsx common/testing/shipper-driver.ts
 * Environment: FLUENT_PORT, SPOOL_DIR, COUNT, INSTANCE, MAX_QUEUED (default 20000),
 * MODE = burst (ship COUNT as fast as possible: what does not fit in memory spills) | flow (ship as fast as the
 * memory queue drains: a throughput run), ACK_TIMEOUT_MS.
 * stdout: `{"stats":…}` every 100 ms, `{"shipped":COUNT,"ms":…}` once all were handed over,
 * `{"allAcked":…,"ms":…}` when every record was acknowledged, `{"closed":…}` after SIGTERM.
 */
import { Registry } from 'prom-client';
import { createLogger } from '../src/logger.ts';
import { RecordShipper } from '../src/record-shipping/record-shipper.ts';
import { syntheticRecord } from './records.ts';

const count = Number(process.env.COUNT ?? 1000);
const instance = process.env.INSTANCE ?? 'driver';
const mode = process.env.MODE ?? 'burst';
const logger = createLogger('shipper-driver', (process.env.LOG_LEVEL as 'info' | undefined) ?? 'warn');
const shipper = new RecordShipper({
  host: '127.0.0.1',
  port: Number(process.env.FLUENT_PORT),
  spoolDir: process.env.SPOOL_DIR!,
  registry: new Registry(),
  logger,
  maxQueuedRecords: Number(process.env.MAX_QUEUED ?? 20_000),
  ackTimeoutMs: Number(process.env.ACK_TIMEOUT_MS ?? 10_000),
  ...(process.env.BATCH ? { batchRecords: Number(process.env.BATCH) } : {}),
  ...(process.env.IN_FLIGHT ? { maxBatchesInFlight: Number(process.env.IN_FLIGHT) } : {}),
  reconnectDelayMs: 100,
  reconnectMaxDelayMs: 500,
});
const print = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);

await shipper.ready();
const startedAt = performance.now();
let shipped = 0;
const report = setInterval(() => print({ stats: shipper.stats() }), 100);

if (mode === 'burst') {
  // As fast as possible, yielding between chunks so spill writes keep up (a single tick holding
  // more than the spill backlog limit is not what a web server produces).
  const step = (): void => {
    if (shipper.stats().spilling < 10_000) {
      const end = Math.min(count, shipped + 2_000);
      for (; shipped < end; shipped++) shipper.ship(syntheticRecord(instance, shipped));
    }
    if (shipped < count) setImmediate(step);
    else print({ shipped, ms: performance.now() - startedAt });
  };
  step();
} else {
  const max = Number(process.env.MAX_QUEUED ?? 20_000);
  const step = (): void => {
    // Keep the memory queue fed but never full, so nothing spills: receiver-bound throughput.
    const room = Math.min(count - shipped, max - shipper.stats().queued - 1);
    for (let i = 0; i < room; i++) shipper.ship(syntheticRecord(instance, shipped++));
    if (shipped < count) setImmediate(step);
    else print({ shipped, ms: performance.now() - startedAt });
  };
  step();
}

const acked = setInterval(() => {
  const stats = shipper.stats();
  if (shipped === count && stats.acked >= count) {
    clearInterval(acked);
    print({ allAcked: stats.acked, ms: performance.now() - startedAt, stats });
  }
}, 5);

process.on('SIGTERM', () => {
  clearInterval(report);
  clearInterval(acked);
  void shipper.close(Number(process.env.CLOSE_TIMEOUT_MS ?? 2_000)).then(() => {
    print({ closed: shipper.stats() });
    process.exit(0);
  });
});
