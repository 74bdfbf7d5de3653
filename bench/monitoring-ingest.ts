/**
 * Receiver + store on this machine: the real monitoring process (Fluent receiver acknowledging
 * after the DuckDB store has the records) fed by the real RecordShipper from another process.
 *  1. steady: 4 000 records/s (≈ 2 000 viewers: a playlist and a segment per second each) for
 *     STEADY_SECONDS; pipeline lag (now − newest stored record, from /api/pipeline) sampled;
 *  2. burst: BURST records shipped at once: records/s until every one is acknowledged (= stored);
 *  3. monitoring's resident memory after both.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { RecordShipper } from '../common/src/record-shipping/index.ts';
import { makeTempDir, sleep, waitFor, waitForHttpOk } from '../common/testing/processes.ts';
import { startMonitoring } from '../common/testing/stack.ts';
import { syntheticRecord } from '../common/testing/records.ts';

const TOKEN = 'bench-ops-token-0123456789';

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

export async function benchMonitoringIngest(): Promise<Record<string, number>> {
  const steadySeconds = Number(process.env.STEADY_SECONDS ?? 20);
  const burst = Number(process.env.BURST ?? 200_000);
  const rate = 4000;
  const temp = await makeTempDir('bench-monitoring');
  const { process: monitoring, port, fluentPort } = await startMonitoring({
    mediaDir: path.join(temp.dir, 'media'),
    dataDir: path.join(temp.dir, 'data'),
    opsToken: TOKEN,
    env: { LOG_LEVEL: 'warn' },
  });
  const shipper = new RecordShipper({
    host: '127.0.0.1',
    port: fluentPort,
    spoolDir: path.join(temp.dir, 'spool'),
    registry: new Registry(),
    logger: pino({ level: 'silent' }),
    maxQueuedRecords: burst + 10_000,
  });
  try {
    await waitForHttpOk(`http://127.0.0.1:${port}/readyz`);
    let i = 0;
    // 1. steady rate, lag sampled twice a second
    const lags: number[] = [];
    const start = Date.now();
    const pacer = setInterval(() => {
      const due = Math.floor(((Date.now() - start) / 1000) * rate);
      const now = new Date();
      while (i < due) shipper.ship(syntheticRecord('bench', i++, now));
    }, 10);
    const sampler = setInterval(() => {
      void fetch(`http://127.0.0.1:${port}/api/pipeline`, { headers: { authorization: `Bearer ${TOKEN}` } })
        .then((r) => r.json() as Promise<{ lagMs: number | null }>)
        .then((p) => p.lagMs !== null && lags.push(p.lagMs), () => undefined);
    }, 500);
    await sleep(steadySeconds * 1000);
    clearInterval(pacer);
    clearInterval(sampler);
    await waitFor('steady records acknowledged', () => shipper.stats().acked >= i, 60_000, 50);
    lags.sort((a, b) => a - b);
    const steadyRecords = i;

    // 2. burst
    const burstStart = Date.now();
    const at = new Date();
    for (let n = 0; n < burst; n++) shipper.ship(syntheticRecord('bench', i++, at));
    await waitFor('burst acknowledged', () => shipper.stats().acked >= i, 300_000, 20);
    const burstSeconds = (Date.now() - burstStart) / 1000;
    const rss = await rssMb(monitoring.pid);
    const stats = shipper.stats();
    return {
      steadyRecordsPerSecond: rate,
      steadyRecords,
      steadyLagP50Ms: lags[Math.floor(lags.length / 2)] ?? NaN,
      steadyLagMaxMs: lags.at(-1) ?? NaN,
      burstRecords: burst,
      burstRecordsPerSecond: Math.round(burst / burstSeconds),
      monitoringRssMb: Math.round(rss),
      duplicatesOrRetries: stats.retried,
      dropped: Object.values(stats.dropped).reduce((a, b) => a + b, 0),
    };
  } finally {
    await shipper.close(2000);
    await monitoring.stop();
    await temp.remove();
  }
}
