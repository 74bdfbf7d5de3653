import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { AccessRecord } from '../../common/src/access-record.ts';
import type { LiveStream } from '../../common/src/live-state.ts';
import { metricValue, scrapeMetrics } from '../../common/testing/metrics.ts';
import { freePort, makeTempDir, startService, waitFor, waitForHttpOk, type ManagedProcess } from '../../common/testing/processes.ts';
import { TestReceiver } from '../../common/testing/receiver.ts';
import { keepLiveStateFresh, liveStream, writeLiveState, writeStreamFiles } from './fixtures.ts';

/**
 * The real web service with FLUENT_HOST pointing at the test receiver (a separate process):
 * records arrive over the forward protocol with session_id (CMCD query or header) and a unique
 * record_id, the log line stays, the query string changes neither the file served nor the cache,
 * readiness ignores the receiver, and a shutdown with the receiver down spills to SPOOL_DIR.
 */

const SID = '6e2fb550-c457-11e9-bb97-0800200c9a66';
const cmcdQuery = (sid: string): string => `CMCD=${encodeURIComponent(`bl=21300,br=3200,cid="demo",sid="${sid}",sf=h,st=l`)}`;

async function metric(base: string, name: string): Promise<number> {
  return metricValue(await scrapeMetrics(base), name);
}

