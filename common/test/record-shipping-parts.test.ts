import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Fifo } from '../src/record-shipping/fifo.ts';
import { createRecordIds } from '../src/record-shipping/record-id.ts';
import { defaultSpoolDir, recordShippingConfig, recordShippingEnv } from '../src/record-shipping/config.ts';
import { parseEnv } from '../src/config.ts';
import { z } from 'zod';

describe('record ids', () => {
  it('are <instance>-<boot id>-<sequence>, unique within and across process starts', () => {
    const a = createRecordIds('web-1');
    const b = createRecordIds('web-1');
    assert.match(a.bootId, /^[0-9a-f]{12}$/);
    assert.notEqual(a.bootId, b.bootId);
    const first = a.next();
    assert.equal(first, `web-1-${a.bootId}-0`);
    assert.equal(a.next(), `web-1-${a.bootId}-1`);
    const seen = new Set([first]);
    for (let i = 0; i < 10_000; i++) seen.add(a.next());
    for (let i = 0; i < 10_000; i++) seen.add(b.next());
    assert.equal(seen.size, 20_001);
  });
});

describe('Fifo', () => {
  it('keeps order through pushes, batch takes, retain and compaction', () => {
    const fifo = new Fifo<number>();
    for (let i = 0; i < 10_000; i++) fifo.push(i);
    assert.deepEqual(fifo.take(3), [0, 1, 2]);
    const taken: number[] = [];
    while (fifo.length > 100) taken.push(...fifo.take(499));
    assert.deepEqual(taken, Array.from({ length: 9_980 }, (_, i) => i + 3));
    assert.equal(fifo.length, 17); // 9983 … 9999
    fifo.push(-1);
    assert.equal(fifo.retain((n) => n % 2 === 0), 10);
    assert.deepEqual(fifo.drain(), [9_984, 9_986, 9_988, 9_990, 9_992, 9_994, 9_996, 9_998]);
    assert.equal(fifo.length, 0);
    assert.deepEqual(fifo.take(5), []);
  });
});

describe('record shipping configuration', () => {
  const schema = z.object(recordShippingEnv);
  it('is off without FLUENT_HOST (also when empty)', () => {
    assert.equal(recordShippingConfig(parseEnv('t', schema, {}), 'web-1'), null);
    assert.equal(recordShippingConfig(parseEnv('t', schema, { FLUENT_HOST: ' ' }), 'web-1'), null);
  });
  it('defaults the spool to DATA_DIR/spool/<instance>, port 24224', () => {
    const config = recordShippingConfig(parseEnv('t', schema, { FLUENT_HOST: 'fluentd', DATA_DIR: '/data' }), 'web-1');
    assert.deepEqual(config, { host: 'fluentd', port: 24224, spoolDir: '/data/spool/web-1', maxQueuedRecords: 20_000, maxSpoolBytes: 1024 * 1024 * 1024 });
    const custom = recordShippingConfig(parseEnv('t', schema, { FLUENT_HOST: 'h', FLUENT_PORT: '9999', SPOOL_DIR: 'rel/spool', RECORD_QUEUE_MAX: '5', SPOOL_MAX_MB: '2' }), 'x');
    assert.deepEqual(custom, { host: 'h', port: 9999, spoolDir: path.resolve('rel/spool'), maxQueuedRecords: 5, maxSpoolBytes: 2 * 1024 * 1024 });
  });
  it('makes instance names safe as folder names', () => {
    assert.equal(defaultSpoolDir('/d', 'web/../../etc'), '/d/spool/web_.._.._etc');
    assert.equal(defaultSpoolDir('/d', '..'), '/d/spool/_');
  });
  it('refuses a bad port', () => {
    assert.throws(() => parseEnv('t', schema, { FLUENT_PORT: 'abc' }), /FLUENT_PORT/);
  });
});
