import assert from 'node:assert/strict';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir, waitFor } from '../../common/testing/processes.ts';
import { DATA_BODY, get, listBackends, startProxy, stateOf, TestBackend, waitForState, withLogs, type RunningProxy } from './helpers.ts';

const TOKEN = 'test-ops-token-3';

async function admin(proxy: RunningProxy, method: string, pathAndQuery: string, body?: string, token: string | null = TOKEN): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${proxy.url}${pathAndQuery}`, { method, headers, body, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

describe('admin API', () => {
  let a: TestBackend;
  let b: TestBackend;
  let c: TestBackend;
  let proxy: RunningProxy | undefined;
  let noToken: RunningProxy | undefined;

  before(async () => {
    [a, b, c] = await Promise.all([TestBackend.start('a'), TestBackend.start('b'), TestBackend.start('c')]);
    proxy = await startProxy({ BACKENDS: a.url, OPS_TOKEN: TOKEN });
    await waitForState(proxy, a, 'healthy');
  });

  after(async () => {
    await Promise.all([proxy?.stop(), noToken?.stop()]);
    await Promise.all([a?.kill(), b?.kill(), c?.kill()]);
  });

  test('401 without a token or with a wrong one; 403 when OPS_TOKEN is unset', withLogs(() => proxy, async () => {
    for (const token of [null, 'wrong', `${TOKEN}x`, '']) {
      const res = await admin(proxy!, 'GET', '/admin/backends', undefined, token);
      assert.equal(res.status, 401, `token ${token}`);
      assert.match(String(res.json.error), /token/);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
    }
    const basic = await fetch(`${proxy!.url}/admin/backends`, { headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } });
    assert.equal(basic.status, 401);
    await basic.text();
    assert.equal((await admin(proxy!, 'POST', '/admin/backends', JSON.stringify({ url: c.url }), 'wrong')).status, 401);
    assert.equal(await stateOf(proxy!, c), undefined, 'nothing added without authorization');

    noToken = await startProxy({ BACKENDS: a.url }, 'proxy-no-token');
    const disabled = await admin(noToken, 'GET', '/admin/backends', undefined, 'anything');
    assert.equal(disabled.status, 403);
    assert.match(String(disabled.json.error), /OPS_TOKEN/);
    const upstreamHits = a.count;
    assert.equal((await admin(noToken, 'GET', '/admin/other')).status, 403, '/admin is never forwarded');
    assert.equal(a.count, upstreamHits);
  }));

  test('validation: bad JSON, bad URL, unknown backend, wrong method', withLogs(() => proxy, async () => {
    const badJson = await admin(proxy!, 'POST', '/admin/backends', '{"url": ');
    assert.equal(badJson.status, 400);
    assert.match(String(badJson.json.error), /not valid JSON/);
    const noUrl = await admin(proxy!, 'POST', '/admin/backends', '{"address": "http://127.0.0.1:1"}');
    assert.equal(noUrl.status, 400);
    assert.match(String(noUrl.json.error), /url/);
    const badUrl = await admin(proxy!, 'POST', '/admin/backends', JSON.stringify({ url: 'ftp://127.0.0.1:1' }));
    assert.equal(badUrl.status, 400);
    assert.match(String(badUrl.json.error), /http/);
    assert.equal((await admin(proxy!, 'POST', '/admin/backends/drain', JSON.stringify({ url: 'http://127.0.0.1:9' }))).status, 404);
    assert.equal((await admin(proxy!, 'DELETE', '/admin/backends?url=http%3A%2F%2F127.0.0.1%3A9')).status, 404);
    assert.equal((await admin(proxy!, 'DELETE', '/admin/backends')).status, 400);
    assert.equal((await admin(proxy!, 'PUT', '/admin/backends', '{}')).status, 405);
    assert.equal((await admin(proxy!, 'GET', '/admin/nothing')).status, 404);
  }));

  test('add: pending until /readyz passes, then takes traffic', withLogs(() => proxy, async () => {
    b.ready = false;
    const added = await admin(proxy!, 'POST', '/admin/backends', JSON.stringify({ url: `${b.url}/` }));
    assert.equal(added.status, 201);
    assert.equal((added.json.backend as { state: string; url: string }).state, 'pending');
    assert.equal((added.json.backend as { url: string }).url, b.url);
    await waitFor('b checked', () => b.readyzHits >= 1);
    for (let i = 0; i < 10; i++) assert.equal((await get(`${proxy!.url}/live/demo/x${i}.ts`)).status, 200);
    assert.equal(b.count, 0, 'pending backend got no traffic');
    b.ready = true;
    await waitForState(proxy!, b, 'healthy');
    const before = b.count;
    for (let i = 0; i < 10; i++) assert.equal((await get(`${proxy!.url}/live/demo/y${i}.ts`)).status, 200);
    assert.ok(b.count - before >= 4, `b got ${b.count - before} of 10`);
    assert.equal((await admin(proxy!, 'POST', '/admin/backends', JSON.stringify({ url: b.url }))).status, 200, 'adding again is idempotent');
  }));

  test('drain: no new requests, the in-flight one finishes, then the backend is removed', withLogs(() => proxy, async () => {
    await waitForState(proxy!, b, 'healthy');
    const slow = get(`${proxy!.url}/slow?ms=1500`, { 'x-request-id': 'drain-slow' });
    await waitFor('the slow request at a backend', () => a.slowInFlight + b.slowInFlight === 1);
    const [busy, other] = a.slowInFlight === 1 ? [a, b] : [b, a];
    const drained = await admin(proxy!, 'POST', '/admin/backends/drain', JSON.stringify({ url: busy.url }));
    assert.equal(drained.status, 202);
    assert.equal((drained.json.backend as { state: string }).state, 'draining');
    assert.equal((drained.json.backend as { inFlight: number }).inFlight, 1);
    const busyBefore = busy.count;
    for (let i = 0; i < 10; i++) assert.equal((await get(`${proxy!.url}/live/demo/z${i}.ts`)).status, 200);
    assert.equal(busy.count, busyBefore, 'draining backend got no new request');
    assert.ok(other.count > 0);
    assert.equal(await stateOf(proxy!, busy), 'draining', 'still draining while its request is in flight');
    const res = await slow;
    assert.equal(res.status, 200);
    assert.equal(res.body, DATA_BODY.toString(), 'the in-flight request finished completely');
    assert.equal(res.headers.get('x-backend'), busy.name);
    await waitFor('the drained backend removed', async () => (await stateOf(proxy!, busy)) === undefined);
    // Put it back for the next test.
    assert.equal((await admin(proxy!, 'POST', '/admin/backends', JSON.stringify({ url: busy.url }))).status, 201);
    await waitForState(proxy!, busy, 'healthy');
  }));

  test('delete: removed at once', withLogs(() => proxy, async () => {
    const res = await admin(proxy!, 'DELETE', `/admin/backends?url=${encodeURIComponent(b.url)}`);
    assert.equal(res.status, 200);
    assert.equal(res.json.removed, b.url);
    assert.deepEqual((await listBackends(proxy!)).map((x) => x.url), [a.url]);
    const before = b.count;
    for (let i = 0; i < 6; i++) assert.equal((await get(`${proxy!.url}/live/demo/w${i}.ts`)).status, 200);
    assert.equal(b.count, before);
    assert.equal((await admin(proxy!, 'DELETE', `/admin/backends?url=${encodeURIComponent(b.url)}`)).status, 404);
  }));
});

describe('BACKENDS_FILE', () => {
  let a: TestBackend;
  let b: TestBackend;
  let c: TestBackend;
  let proxy: RunningProxy | undefined;
  let tmp: { dir: string; remove: () => Promise<void> } | undefined;

  before(async () => {
    [a, b, c] = await Promise.all([TestBackend.start('a'), TestBackend.start('b'), TestBackend.start('c')]);
    tmp = await makeTempDir('proxy-backends');
  });

  after(async () => {
    await proxy?.stop();
    await Promise.all([a?.kill(), b?.kill(), c?.kill()]);
    await tmp?.remove();
  });

  test('changes to the file are picked up: new entries added, missing ones drained', withLogs(() => proxy, async () => {
    const file = path.join(tmp!.dir, 'backends.txt');
    await writeFile(file, `# web replicas\n${a.url}\n`);
    proxy = await startProxy({ BACKENDS_FILE: file, OPS_TOKEN: TOKEN, BACKENDS_FILE_POLL_MS: '500' });
    await waitForState(proxy, a, 'healthy');
    assert.deepEqual((await listBackends(proxy)).map((x) => x.url), [a.url], 'BACKENDS unset + BACKENDS_FILE → only the file');

    // In-place rewrite (fs.watch or the re-read picks it up).
    await writeFile(file, JSON.stringify([b.url, c.url]));
    await waitForState(proxy, b, 'healthy');
    await waitForState(proxy, c, 'healthy');
    await waitFor('a drained and removed', async () => (await stateOf(proxy!, a)) === undefined);

    // An invalid file changes nothing.
    await writeFile(file, `${b.url}\nnot a url\n`);
    await waitFor('the bad file to be reported', () => proxy!.proc.jsonLogs().some((l) => l.msg === 'backends file rejected; keeping the current backends'));
    assert.deepEqual((await listBackends(proxy)).map((x) => x.url).sort(), [b.url, c.url].sort());

    // Atomic replacement by rename, JSON object form.
    const tmpFile = path.join(tmp!.dir, '.backends.tmp');
    await writeFile(tmpFile, JSON.stringify({ backends: [a.url, b.url] }));
    await rename(tmpFile, file);
    await waitForState(proxy, a, 'healthy');
    await waitFor('c drained and removed', async () => (await stateOf(proxy!, c)) === undefined);
    assert.deepEqual((await listBackends(proxy)).map((x) => x.url).sort(), [a.url, b.url].sort());
    assert.equal((await get(`${proxy.url}/live/demo/f.ts`)).status, 200);
  }));
});

describe('shutdown', () => {
  let a: TestBackend | undefined;
  let proxy: RunningProxy | undefined;

  after(async () => {
    proxy?.proc.kill();
    await a?.kill();
  });

  test('SIGTERM: the in-flight slow request completes, then the process exits 0', withLogs(() => proxy, async () => {
    a = await TestBackend.start('a');
    proxy = await startProxy({ BACKENDS: a.url, SHUTDOWN_TIMEOUT_MS: '10000' });
    await waitFor('ready', async () => (await get(`${proxy!.url}/readyz`)).status === 200);
    const slow = get(`${proxy.url}/slow?ms=1500`);
    await waitFor('the slow request at the backend', () => a!.slowInFlight === 1);
    const exited = proxy.proc.stop(15_000);
    const res = await slow;
    assert.equal(res.status, 200);
    assert.equal(res.body, DATA_BODY.toString());
    const { code, signal } = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0);
    const logs = proxy.proc.jsonLogs();
    assert.ok(logs.some((l) => l.msg === 'stopped'));
    assert.ok(logs.some((l) => l.msg === 'access' && (l.access as { path: string }).path === '/slow'), 'the access record was flushed');
  }));
});
