/**
 * Access-record shipping throughput, shipper and receiver in separate processes, with
 * forward-protocol acknowledgements:
 *   node --import tsx bench/record-shipping.ts        (COUNT=200000 by default)
 * 1. flow: records handed to the shipper as fast as its memory queue drains (nothing spills);
 *    receiver = the package's FluentServer writing every record to a file before acknowledging.
 * 2. the same with a receiver that writes to /dev/null (the shipper + protocol alone).
 * 3. spill + replay: receiver down, COUNT records shipped at once (all beyond the 20 000-record
 *    memory queue go to disk), then the receiver starts: time until every record was acknowledged.
 * Printed, never asserted.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { makeTempDir, ManagedProcess, REPO_ROOT, waitFor } from '../common/testing/processes.ts';
import { TestReceiver } from '../common/testing/receiver.ts';

const COUNT = Number(process.env.COUNT ?? 200_000);

function startDriver(env: Record<string, string>): ManagedProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'common', 'testing', 'shipper-driver.ts')], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new ManagedProcess('driver', child);
}

function lastJson(proc: ManagedProcess, key: string): Record<string, any> | undefined {
  for (let i = proc.output.length - 1; i >= 0; i--) {
    const line = proc.output[i]!;
    if (line.startsWith(`{"${key}"`)) return JSON.parse(line) as Record<string, any>;
  }
  return undefined;
}

async function flow(label: string, receiverOut: 'file' | 'null'): Promise<Record<string, number>> {
  const tmp = await makeTempDir('bench-records');
  const receiver = await TestReceiver.create(tmp.dir);
  try {
    await receiver.start(receiverOut === 'null' ? { RECEIVER_OUT: '/dev/null' } : {});
    const driver = startDriver({ FLUENT_PORT: String(receiver.port), SPOOL_DIR: path.join(tmp.dir, 'spool'), COUNT: String(COUNT), MODE: 'flow', INSTANCE: 'bench' });
    const done = await waitFor(`${label}: all acknowledged`, () => lastJson(driver, 'allAcked'), 300_000, 50);
    await driver.stop();
    const received = receiverOut === 'file' ? (await receiver.ids()).distinct.size : Number.NaN;
    return { records: COUNT, ms: Math.round(done.ms), recordsPerSecond: Math.round(COUNT / (done.ms / 1000)), received, spilled: done.stats.spilled, retried: done.stats.retried };
  } finally {
    await receiver.stop();
    await tmp.remove();
  }
}

async function spillReplay(): Promise<Record<string, number>> {
  const tmp = await makeTempDir('bench-records');
  const receiver = await TestReceiver.create(tmp.dir);
  try {
    const driver = startDriver({ FLUENT_PORT: String(receiver.port), SPOOL_DIR: path.join(tmp.dir, 'spool'), COUNT: String(COUNT), MODE: 'burst', INSTANCE: 'bench' });
    const spillStart = performance.now();
    await waitFor('spill', () => lastJson(driver, 'stats')?.stats.spooled === COUNT - 20_000, 300_000, 20);
    const spillMs = performance.now() - spillStart;
    const replayStart = performance.now();
    await receiver.start();
    const done = await waitFor('replayed', () => lastJson(driver, 'allAcked'), 300_000, 50);
    const replayMs = performance.now() - replayStart;
    await driver.stop();
    const ids = await receiver.ids();
    return {
      records: COUNT,
      spilled: done.stats.spilled,
      spillMs: Math.round(spillMs),
      receiverStartToAllAckedMs: Math.round(replayMs),
      recordsPerSecond: Math.round(COUNT / (replayMs / 1000)),
      received: ids.distinct.size,
      duplicates: ids.duplicates,
    };
  } finally {
    await receiver.stop();
    await tmp.remove();
  }
}

const results = {
  flowToFile: await flow('flow to file', 'file'),
  flowToNull: await flow('flow to /dev/null', 'null'),
  spillThenReplay: await spillReplay(),
};
console.table(results);
console.log(JSON.stringify({ node: process.version, results }, null, 2));
