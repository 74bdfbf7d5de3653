import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../common/testing/processes.ts';
import { accessRecords, DATA_BODY, get, listBackends, startProxy, stateOf, TestBackend, waitForState, withLogs, type RunningProxy } from './helpers.ts';

const TOKEN = 'test-ops-token-1';

describe('routing, headers and access records', () => {
  let a: TestBackend;
  let b: TestBackend;
  let monitoring: TestBackend;
  let proxy: RunningProxy | undefined;

  before(async () => {
    a = await TestBackend.start('a');
    b = await TestBackend.start('b');
    monitoring = await TestBackend.start('monitoring');
    monitoring.server.on('upgrade', (req, socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (chunk: Buffer) => socket.write(`echo:${chunk.toString()}:${req.headers['x-forwarded-for']}`));
      socket.on('end', () => socket.end());
      socket.on('error', () => {});
    });
    proxy = await startProxy({ BACKENDS: `${a.url},${b.url}`, OPS_TOKEN: TOKEN, MONITORING_URL: monitoring.url, INSTANCE: 'proxy-test-1' });
    await waitForState(proxy, a, 'healthy');
    await waitForState(proxy, b, 'healthy');
  });

  after(async () => {
    await proxy?.stop();
    await Promise.all([a?.kill(), b?.kill(), monitoring?.kill()]);
  });

  test('spreads requests over the healthy backends', withLogs(() => proxy, async () => {
    const before = [a.count, b.count];
    for (let i = 0; i < 20; i++) {
      const res = await get(`${proxy!.url}/live/demo/seg${i}.ts`);
      assert.equal(res.status, 200);
      assert.equal(res.body, DATA_BODY.toString());
    }
    const got = [a.count - before[0]!, b.count - before[1]!];
    assert.equal(got[0]! + got[1]!, 20);
    // Sequential requests: every backend has 0 in flight, so ties rotate.
    assert.ok(Math.abs(got[0]! - got[1]!) <= 2, `uneven spread ${got}`);
  }));

  test('concurrent requests are all served, spread over both', withLogs(() => proxy, async () => {
    const before = [a.count, b.count];
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => get(`${proxy!.url}/live/demo/c${i}.ts`)));
    assert.ok(results.every((r) => r.status === 200 && r.body.length === DATA_BODY.length));
    assert.ok(a.count - before[0]! > 5 && b.count - before[1]! > 5, `spread ${a.count - before[0]!}/${b.count - before[1]!}`);
  }));

  test('X-Forwarded-For is overwritten with the TCP peer; proto/host set; query kept', withLogs(() => proxy, async () => {
    const res = await get(`${proxy!.url}/echo/path?x=1&y=2`, { 'x-forwarded-for': '6.6.6.6, 7.7.7.7', forwarded: 'for=6.6.6.6', 'x-real-ip': '6.6.6.6' });
    assert.equal(res.status, 200);
    const echo = JSON.parse(res.body) as { url: string; headers: Record<string, string> };
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echo.headers['x-forwarded-proto'], 'http');
    assert.equal(echo.headers['x-forwarded-host'], `127.0.0.1:${proxy!.port}`);
    assert.equal(echo.headers.forwarded, undefined);
    assert.equal(echo.headers['x-real-ip'], undefined);
    assert.equal(echo.headers.connection, 'keep-alive', 'upstream connections are kept alive');
    assert.equal(echo.url, '/echo/path?x=1&y=2');
  }));

  test('X-Request-Id: a valid one is kept, anything else replaced; always returned', withLogs(() => proxy, async () => {
    const kept = await get(`${proxy!.url}/echo`, { 'x-request-id': 'trace-abc.1_2' });
    assert.equal(kept.headers.get('x-request-id'), 'trace-abc.1_2');
    assert.equal((JSON.parse(kept.body) as { headers: Record<string, string> }).headers['x-request-id'], 'trace-abc.1_2');

    const replaced = await get(`${proxy!.url}/echo`, { 'x-request-id': 'no spaces allowed!' });
    const id = replaced.headers.get('x-request-id')!;
    assert.match(id, /^[A-Za-z0-9._-]{1,64}$/);
    assert.notEqual(id, 'no spaces allowed!');
    assert.equal((JSON.parse(replaced.body) as { headers: Record<string, string> }).headers['x-request-id'], id);

    const tooLong = await get(`${proxy!.url}/echo`, { 'x-request-id': 'x'.repeat(65) });
    assert.notEqual(tooLong.headers.get('x-request-id'), 'x'.repeat(65));

    const generated = await get(`${proxy!.url}/echo`);
    assert.match(generated.headers.get('x-request-id') ?? '', /^[A-Za-z0-9._-]{1,64}$/);
  }));

  test('one access record per proxied request, none for ops endpoints', withLogs(() => proxy, async () => {
    const id = `access-${Date.now()}`;
    await get(`${proxy!.url}/live/demo/seg42.ts?token=secret`, { 'x-request-id': id, 'user-agent': 'test-agent/1.0' });
    await get(`${proxy!.url}/healthz`, { 'x-request-id': `${id}-ops` });
    await get(`${proxy!.url}/metrics`, { 'x-request-id': `${id}-ops` });
    await get(`${proxy!.url}/readyz`, { 'x-request-id': `${id}-ops` });
    const headId = `${id}-head`;
    const head = await fetch(`${proxy!.url}/live/demo/index.m3u8`, { method: 'HEAD', headers: { 'x-request-id': headId } });
    assert.equal(head.status, 200);
    const record = await waitFor('the access record', () => accessRecords(proxy!).find((r) => r.request_id === id));
    assert.deepEqual(
      { ...record, '@timestamp': undefined, duration_ms: undefined, backend: undefined, record_id: undefined },
      {
        '@timestamp': undefined,
        stream: 'demo',
        kind: 'segment',
        client_ip: '127.0.0.1',
        method: 'GET',
        path: '/live/demo/seg42.ts',
        status: 200,
        bytes: DATA_BODY.length,
        duration_ms: undefined,
        tier: 'proxy',
        instance: 'proxy-test-1',
        user_agent: 'test-agent/1.0',
        session_id: null,
        record_id: undefined,
        backend: undefined,
        request_id: id,
        refusal: null,
      },
    );
    assert.ok([a.url, b.url].includes(record.backend as string), `backend ${record.backend}`);
    assert.match(record.record_id as string, /^proxy-test-1-[0-9a-f]{12}-\d+$/);
    assert.equal(typeof record.duration_ms, 'number');
    assert.ok(!Number.isNaN(Date.parse(record['@timestamp'] as string)));
    const headRecord = await waitFor('the HEAD record', () => accessRecords(proxy!).find((r) => r.request_id === headId));
    assert.equal(headRecord.kind, 'playlist');
    assert.equal(headRecord.bytes, 0);
    assert.equal(accessRecords(proxy!).filter((r) => r.request_id === id).length, 1);
    const ids = accessRecords(proxy!).map((r) => r.record_id);
    assert.equal(new Set(ids).size, ids.length, 'record ids are unique');
    assert.equal(accessRecords(proxy!).filter((r) => String(r.request_id).endsWith('-ops')).length, 0);
    assert.equal(accessRecords(proxy!).filter((r) => ['/healthz', '/readyz', '/metrics'].includes(r.path as string)).length, 0);
  }));

  test('/api and /monitor go to the monitoring upstream, including WebSocket upgrades', withLogs(() => proxy, async () => {
    await waitFor('monitoring healthy', async () => (await get(`${proxy!.url}/api/streams`)).status === 200);
    const before = [monitoring.count, a.count + b.count];
    assert.equal((await get(`${proxy!.url}/api/streams`)).status, 200);
    assert.equal((await get(`${proxy!.url}/monitor`)).status, 200);
    assert.equal((await get(`${proxy!.url}/live/demo/index.m3u8`)).status, 200);
    assert.equal(monitoring.count - before[0]!, 2);
    assert.equal(a.count + b.count - before[1]!, 1);
    assert.ok(monitoring.hits.includes('/api/streams'));

    const req = http.request({ host: '127.0.0.1', port: proxy!.port, path: '/monitor/ws', headers: { connection: 'Upgrade', upgrade: 'websocket', 'x-forwarded-for': '9.9.9.9' } });
    req.end();
    const [res, socket] = (await once(req, 'upgrade')) as [http.IncomingMessage, import('node:net').Socket];
    assert.equal(res.statusCode, 101);
    socket.write('ping');
    const [reply] = (await once(socket, 'data')) as [Buffer];
    assert.equal(reply.toString(), 'echo:ping:127.0.0.1');
    socket.destroy();
  }));

  test('the admin API lists backends with totals', withLogs(() => proxy, async () => {
    const list = await listBackends(proxy!);
    assert.deepEqual(list.map((x) => x.url).sort(), [a.url, b.url].sort());
    for (const x of list) {
      assert.equal(x.state, 'healthy');
      assert.equal(x.inFlight, 0);
      assert.ok(x.requests > 0);
      assert.equal(typeof x.errors.refused, 'number');
    }
  }));
});

