import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { ACCESS_RECORD_TAG } from '../src/access-record.ts';
import { RecordShipper, type RecordShipperOptions } from '../src/record-shipping/record-shipper.ts';
import { makeTempDir, ManagedProcess, REPO_ROOT, waitFor } from '../testing/processes.ts';
import { TestReceiver } from '../testing/receiver.ts';
import { syntheticRecord } from '../testing/records.ts';

/**
 * RecordShipper against a real Fluent forward receiver in a separate process
 * (common/testing/fluent-receiver.ts: the package's FluentServer, acknowledging only once the
 * entries are in its output file). Every scenario counts records sent against records received
 * by record_id; duplicates are only acceptable where acknowledgements were lost (retries).
 */

interface Harness {
  dir: string;
  spoolDir: string;
  receiver: TestReceiver;
  logs: Array<Record<string, unknown>>;
  logger: Logger;
}

const shippers: RecordShipper[] = [];
const cleanups: Array<() => Promise<void>> = [];

async function harness(name: string): Promise<Harness> {
  const tmp = await makeTempDir(`shipper-${name}`);
  const receiver = await TestReceiver.create(tmp.dir);
  cleanups.push(async () => {
    await receiver.stop();
    await tmp.remove();
  });
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  return { dir: tmp.dir, spoolDir: path.join(tmp.dir, 'spool'), receiver, logs, logger };
}

function newShipper(h: Harness, options: Partial<RecordShipperOptions> = {}): { shipper: RecordShipper; registry: Registry } {
  const registry = new Registry();
  const shipper = new RecordShipper({
    host: '127.0.0.1',
    port: h.receiver.port,
    spoolDir: h.spoolDir,
    registry,
    logger: h.logger,
    reconnectDelayMs: 50,
    reconnectMaxDelayMs: 250,
    ackTimeoutMs: 5_000,
    ...options,
  });
  shippers.push(shipper);
  return { shipper, registry };
}

/** Sum of a metric's samples whose labels include `labels`. */
async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  let sum = 0;
  for (const line of (await registry.metrics()).split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function spoolFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((name) => name.endsWith('.ndjson')).sort();
  } catch {
    return [];
  }
}

async function spoolLines(dir: string): Promise<string[]> {
  const lines: string[] = [];
  for (const name of await spoolFiles(dir)) for (const line of (await readFile(path.join(dir, name), 'utf8')).split('\n')) if (line) lines.push(line);
  return lines;
}

function ids(instance: string, from: number, to: number): string[] {
  return Array.from({ length: to - from }, (_, i) => `${instance}-${from + i}`);
}

/** The received ids must be exactly `expected` (as a set). */
async function assertReceivedExactly(h: Harness, expected: string[]): Promise<{ duplicates: number }> {
  const got = await h.receiver.ids();
  const want = new Set(expected);
  const missing = expected.filter((id) => !got.distinct.has(id));
  const extra = [...got.distinct].filter((id) => !want.has(id));
  assert.deepEqual({ missing: missing.slice(0, 10), extra: extra.slice(0, 10) }, { missing: [], extra: [] }, `missing ${missing.length}, unexpected ${extra.length}`);
  return { duplicates: got.duplicates };
}

function startDriver(env: Record<string, string>): ManagedProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'common', 'testing', 'shipper-driver.ts')], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = new ManagedProcess('shipper-driver', child);
  cleanups.push(async () => void (await proc.stop(2_000)));
  return proc;
}

function lastStats(proc: ManagedProcess): { queued: number; spooled: number; spilling: number } | undefined {
  for (let i = proc.output.length - 1; i >= 0; i--) {
    const line = proc.output[i]!;
    if (line.startsWith('{"stats"')) return (JSON.parse(line) as { stats: { queued: number; spooled: number; spilling: number } }).stats;
  }
  return undefined;
}

