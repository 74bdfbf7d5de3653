import assert from 'node:assert/strict';
import http from 'node:http';
import { after, afterEach, before, describe, test } from 'node:test';
import { waitFor } from '../../common/testing/processes.ts';
import { accessRecords, DATA_BODY, get, listBackends, metricValue, startProxy, TestBackend, waitForState, withLogs, type RunningProxy } from './helpers.ts';

const TOKEN = 'test-ops-token-2';

/** `total` GETs, `concurrency` at a time; returns how many failed (status ≠ 200, wrong body or network error). */
async function steadyStream(url: string, total: number, concurrency: number, onProgress: (done: number) => Promise<void> | void): Promise<{ failures: string[]; done: number }> {
  let next = 0;
  let done = 0;
  const failures: string[] = [];
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      try {
        const res = await fetch(`${url}/live/demo/s${i}.ts`, { signal: AbortSignal.timeout(10_000) });
        const body = Buffer.from(await res.arrayBuffer());
        if (res.status !== 200 || !body.equals(DATA_BODY)) failures.push(`#${i}: HTTP ${res.status}, ${body.length} bytes`);
      } catch (err) {
        failures.push(`#${i}: ${(err as Error).message} ${String((err as { cause?: unknown }).cause ?? '')}`);
      }
      done++;
      await onProgress(done);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { failures, done };
}

