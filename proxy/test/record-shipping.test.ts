import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ProxyAccessRecord } from '../src/access-log.ts';
import { makeTempDir, waitFor } from '../../common/testing/processes.ts';
import { TestReceiver } from '../../common/testing/receiver.ts';
import { get, metricValue, startProxy, TestBackend, withLogs, type RunningProxy } from './helpers.ts';

/**
 * The real proxy with FLUENT_HOST pointing at the test receiver (a separate process): records
 * arrive with session_id from CMCD (query or header), unique record ids, a path without query,
 * and the query string reaches the backend untouched.
 */
describe('proxy ships access records to a Fluent receiver', () => {
  let tmp: Awaited<ReturnType<typeof makeTempDir>>;
  let receiver: TestReceiver;
  let backend: TestBackend;
  let proxy: RunningProxy | undefined;

  before(async () => {
    tmp = await makeTempDir('proxy-records');
    receiver = await TestReceiver.create(tmp.dir);
    await receiver.start();
    backend = await TestBackend.start('a');
    proxy = await startProxy({
      BACKENDS: backend.url,
      INSTANCE: 'proxy-ship',
      FLUENT_HOST: '127.0.0.1',
      FLUENT_PORT: String(receiver.port),
      SPOOL_DIR: path.join(tmp.dir, 'spool'),
    });
    await waitFor('proxy ready', async () => (await fetch(`${proxy!.url}/readyz`)).status === 200);
  });

  after(async () => {
    await proxy?.stop();
    await backend?.kill();
    await receiver?.stop();
    await tmp?.remove();
  });

  test('session_id from the CMCD query and header; unique record_id; query passed through to the backend', withLogs(() => proxy, async () => {
    const sid = 'a7c3e1d2-0000-4000-8000-000000000001';
    const query = `CMCD=${encodeURIComponent(`bl=1000,br=2500,sid="${sid}",sf=h`)}`;
    const hitsBefore = backend.hits.length;
    for (let i = 0; i < 3; i++) assert.equal((await get(`${proxy!.url}/live/demo/r1-${i}.m4s?${query}`)).status, 200);
    assert.equal((await get(`${proxy!.url}/live/demo/index.m3u8`, { 'CMCD-Session': 'sid="hdr-7"' })).status, 200);
    assert.equal((await get(`${proxy!.url}/live/demo/index.m3u8`)).status, 200);
    // Segments and playlists reach the backend through the proxy's caches, one shared fill per path:
    // without the viewer's query (the cache key is the path). Other requests are relayed with it.
    assert.deepEqual(backend.hits.slice(hitsBefore, hitsBefore + 3), [0, 1, 2].map((i) => `/live/demo/r1-${i}.m4s`), 'segments: filled by path');
    assert.ok(backend.hits.slice(hitsBefore).every((hit) => !hit.startsWith('/live/demo/index.m3u8?')), 'playlists: filled by path');
    assert.equal((await get(`${proxy!.url}/live/demo/index.m3u8?${query}`)).status, 200);
    assert.equal((await get(`${proxy!.url}/watch/demo?${query}`)).status, 200);
    assert.equal(backend.hits.at(-1), `/watch/demo?${query}`, 'relayed requests: the backend sees the query string');

    const records = await waitFor('6 proxy records at the receiver', async () => {
      const found = (await receiver.entries()).map((e) => e.record as unknown as ProxyAccessRecord).filter((r) => r.instance === 'proxy-ship' && r.path.startsWith('/live/demo/'));
      return found.length >= 6 && found;
    });
    const segments = records.filter((r) => r.kind === 'segment');
    assert.deepEqual(segments.map((r) => r.session_id), [sid, sid, sid]);
    assert.deepEqual(segments.map((r) => r.path).sort(), ['/live/demo/r1-0.m4s', '/live/demo/r1-1.m4s', '/live/demo/r1-2.m4s']);
    assert.deepEqual(records.filter((r) => r.kind === 'playlist').map((r) => r.session_id).sort(), ['hdr-7', null, sid].sort());
    for (const record of records) {
      assert.equal(record.tier, 'proxy');
      assert.ok(record.backend === backend.url || record.backend === 'cache', `backend ${record.backend}: the replica, or the proxy's cache`);
      assert.match(record.record_id, /^proxy-ship-[0-9a-f]{12}-\d+$/);
      assert.ok(record.request_id);
    }
    assert.equal(new Set(records.map((r) => r.record_id)).size, records.length);
    await waitFor('acknowledged', async () => (await metricValue(proxy!, 'onair_records_acked_total')) >= 6);
    assert.equal(await metricValue(proxy!, 'onair_records_receiver_up'), 1);
  }));

  test('receiver down: the proxy stays ready and keeps serving; records wait and arrive after it returns', withLogs(() => proxy, async () => {
    await receiver.kill();
    await waitFor('receiver down noticed', async () => (await metricValue(proxy!, 'onair_records_receiver_up')) === 0);
    const query = `CMCD=${encodeURIComponent('sid="while-down"')}`;
    for (let i = 0; i < 10; i++) assert.equal((await get(`${proxy!.url}/live/demo/d${i}.m4s?${query}`)).status, 200);
    assert.equal((await fetch(`${proxy!.url}/readyz`)).status, 200);
    await waitFor('10 records queued', async () => (await metricValue(proxy!, 'onair_records_queued')) === 10);
    await receiver.start();
    await waitFor('records from the outage delivered', async () => {
      const down = (await receiver.entries()).filter((e) => e.record.session_id === 'while-down');
      return new Set(down.map((e) => e.record.record_id)).size === 10;
    }, 20_000);
    await waitFor('queue empty', async () => (await metricValue(proxy!, 'onair_records_queued')) === 0);
  }));
});
