/**
 * DuckDB-only checks beyond the shared contract (store-contract.test.ts): the table's real types,
 * the insert rate, serialised concurrent writes, and durability when the process is killed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterEach, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { DUCKDB_ACCESS_TABLE, DUCKDB_SCHEMA_VERSION, DuckDbAccessStore } from '../src/store/duckdb-store.ts';
import { T0, recordMaker, viewerTraffic } from './fixtures/access-records.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const dirs: string[] = [];
function tempFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onair-duckdb-'));
  dirs.push(dir);
  return path.join(dir, 'monitoring', 'access.duckdb');
}
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

test('the table has real column types and record_id as its primary key', async () => {
  const file = tempFile();
  const store = new DuckDbAccessStore({ path: file });
  await store.open();
  await store.close();

  const db = await DuckDBInstance.create(file, { access_mode: 'READ_ONLY' });
  const c = await db.connect();
  try {
    const columns = Object.fromEntries(
      (await c.runAndReadAll(`SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '${DUCKDB_ACCESS_TABLE}'`))
        .getRows()
        .map(([name, type]) => [String(name), String(type)]),
    );
    assert.deepEqual(columns, {
      '@timestamp': 'TIMESTAMP',
      record_id: 'VARCHAR',
      stream: 'VARCHAR',
      kind: 'VARCHAR',
      client_ip: 'VARCHAR',
      session_id: 'VARCHAR',
      tier: 'VARCHAR',
      instance: 'VARCHAR',
      backend: 'VARCHAR',
      method: 'VARCHAR',
      path: 'VARCHAR',
      status: 'SMALLINT',
      bytes: 'BIGINT',
      duration_ms: 'DOUBLE',
      user_agent: 'VARCHAR',
      request_id: 'VARCHAR',
      refusal: 'VARCHAR',
    });
    const pk = (await c.runAndReadAll(
      `SELECT constraint_column_names FROM duckdb_constraints() WHERE table_name = '${DUCKDB_ACCESS_TABLE}' AND constraint_type = 'PRIMARY KEY'`,
    )).getRowsJS();
    assert.deepEqual(pk, [[['record_id']]]);
  } finally {
    c.closeSync();
    db.closeSync();
  }
});

test('a file from schema version 1 (no refusal column) is migrated at open, its records kept and counted', async () => {
  const file = tempFile();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // The version 1 layout, as an earlier monitoring wrote it, with one viewer's record.
  const old = await DuckDBInstance.create(file);
  const c = await old.connect();
  await c.run('CREATE TABLE onair_schema (version INTEGER NOT NULL)');
  await c.run('INSERT INTO onair_schema VALUES (1)');
  await c.run(`CREATE TABLE ${DUCKDB_ACCESS_TABLE} (
    "@timestamp" TIMESTAMP NOT NULL, record_id VARCHAR PRIMARY KEY, stream VARCHAR,
    kind VARCHAR NOT NULL CHECK (kind IN ('playlist', 'segment', 'page', 'other')), client_ip VARCHAR NOT NULL, session_id VARCHAR,
    tier VARCHAR NOT NULL CHECK (tier IN ('proxy', 'web')), instance VARCHAR NOT NULL, backend VARCHAR, method VARCHAR NOT NULL,
    path VARCHAR NOT NULL, status SMALLINT NOT NULL, bytes BIGINT NOT NULL, duration_ms DOUBLE NOT NULL, user_agent VARCHAR NOT NULL, request_id VARCHAR)`);
  await c.run(`INSERT INTO ${DUCKDB_ACCESS_TABLE} VALUES (make_timestamp(${BigInt(T0) * 1000n}), 'v1-1', 'alpha', 'segment', '10.0.0.1', 's-1', 'proxy', 'proxy-1', 'web-1', 'GET', '/live/alpha/a.m4s', 200, 10, 1.5, 'ua', 'req-1')`);
  c.closeSync();
  old.closeSync();

  for (let open = 0; open < 2; open++) {
    // Twice: the migration is idempotent.
    const store = new DuckDbAccessStore({ path: file });
    await store.open();
    try {
      const rec = recordMaker(`v2-${open}`);
      assert.equal((await store.insert([rec({ at: T0 + 1, client_ip: '10.0.0.2', session_id: 's-2', status: 403, refusal: 'token-invalid' })])).inserted, 1);
      assert.deepEqual((await store.viewersNow(new Date(T0 + 1000), 30_000)).get('alpha'), { ips: 1, sessions: 1 }, 'the old record counts, the refused one does not');
      assert.equal(await store.count(), 2 + open);
    } finally {
      await store.close();
    }
  }
  const db = await DuckDBInstance.create(file, { access_mode: 'READ_ONLY' });
  const check = await db.connect();
  try {
    assert.deepEqual((await check.runAndReadAll('SELECT max(version) FROM onair_schema')).getRowsJS(), [[DUCKDB_SCHEMA_VERSION]]);
    assert.deepEqual((await check.runAndReadAll(`SELECT record_id, refusal FROM ${DUCKDB_ACCESS_TABLE} ORDER BY record_id`)).getRowsJS(), [
      ['v1-1', null],
      ['v2-0-1', 'token-invalid'],
      ['v2-1-1', 'token-invalid'],
    ]);
  } finally {
    check.closeSync();
    db.closeSync();
  }
});

test('insert rate: 100 000 records in batches of 5 000 (printed, not asserted)', async (t) => {
  const store = new DuckDbAccessStore({ path: tempFile() });
  await store.open();
  try {
    const batches = [...viewerTraffic({ stream: 'alpha', viewers: 2000, from: T0, durationMs: 25_000, batchSize: 5000 })];
    const total = batches.reduce((n, b) => n + b.length, 0);
    assert.equal(total, 100_000);
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const start = performance.now();
    let inserted = 0;
    for (const batch of batches) inserted += (await store.insert(batch)).inserted;
    const seconds = (performance.now() - start) / 1000;
    loop.disable();
    assert.equal(inserted, total);
    assert.equal(await store.count(), total);
    const line = `DuckDB insert: ${total} records in ${seconds.toFixed(2)} s = ${Math.round(total / seconds)} records/s; ` +
      `event-loop delay during it: p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms, max ${(loop.max / 1e6).toFixed(1)} ms`;
    t.diagnostic(line);
    console.log(line);
    // Same semantics hold on the bulk data: 2 000 viewers, each with its own IP and session.
    assert.deepEqual((await store.viewersNow(new Date(T0 + 25_000), 30_000)).get('alpha'), { ips: 2000, sessions: 2000 });
  } finally {
    await store.close();
  }
});

test('concurrent inserts are serialised: every record lands once, reads go on meanwhile', async () => {
  const store = new DuckDbAccessStore({ path: tempFile(), batchSize: 500 });
  await store.open();
  try {
    const rec = recordMaker('conc');
    const records = Array.from({ length: 4000 }, (_, i) => rec({ at: T0 + i, client_ip: `10.0.${(i >> 8) & 255}.${i & 255}` }));
    // Eight overlapping slices: every record is sent twice.
    const slices = Array.from({ length: 8 }, (_, k) => records.slice(k * 500, k * 500 + 1000));
    const [results, counts] = await Promise.all([
      Promise.all(slices.map((s) => store.insert(s))),
      Promise.all(Array.from({ length: 8 }, () => store.count())),
    ]);
    const inserted = results.reduce((n, r) => n + r.inserted, 0);
    const duplicates = results.reduce((n, r) => n + r.duplicates, 0);
    assert.equal(inserted, 4000);
    assert.equal(inserted + duplicates, 7500);
    for (const n of counts) assert.ok(n >= 0 && n <= 4000);
    assert.equal(await store.count(), 4000);
  } finally {
    await store.close();
  }
});

test('records acknowledged before the process is killed (SIGKILL) are there after restart', async () => {
  const file = tempFile();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'fixtures', 'duckdb-crash-child.ts'), file, '3000'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    child.once('exit', (code) => reject(new Error(`child exited early (${code}): ${out}`)));
  });
  assert.equal(line, 'inserted 3000');
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;

  const store = new DuckDbAccessStore({ path: file });
  await store.open();
  try {
    assert.equal(await store.count(), 3000);
    assert.deepEqual(await store.newestRecordTime(), new Date(T0 + 2999));
  } finally {
    await store.close();
  }
});

test('a closed store refuses work instead of touching a closed database', async () => {
  const store = new DuckDbAccessStore({ path: tempFile() });
  await store.open();
  await store.close();
  await assert.rejects(store.count(), /not open/);
  await assert.rejects(store.insert([recordMaker('closed')({ at: T0 })]), /not open/);
  assert.equal(await store.ping(), false);
  await store.close(); // twice is fine
});

test('retention deletes in slices and lets inserts in between', async () => {
  const store = new DuckDbAccessStore({ path: tempFile() });
  await store.open();
  try {
    const rec = recordMaker('slices');
    const old = Array.from({ length: 12_345 }, (_, i) => rec({ at: T0 + i, client_ip: `10.0.${(i >> 8) & 255}.${i & 255}` }));
    assert.equal((await store.insert(old)).inserted, 12_345);
    const fresh = Array.from({ length: 100 }, (_, i) => rec({ at: T0 + 60_000 + i }));
    const [deleted, insert] = await Promise.all([store.applyRetention(new Date(T0 + 12_000)), store.insert(fresh)]);
    assert.equal(deleted, 12_000); // more than two slices of 5 000
    assert.equal(insert.inserted, 100);
    assert.equal(await store.count(), 345 + 100);
    // Deleted ids are gone from the primary key too: nothing stops them from being stored again.
    assert.equal((await store.insert(old.slice(0, 10))).inserted, 10);
  } finally {
    await store.close();
  }
});

test('memory_limit is applied: the memory DuckDB reports stays under it while it stores 800 000 records and answers', async () => {
  const store = new DuckDbAccessStore({ path: tempFile(), memoryLimit: '24MB' });
  await store.open();
  try {
    const before = await store.memoryBytes();
    for (const batch of viewerTraffic({ stream: 'alpha', viewers: 4000, from: T0, durationMs: 100_000, batchSize: 5000 })) await store.insert(batch);
    assert.deepEqual((await store.viewersNow(new Date(T0 + 100_000), 30_000)).get('alpha'), { ips: 4000, sessions: 4000 });
    const after = await store.memoryBytes();
    // Measured with the same data: 35 MiB under a 2GB limit, 18.8 MiB under 32MB.
    console.log(`DuckDB memory with memory_limit 24MB: ${(before / 2 ** 20).toFixed(1)} MiB open, ${(after / 2 ** 20).toFixed(1)} MiB after 800 000 records and a query`);
    assert.ok(after > 0, 'DuckDB reports its memory');
    assert.ok(after <= 24 * 1000 * 1000, `DuckDB holds ${after} bytes, over its 24MB limit`);
  } finally {
    await store.close();
  }
});