describe('RecordShipper against a real Fluent receiver process', () => {
  afterEach(async () => {
    for (const shipper of shippers.splice(0)) await shipper.close(0);
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('delivers records with every field, the access tag and millisecond event time', async () => {
    const h = await harness('fields');
    await h.receiver.start();
    const { shipper, registry } = newShipper(h);
    const at = new Date('2026-01-02T03:04:05.678Z');
    const records = Array.from({ length: 50 }, (_, i) => syntheticRecord('fields', i, at));
    records[3]!.session_id = null;
    for (const record of records) shipper.ship(record);
    await waitFor('50 records at the receiver', async () => (await h.receiver.ids()).distinct.size === 50);
    const entries = await h.receiver.entries();
    for (const entry of entries) {
      assert.equal(entry.tag, ACCESS_RECORD_TAG);
      assert.equal(entry.time, at.getTime(), 'event time is the record time, in ms');
      const sent = records.find((r) => r.record_id === entry.record.record_id);
      assert.deepEqual(entry.record, sent);
    }
    await waitFor('acknowledged', () => shipper.stats().acked === 50);
    assert.equal(await metric(registry, 'onair_records_sent_total'), 50);
    assert.equal(await metric(registry, 'onair_records_acked_total'), 50);
    assert.equal(await metric(registry, 'onair_records_queued'), 0);
    assert.equal(await metric(registry, 'onair_records_receiver_up'), 1);
    assert.equal((await h.receiver.ids()).duplicates, 0);
  });

  it('receiver down at start: queues in memory, spills beyond the limit, then delivers everything', async (t: TestContext) => {
    const h = await harness('down');
    const { shipper, registry } = newShipper(h, { maxQueuedRecords: 200 });
    await shipper.ready();
    for (let i = 0; i < 1000; i++) shipper.ship(syntheticRecord('down', i));
    await waitFor('800 records spilled to disk', () => shipper.stats().spooled === 800 && shipper.stats().spilling === 0);
    assert.equal(await metric(registry, 'onair_records_queued'), 200);
    assert.equal(await metric(registry, 'onair_records_spooled'), 800);
    assert.equal(await metric(registry, 'onair_records_spilled_total'), 800);
    assert.equal(await metric(registry, 'onair_records_sent_total'), 0);
    assert.equal(await metric(registry, 'onair_records_receiver_up'), 0);
    assert.equal((await spoolLines(h.spoolDir)).length, 800, 'spool files hold the spilled records as NDJSON');
    assert.ok(h.logs.some((l) => l.msg === 'record receiver unreachable; queueing records'));

    await h.receiver.start();
    await waitFor('all 1000 records at the receiver', async () => (await h.receiver.ids()).distinct.size === 1000, 30_000);
    const { duplicates } = await assertReceivedExactly(h, ids('down', 0, 1000));
    await waitFor('spool drained and files deleted', async () => shipper.stats().spooled === 0 && (await spoolFiles(h.spoolDir)).length === 0);
    assert.equal(await metric(registry, 'onair_records_replayed_total'), 800);
    assert.equal(await metric(registry, 'onair_records_acked_total'), 1000);
    assert.equal(await metric(registry, 'onair_records_queued'), 0);
    assert.equal(await metric(registry, 'onair_records_dropped_total'), 0);
    // Nothing was written before the receiver existed, so no acknowledgement could be lost.
    assert.equal(await metric(registry, 'onair_records_retried_total'), 0);
    assert.equal(duplicates, 0);
    assert.ok(h.logs.some((l) => l.msg === 'record receiver connected'));
    t.diagnostic(`1000 sent, 1000 distinct received, ${duplicates} duplicates`);
  });

  it('receiver SIGKILLed mid-stream and restarted: no record is lost', async (t: TestContext) => {
    const h = await harness('kill');
    await h.receiver.start();
    const { shipper, registry } = newShipper(h, { maxQueuedRecords: 2_000 });
    let shipped = 0;
    const traffic = setInterval(() => {
      for (let i = 0; i < 20; i++) shipper.ship(syntheticRecord('kill', shipped++));
    }, 5);
    try {
      await waitFor('traffic flowing', () => shipper.stats().acked >= 1_000);
      await h.receiver.kill();
      await waitFor('shipper notices', () => !shipper.connected);
      const atKill = shipped;
      // Keep shipping while the receiver is dead: enough to overflow memory into the spool.
      await waitFor('records spilled while the receiver is dead', () => shipper.stats().spooled > 500, 30_000);
      assert.ok(shipped > atKill);
      await h.receiver.start();
      await waitFor('reconnected and acknowledging', () => shipper.connected && shipper.stats().acked > 2_000);
    } finally {
      clearInterval(traffic);
    }
    await waitFor(`all ${shipped} records at the receiver`, async () => (await h.receiver.ids()).distinct.size === shipped, 30_000);
    const { duplicates } = await assertReceivedExactly(h, ids('kill', 0, shipped));
    await waitFor('nothing left queued or spooled', () => shipper.stats().queued === 0 && shipper.stats().spooled === 0);
    const retried = await metric(registry, 'onair_records_retried_total');
    // A duplicate is a record received whose acknowledgement died with the receiver: it was retried.
    assert.ok(duplicates <= retried, `${duplicates} duplicates but only ${retried} retried`);
    assert.equal(await metric(registry, 'onair_records_dropped_total'), 0);
    assert.ok(h.logs.some((l) => l.msg === 'record receiver connection lost; queueing records'));
    t.diagnostic(`${shipped} sent, ${shipped} distinct received, ${duplicates} duplicates (lost acknowledgements), ${retried} records retried, ${shipper.stats().replayed} replayed from disk`);
  });

  it('close() spills what it cannot deliver; the next shipper on that spool replays it', async (t: TestContext) => {
    const h = await harness('close');
    const first = newShipper(h, { maxQueuedRecords: 1_000 });
    await first.shipper.ready();
    for (let i = 0; i < 300; i++) first.shipper.ship(syntheticRecord('close', i));
    assert.equal(first.shipper.stats().queued, 300);
    const startedAt = performance.now();
    await first.shipper.close(30_000);
    // The receiver is down: close() does not sit out its delivery timeout waiting for it.
    assert.ok(performance.now() - startedAt < 15_000, 'close() waited for an absent receiver');
    assert.equal(first.shipper.stats().queued, 0);
    assert.equal(await metric(first.registry, 'onair_records_spilled_total'), 300);
    assert.equal((await spoolLines(h.spoolDir)).length, 300, 'every record is on disk when close() resolves');

    await h.receiver.start();
    const second = newShipper(h);
    await waitFor('300 records replayed', async () => (await h.receiver.ids()).distinct.size === 300);
    const { duplicates } = await assertReceivedExactly(h, ids('close', 0, 300));
    await waitFor('spool files deleted', async () => (await spoolFiles(h.spoolDir)).length === 0 && second.shipper.stats().spooled === 0);
    assert.equal(await metric(second.registry, 'onair_records_replayed_total'), 300);
    assert.equal(duplicates, 0);
    assert.ok(h.logs.some((l) => l.msg === 'record spool holds records from a previous run; replaying them'));
    t.diagnostic(`300 spilled on close, 300 replayed by the next run, ${duplicates} duplicates`);
  });

  it('close() delivers what it can while the receiver is up', async () => {
    const h = await harness('close-up');
    await h.receiver.start();
    const { shipper } = newShipper(h);
    await waitFor('connected', () => shipper.connected);
    for (let i = 0; i < 2_000; i++) shipper.ship(syntheticRecord('close-up', i));
    await shipper.close(5_000);
    assert.equal(shipper.stats().acked, 2_000);
    assert.equal((await spoolLines(h.spoolDir)).length, 0);
    await assertReceivedExactly(h, ids('close-up', 0, 2_000));
  });

  it('a shipper process killed with a non-empty spool: the next run replays the spilled records', async (t: TestContext) => {
    const h = await harness('crash');
    const driver = startDriver({ FLUENT_PORT: String(h.receiver.port), SPOOL_DIR: h.spoolDir, COUNT: '1000', MAX_QUEUED: '100', MODE: 'burst', INSTANCE: 'crash' });
    await waitFor('900 records spilled by the driver', () => {
      if (!driver.running) throw new Error(driver.tail());
      const stats = lastStats(driver);
      return stats !== undefined && stats.queued === 100 && stats.spooled === 900 && stats.spilling === 0;
    }, 20_000);
    driver.kill('SIGKILL');
    await driver.exited;

    await h.receiver.start();
    const { shipper, registry } = newShipper(h);
    await waitFor('the spilled records replayed', async () => (await h.receiver.ids()).distinct.size === 900, 20_000);
    // The 100 that were only in the killed process's memory are gone: a crash can only keep what was on disk.
    const { duplicates } = await assertReceivedExactly(h, ids('crash', 100, 1000));
    await waitFor('spool emptied', async () => (await spoolFiles(h.spoolDir)).length === 0 && shipper.stats().spooled === 0);
    assert.equal(await metric(registry, 'onair_records_replayed_total'), 900);
    assert.equal(duplicates, 0);
    t.diagnostic('killed with 100 in memory and 900 on disk: 900 replayed by the next run');
  });

  it('a shipper process stopped gracefully (SIGTERM → close) with the receiver down loses nothing', async () => {
    const h = await harness('sigterm');
    const driver = startDriver({ FLUENT_PORT: String(h.receiver.port), SPOOL_DIR: h.spoolDir, COUNT: '1000', MAX_QUEUED: '100', MODE: 'burst', INSTANCE: 'sigterm' });
    await waitFor('driver spilled', () => {
      if (!driver.running) throw new Error(driver.tail());
      const stats = lastStats(driver);
      return stats !== undefined && stats.spooled === 900 && stats.spilling === 0;
    }, 20_000);
    const exit = await driver.stop(10_000);
    assert.equal(exit.code, 0, driver.tail());
    assert.equal((await spoolLines(h.spoolDir)).length, 1000, 'memory queue written to the spool on close');

    await h.receiver.start();
    newShipper(h);
    await waitFor('all 1000 replayed', async () => (await h.receiver.ids()).distinct.size === 1000, 20_000);
    const { duplicates } = await assertReceivedExactly(h, ids('sigterm', 0, 1000));
    assert.equal(duplicates, 0);
  });

  it('disk cap: the oldest spooled records are dropped and counted, the newest kept', async (t: TestContext) => {
    const h = await harness('cap');
    const { shipper, registry } = newShipper(h, { maxQueuedRecords: 10, segmentBytes: 4_096, maxSpoolBytes: 32 * 1024 });
    await shipper.ready();
    for (let i = 0; i < 1000; i++) shipper.ship(syntheticRecord('cap', i));
    await waitFor('spool writes finished', () => shipper.stats().spilling === 0 && shipper.stats().spilled + shipper.stats().dropped.spool_full >= 990);
    const stats = shipper.stats();
    const dropped = await metric(registry, 'onair_records_dropped_total', { reason: 'spool_full' });
    assert.ok(dropped > 0, 'something was dropped');
    assert.equal(stats.queued + stats.spooled + dropped, 1000, 'every record is queued, spooled or counted as dropped');
    const files = await spoolFiles(h.spoolDir);
    let bytes = 0;
    for (const name of files) bytes += (await readFile(path.join(h.spoolDir, name))).length;
    assert.ok(bytes <= 32 * 1024, `spool holds ${bytes} bytes, over the cap`);

    await h.receiver.start();
    const kept = stats.spooled;
    await waitFor('memory and spool delivered', async () => (await h.receiver.ids()).distinct.size === 10 + kept, 20_000);
    // Memory held the first 10; the spool kept the newest records.
    await assertReceivedExactly(h, [...ids('cap', 0, 10), ...ids('cap', 1000 - kept, 1000)]);
    t.diagnostic(`cap 32 KiB: ${kept} records kept on disk, ${dropped} oldest dropped and counted`);
  });

  it('slow acknowledgements: batches are retried after the ack timeout; every record arrives', async (t: TestContext) => {
    const h = await harness('slow');
    await h.receiver.start({ ACK_DELAY_MS: '800', SLOW_ACKS: '2' });
    const { shipper, registry } = newShipper(h, { ackTimeoutMs: 200, batchRecords: 50 });
    await waitFor('connected', () => shipper.connected);
    for (let i = 0; i < 300; i++) shipper.ship(syntheticRecord('slow', i));
    await waitFor('all acknowledged', () => shipper.stats().acked === 300 && shipper.stats().queued === 0, 20_000);
    await waitFor('all received', async () => (await h.receiver.ids()).distinct.size === 300);
    const { duplicates } = await assertReceivedExactly(h, ids('slow', 0, 300));
    const retried = await metric(registry, 'onair_records_retried_total');
    assert.ok(retried > 0, 'late acknowledgements lead to retries');
    assert.ok(duplicates <= retried, `${duplicates} duplicates, ${retried} retried`);
    assert.ok(h.logs.some((l) => l.msg === 'record batch not acknowledged; retrying'));
    t.diagnostic(`2 acknowledgements delayed past the timeout: ${retried} records retried, ${duplicates} duplicates at the receiver`);
  });

  it('a torn line in a spool file left by a crash is skipped and counted', async () => {
    const h = await harness('torn');
    await mkdir(h.spoolDir, { recursive: true });
    const lines = ids('torn', 0, 5).map((_, i) => JSON.stringify(syntheticRecord('torn', i)));
    await writeFile(path.join(h.spoolDir, 'seg-000000000007.ndjson'), `${lines.join('\n')}\n{"@timestamp":"2026-01-0`);
    await h.receiver.start();
    const { shipper, registry } = newShipper(h);
    await waitFor('valid lines replayed', async () => (await h.receiver.ids()).distinct.size === 5);
    await waitFor('file deleted', async () => (await spoolFiles(h.spoolDir)).length === 0);
    assert.equal(await metric(registry, 'onair_records_dropped_total', { reason: 'spool_corrupt' }), 1);
    assert.equal(await metric(registry, 'onair_records_replayed_total'), 5);
    // New segments continue the numbering after the files found at start.
    for (let i = 0; i < 3; i++) shipper.ship(syntheticRecord('torn-new', i));
    await waitFor('new records delivered', async () => (await h.receiver.ids()).distinct.size === 8);
  });

  it('refuses a spool folder another live process holds: records beyond memory are dropped and counted, not corrupted', async () => {
    const h = await harness('lock');
    const driver = startDriver({ FLUENT_PORT: String(h.receiver.port), SPOOL_DIR: h.spoolDir, COUNT: '10', MAX_QUEUED: '5', MODE: 'burst', INSTANCE: 'owner' });
    await waitFor('the driver spilled', () => lastStats(driver)?.spooled === 5);
    const { shipper, registry } = newShipper(h, { maxQueuedRecords: 5 });
    await shipper.ready();
    assert.ok(h.logs.some((l) => l.msg === 'record spool unavailable: records that do not fit in memory will be dropped' && String((l.err as { message?: string })?.message).includes(`process ${driver.pid}`)));
    for (let i = 0; i < 8; i++) shipper.ship(syntheticRecord('intruder', i));
    await waitFor('3 dropped', async () => (await metric(registry, 'onair_records_dropped_total', { reason: 'spool_unavailable' })) === 3);
    assert.deepEqual((await spoolLines(h.spoolDir)).map((l) => (JSON.parse(l) as { instance: string }).instance), ['owner', 'owner', 'owner', 'owner', 'owner']);
  });

  it('ship() is synchronous and cheap even with the receiver down and memory full', async (t: TestContext) => {
    const h = await harness('sync');
    const { shipper } = newShipper(h, { maxQueuedRecords: 100 });
    await shipper.ready();
    const record = syntheticRecord('sync', 0);
    const startedAt = performance.now();
    for (let i = 0; i < 10_000; i++) shipper.ship({ ...record, record_id: `sync-${i}` });
    const perRecordUs = ((performance.now() - startedAt) * 1000) / 10_000;
    // Synchronous: the memory queue took its 100 before ship() returned; the rest waits for the disk.
    assert.equal(shipper.stats().queued, 100);
    assert.equal(shipper.stats().spooled + shipper.stats().spilling, 9_900);
    t.diagnostic(`${perRecordUs.toFixed(2)} µs per ship() (memory full: serialised for the spool)`);
    await waitFor('spilled', () => shipper.stats().spooled === 9_900 && shipper.stats().spilling === 0);
  });
});

describe('test receiver', () => {
  let tmp: Awaited<ReturnType<typeof makeTempDir>>;
  before(async () => {
    tmp = await makeTempDir('receiver');
  });
  after(async () => {
    await tmp.remove();
  });

  it('is a separate process that can be killed and restarted on the same port', async () => {
    const receiver = await TestReceiver.create(tmp.dir);
    await receiver.start();
    const pid = receiver.pid;
    assert.notEqual(pid, process.pid);
    await receiver.kill();
    assert.equal(receiver.running, false);
    await receiver.start();
    assert.notEqual(receiver.pid, pid);
    await receiver.stop();
  });
});