describe('failures are hidden from viewers', () => {
  const backends: TestBackend[] = [];
  let proxy: RunningProxy | undefined;

  async function setUp(count: number, env: Record<string, string> = {}): Promise<TestBackend[]> {
    const list = await Promise.all(Array.from({ length: count }, (_, i) => TestBackend.start(`b${i}`)));
    backends.push(...list);
    proxy = await startProxy({ BACKENDS: list.map((b) => b.url).join(','), OPS_TOKEN: TOKEN, ...env });
    for (const b of list) await waitForState(proxy, b, 'healthy');
    return list;
  }

  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
    await Promise.all(backends.splice(0).map((b) => b.kill()));
  });

  test('a backend killed abruptly during a steady stream: zero failed requests, retries counted', withLogs(() => proxy, async () => {
    // Slow health checks: the passive path (connection errors) and retries must do the work alone.
    const [a, b] = await setUp(2, { HEALTH_INTERVAL_MS: '2000' });
    let killed: Promise<void> | null = null;
    const { failures, done } = await steadyStream(proxy!.url, 400, 8, (n) => {
      if (n === 100 && killed === null) killed = a!.kill();
    });
    await killed;
    assert.equal(done, 400);
    assert.deepEqual(failures, [], 'every client request succeeded');
    assert.ok(b!.count > a!.count, 'the survivor took over');
    const retries = await metricValue(proxy!, 'onair_proxy_backend_retries_total', { backend: a!.url });
    assert.ok(retries >= 1, `retries counted: ${retries}`);
    const view = (await listBackends(proxy!)).find((x) => x.url === a!.url)!;
    assert.equal(view.state, 'unhealthy', 'ejected');
    assert.equal(view.inFlight, 0);
    assert.ok(view.retries >= 1);
    assert.equal(await metricValue(proxy!, 'onair_proxy_error_responses_total', { status: '502' }), 0);
  }));

  test('a backend that drops connections before answering: ejected at once, requests retried', withLogs(() => proxy, async () => {
    const [a, b] = await setUp(2, { HEALTH_INTERVAL_MS: '60000', UNHEALTHY_THRESHOLD: '5' });
    a!.mode = 'destroy';
    const before = a!.count;
    for (let i = 0; i < 20; i++) {
      const res = await get(`${proxy!.url}/live/demo/d${i}.ts`);
      assert.equal(res.status, 200, `request ${i}`);
      assert.equal(res.body, DATA_BODY.toString());
    }
    assert.equal(a!.count - before, 1, 'one failed attempt ejected it (no active check ran in between)');
    assert.equal((await listBackends(proxy!)).find((x) => x.url === a!.url)!.state, 'unhealthy');
    assert.equal(await metricValue(proxy!, 'onair_proxy_backend_errors_total', { backend: a!.url, type: 'reset' }), 1);
    assert.equal(await metricValue(proxy!, 'onair_proxy_backend_retries_total', { backend: a!.url }), 1);
    assert.ok(b!.count >= 20);
  }));

  test('both attempts failing → 502 with a plain-text body', withLogs(() => proxy, async () => {
    const [a, b] = await setUp(2, { HEALTH_INTERVAL_MS: '100' });
    a!.mode = 'destroy';
    b!.mode = 'destroy';
    // Relayed requests (media goes through the proxy's caches: tested below and in segment-cache tests).
    const res = await get(`${proxy!.url}/files/both-fail.bin`, { 'x-request-id': 'both-fail' });
    assert.equal(res.status, 502);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(res.body, /upstream failed/);
    assert.equal(res.headers.get('x-request-id'), 'both-fail');
    assert.equal(a!.count + b!.count, 2, 'one attempt and one retry');
    assert.equal(await metricValue(proxy!, 'onair_proxy_error_responses_total', { status: '502' }), 1);
    const record = await waitFor('access record', () => accessRecords(proxy!).find((r) => r.request_id === 'both-fail'));
    assert.equal(record.status, 502);
    assert.equal(record.backend, null);
    assert.equal(record.bytes, Buffer.byteLength(res.body));
    // Requests with a body are not retried: one attempt, then 502.
    await waitForState(proxy!, a!, 'healthy');
    await waitForState(proxy!, b!, 'healthy');
    const hits = a!.count + b!.count;
    const post = await fetch(`${proxy!.url}/live/demo/upload`, { method: 'POST', body: 'payload', signal: AbortSignal.timeout(10_000) });
    assert.equal(post.status, 502);
    await post.text();
    assert.equal(a!.count + b!.count - hits, 1, 'POST not retried');
  }));

  test('a backend dying mid-body: the client sees a cut response, the proxy carries on', withLogs(() => proxy, async () => {
    const [a, b] = await setUp(2, { HEALTH_INTERVAL_MS: '60000' });
    a!.mode = 'truncate';
    b!.mode = 'truncate';
    // A relayed response (playlists and segments go through the proxy's caches, below).
    await assert.rejects(async () => {
      const res = await fetch(`${proxy!.url}/files/t.bin`, { signal: AbortSignal.timeout(10_000) });
      await res.arrayBuffer();
    }, 'the truncated body is an error for the client, not a hang');
    a!.mode = 'normal';
    b!.mode = 'normal';
    // The backend that truncated was ejected; the other one serves.
    const ok = await get(`${proxy!.url}/live/demo/t2.ts`);
    assert.equal(ok.status, 200);
    assert.equal(await metricValue(proxy!, 'onair_proxy_backend_errors_total', { type: 'aborted' }), 1);
    assert.ok(proxy!.proc.running);
  }));

  test('a segment cut off by every backend: the viewer gets an error status, never a truncated segment', withLogs(() => proxy, async () => {
    const [a, b] = await setUp(2, { HEALTH_INTERVAL_MS: '300' });
    a!.mode = 'truncate';
    b!.mode = 'truncate';
    const res = await fetch(`${proxy!.url}/live/demo/cut.m4s`, { signal: AbortSignal.timeout(10_000) });
    assert.ok(res.status === 502 || res.status === 503, `status ${res.status}`);
    await res.arrayBuffer();
    assert.equal(await metricValue(proxy!, 'onair_proxy_backend_errors_total', { type: 'aborted' }), 2, 'each backend cut it once, and was ejected');
    a!.mode = 'normal';
    b!.mode = 'normal';
    const whole = await waitFor('a backend back in rotation', async () => {
      const again = await get(`${proxy!.url}/live/demo/cut.m4s`);
      return again.status === 200 && again;
    }, 10_000, 200);
    assert.equal(whole.body, DATA_BODY.toString(), 'then the whole segment, not the cut one');
  }));

  test('client aborts are not backend failures', withLogs(() => proxy, async () => {
    const [a, b] = await setUp(2, { HEALTH_INTERVAL_MS: '60000' });
    for (let i = 0; i < 3; i++) {
      const controller = new AbortController();
      // 20 s: longer than waitFor's 15 s, so the backend only sees the end early if the proxy cancels upstream.
      const pending = fetch(`${proxy!.url}/slow?ms=20000`, { signal: controller.signal, headers: { 'x-request-id': `abort-${i}` } }).catch(() => 'aborted');
      await waitFor('the slow request at a backend', () => a!.slowInFlight + b!.slowInFlight > 0);
      controller.abort();
      assert.equal(await pending, 'aborted');
      await waitFor('the proxy to cancel the upstream request', () => a!.slowInFlight + b!.slowInFlight === 0);
    }
    const list = await listBackends(proxy!);
    for (const x of list) {
      assert.equal(x.state, 'healthy', `${x.url} still healthy`);
      assert.deepEqual(Object.values(x.errors).reduce((s, n) => s + n, 0), 0, `${x.url} errors ${JSON.stringify(x.errors)}`);
    }
    await waitFor('in-flight back to 0', async () => (await listBackends(proxy!)).every((x) => x.inFlight === 0));
    const record = await waitFor('access record of an aborted request', () => accessRecords(proxy!).find((r) => r.request_id === 'abort-0'));
    assert.equal(record.status, 499);
  }));

  test('a client Connection: close does not leak upstream; keep-alive is decided per client', withLogs(() => proxy, async () => {
    await setUp(1);
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: proxy!.port, path: '/echo', headers: { connection: 'close' }, agent: false }, resolve).on('error', reject);
    });
    let body = '';
    for await (const chunk of res) body += chunk;
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.headers['keep-alive'], undefined);
    assert.equal((JSON.parse(body) as { headers: Record<string, string> }).headers.connection, 'keep-alive');
  }));
});