describe('web ships access records to a Fluent receiver', () => {
  let tmp: Awaited<ReturnType<typeof makeTempDir>>;
  let receiver: TestReceiver;
  let files: Map<string, Buffer>;
  let web: ManagedProcess | undefined;
  let base: string;
  let heartbeat: { stop: () => void } | undefined;
  const liveNow: LiveStream[] = [liveStream('demo')];
  const extra: ManagedProcess[] = [];

  before(async () => {
    tmp = await makeTempDir('web-records');
    const mediaDir = path.join(tmp.dir, 'media');
    files = await writeStreamFiles(mediaDir, 'demo', 'r1', 3);
    await writeLiveState(mediaDir, liveNow);
    heartbeat = keepLiveStateFresh(mediaDir, () => liveNow);
    receiver = await TestReceiver.create(tmp.dir);
    await receiver.start();
    const port = await freePort();
    web = startService('web', {
      WEB_PORT: String(port),
      WEB_HOST: '127.0.0.1',
      MEDIA_DIR: mediaDir,
      INSTANCE: 'web-ship',
      FLUENT_HOST: '127.0.0.1',
      FLUENT_PORT: String(receiver.port),
      SPOOL_DIR: path.join(tmp.dir, 'spool-web'),
    });
    base = `http://127.0.0.1:${port}`;
    await waitForHttpOk(`${base}/readyz`);
  });

  afterEach((t) => {
    const context = t as { passed?: boolean; diagnostic?: (message: string) => void };
    if (context.passed === false) context.diagnostic?.(`${web?.tail(40)}\n${receiver.tail()}`);
  });

  after(async () => {
    heartbeat?.stop();
    for (const proc of extra) await proc.stop();
    await web?.stop();
    await receiver?.stop();
    await tmp?.remove();
  });

  it('records carry session_id from the CMCD query or header, a unique record_id, and a path without query', async () => {
    const playlist = await fetch(`${base}/live/demo/index.m3u8?${cmcdQuery(SID)}`);
    assert.equal(playlist.status, 200);
    assert.equal(await playlist.text(), files.get('index.m3u8')!.toString());

    // The query string is not part of the file name nor of the cache key: the second request is a hit.
    const hitsBefore = await metric(base, 'web_segment_cache_hits_total');
    for (let i = 0; i < 2; i++) {
      const segment = await fetch(`${base}/live/demo/r1-0.m4s?${cmcdQuery(SID)}`);
      assert.equal(segment.status, 200);
      assert.ok(Buffer.from(await segment.arrayBuffer()).equals(files.get('r1-0.m4s')!));
    }
    assert.ok((await metric(base, 'web_segment_cache_hits_total')) > hitsBefore, 'a query string must not defeat the segment cache');

    const header = await fetch(`${base}/live/demo/r1-1.m4s`, { headers: { 'CMCD-Session': 'cid="demo",sid="header-session-2"' } });
    assert.equal(header.status, 200);
    await header.arrayBuffer();
    assert.equal((await fetch(`${base}/live/demo/r1-2.m4s?CMCD=sid%3Dunquoted`)).status, 200);
    assert.equal((await fetch(`${base}/watch/demo`)).status, 200);

    const received = await waitFor('6 web records at the receiver', async () => {
      const entries = (await receiver.entries()).filter((e) => e.record.instance === 'web-ship');
      return entries.length >= 6 && entries;
    });
    const records = received.map((e) => e.record as unknown as AccessRecord);
    const byPath = (p: string): AccessRecord[] => records.filter((r) => r.path === p);
    assert.equal(byPath('/live/demo/index.m3u8')[0]?.session_id, SID);
    assert.deepEqual(byPath('/live/demo/r1-0.m4s').map((r) => r.session_id), [SID, SID]);
    assert.equal(byPath('/live/demo/r1-1.m4s')[0]?.session_id, 'header-session-2');
    assert.equal(byPath('/live/demo/r1-2.m4s')[0]?.session_id, null, 'an unquoted sid is not a session id');
    assert.equal(byPath('/watch/demo')[0]?.session_id, null);
    for (const record of records) {
      assert.ok(!record.path.includes('?'), record.path);
      assert.match(record.record_id, /^web-ship-[0-9a-f]{12}-\d+$/);
      assert.equal(record.tier, 'web');
    }
    assert.equal(new Set(records.map((r) => r.record_id)).size, records.length, 'record ids are unique');
    assert.ok(received.every((e) => e.tag === 'onair.access'));

    // Ops still read every record on stdout, with the same ids.
    // The receiver can see a record before this process has read the child's stdout pipe: wait for it.
    const loggedIds = (): Set<unknown> => new Set(web!.jsonLogs().filter((l) => l.msg === 'access').map((l) => (l.access as AccessRecord).record_id));
    await waitFor('every shipped record in the log', () => records.every((r) => loggedIds().has(r.record_id)));
    const logged = loggedIds();
    for (const record of records) assert.ok(logged.has(record.record_id), `${record.record_id} not in the log`);
    await waitFor('acknowledged', async () => (await metric(base, 'onair_records_acked_total')) >= 6);
    assert.equal(await metric(base, 'onair_records_receiver_up'), 1);
  });

  it('readiness ignores the receiver; a shutdown with the receiver down spills records to SPOOL_DIR', async () => {
    const closedPort = await freePort(); // nothing listens there
    const port = await freePort();
    const spoolDir = path.join(tmp.dir, 'spool-down');
    const proc = startService('web', {
      WEB_PORT: String(port),
      WEB_HOST: '127.0.0.1',
      MEDIA_DIR: path.join(tmp.dir, 'media'),
      INSTANCE: 'web-down',
      FLUENT_HOST: '127.0.0.1',
      FLUENT_PORT: String(closedPort),
      SPOOL_DIR: spoolDir,
    });
    extra.push(proc);
    const url = `http://127.0.0.1:${port}`;
    await waitForHttpOk(`${url}/readyz`); // ready although the receiver is unreachable
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`${url}/live/demo/r1-${i % 3}.m4s?${cmcdQuery(`s-${i}`)}`)).status, 200);
    await waitFor('5 records queued in memory', async () => (await metric(url, 'onair_records_queued')) === 5);
    assert.equal(await metric(url, 'onair_records_receiver_up'), 0);
    const exit = await proc.stop();
    assert.equal(exit.code, 0, proc.tail());
    const names = (await readdir(spoolDir)).filter((n) => n.endsWith('.ndjson'));
    const spooled: AccessRecord[] = [];
    for (const name of names) for (const line of (await readFile(path.join(spoolDir, name), 'utf8')).split('\n')) if (line) spooled.push(JSON.parse(line) as AccessRecord);
    assert.deepEqual(spooled.map((r) => r.session_id).sort(), ['s-0', 's-1', 's-2', 's-3', 's-4']);
    assert.ok(proc.jsonLogs().some((l) => l.msg === 'record shipping stopped'));
  });
});