describe('health checks', () => {
  let a: TestBackend;
  let b: TestBackend;
  let c: TestBackend;
  let proxy: RunningProxy | undefined;

  before(async () => {
    a = await TestBackend.start('a');
    b = await TestBackend.start('b');
    c = await TestBackend.start('c');
    c.ready = false;
    proxy = await startProxy({ BACKENDS: `${a.url},${b.url},${c.url}`, OPS_TOKEN: TOKEN, UNHEALTHY_THRESHOLD: '2', HEALTHY_THRESHOLD: '1' });
    await waitForState(proxy, a, 'healthy');
    await waitForState(proxy, b, 'healthy');
  });

  after(async () => {
    await proxy?.stop();
    await Promise.all([a?.kill(), b?.kill(), c?.kill()]);
  });

  test('a backend not ready gets no traffic until /readyz passes', withLogs(() => proxy, async () => {
    await waitFor('c checked at least twice', () => c.readyzHits >= 2);
    assert.notEqual(await stateOf(proxy!, c), 'healthy');
    for (let i = 0; i < 20; i++) assert.equal((await get(`${proxy!.url}/live/demo/p${i}.ts`)).status, 200);
    assert.equal(c.count, 0, 'no request reached the backend that is not ready');
    c.ready = true;
    await waitForState(proxy!, c, 'healthy');
    await waitFor('c to receive traffic', async () => {
      await get(`${proxy!.url}/live/demo/q.ts`);
      return c.count > 0;
    });
  }));

  test('a backend turns unhealthy after UNHEALTHY_THRESHOLD failed checks and gets no traffic', withLogs(() => proxy, async () => {
    await waitForState(proxy!, b, 'healthy');
    const hitsAtFlip = b.readyzHits;
    b.ready = false;
    await waitForState(proxy!, b, 'unhealthy');
    assert.ok(b.readyzHits - hitsAtFlip >= 2, `unhealthy after ${b.readyzHits - hitsAtFlip} check(s), threshold is 2`);
    const before = b.count;
    for (let i = 0; i < 20; i++) assert.equal((await get(`${proxy!.url}/live/demo/u${i}.ts`)).status, 200);
    assert.equal(b.count, before, 'the unhealthy backend got no request');
    b.ready = true;
    await waitForState(proxy!, b, 'healthy');
  }));

  test('no healthy backend → 503 with a body and Retry-After; /readyz not ready', withLogs(() => proxy, async () => {
    for (const x of [a, b, c]) x.ready = false;
    await waitFor('all unhealthy', async () => (await listBackends(proxy!)).every((x) => x.state === 'unhealthy'));
    const res = await get(`${proxy!.url}/live/demo/index.m3u8`);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.match(res.body, /no backend available/);
    assert.ok(res.headers.get('x-request-id'));
    const ready = await get(`${proxy!.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(ready.body, /no healthy backend/);
    for (const x of [a, b, c]) x.ready = true;
    await waitFor('ready again', async () => (await get(`${proxy!.url}/readyz`)).status === 200);
  }));
});
