/**
 * Limits against the real proxy process: connections per address and in total, request rate per
 * address, URL and header size, and the headers timeout that cuts off a slowloris client while
 * others are served. Outcomes are asserted; timings are only printed.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { sleep, waitFor } from '../../common/testing/processes.ts';
import { accessRecords, DATA_BODY, metricValue, startProxy, TestBackend, waitForState, withLogs, type RunningProxy } from './helpers.ts';
import { httpRequest, rawExchange } from './security-helpers.ts';

const TOKEN = 'test-ops-token-limits';

/** Opens `n` idle connections from `localAddress`; resolves once all are connected. */
async function idleConnections(port: number, n: number, localAddress: string): Promise<net.Socket[]> {
  return Promise.all(
    Array.from({ length: n }, () => new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(s));
      s.on('error', reject);
    })),
  );
}

/** One request on an already open socket; resolves with the status of the answer (0 when closed without one). */
function requestOn(socket: net.Socket, path: string): Promise<number> {
  return new Promise((resolve) => {
    let data = '';
    const onData = (chunk: Buffer): void => {
      data += chunk.toString('latin1');
      if (data.includes('\r\n\r\n')) done();
    };
    const done = (): void => {
      socket.off('data', onData);
      resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0));
    };
    socket.on('data', onData);
    socket.once('close', done);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

async function connectionsGauge(proxy: RunningProxy): Promise<number> {
  // agent: false → Connection: close, so this request's own connection does not linger.
  const text = (await httpRequest(`${proxy.url}/metrics`)).body;
  return Number(/^onair_proxy_connections\{[^}]*\} (\d+)$/m.exec(text)?.[1] ?? NaN);
}

describe('per-address limits, sizes and timeouts', () => {
  let web: TestBackend;
  let proxy: RunningProxy | undefined;

  before(async () => {
    web = await TestBackend.start('web');
    proxy = await startProxy({
      BACKENDS: web.url,
      OPS_TOKEN: TOKEN,
      MAX_CONNECTIONS_PER_IP: '3',
      RATE_LIMIT_PER_IP: '5',
      RATE_LIMIT_BURST: '5',
      LIMIT_EXEMPT_CIDRS: '127.0.0.6/32',
      MAX_URL_BYTES: '1024',
      MAX_HEADER_BYTES: '8192',
      HEADERS_TIMEOUT_MS: '2000',
      REQUEST_TIMEOUT_MS: '5000',
    });
    await waitForState(proxy, web, 'healthy');
  });

  after(async () => {
    await proxy?.stop();
    await web?.kill();
  });

  test('connections beyond MAX_CONNECTIONS_PER_IP get 429 and are closed; other and exempt addresses are not affected', withLogs(() => proxy, async () => {
    const first = await idleConnections(proxy!.port, 3, '127.0.0.4');
    await waitFor('the proxy to count them', async () => (await connectionsGauge(proxy!)) >= 4);
    const beyond = await rawExchange(proxy!.port, 'GET /live/demo/a.m4s HTTP/1.1\r\nHost: x\r\nX-Request-Id: conn-beyond\r\n\r\n', { localAddress: '127.0.0.4', end: false });
    assert.equal(beyond.status, 429);
    assert.equal(beyond.headers['retry-after'], '1');
    assert.equal(beyond.headers.connection, 'close');
    assert.equal(beyond.outcome, 'response', 'answered, then closed by the proxy');
    assert.match(beyond.raw, /\(too-many-connections\)/);
    await waitFor('its record', () => accessRecords(proxy!).find((r) => r.request_id === 'conn-beyond' && r.refusal === 'too-many-connections'));
    // The connections within the limit are served, and so are other addresses.
    assert.equal(await requestOn(first[0]!, '/live/demo/b.m4s'), 200);
    assert.equal((await httpRequest(`${proxy!.url}/live/demo/c.m4s`, { localAddress: '127.0.0.5' })).status, 200);
    const exempt = await idleConnections(proxy!.port, 5, '127.0.0.6');
    assert.deepEqual(await Promise.all(exempt.map((s, i) => requestOn(s, `/live/demo/e${i}.m4s`))), [200, 200, 200, 200, 200]);
    for (const s of [...first, ...exempt]) s.destroy();
    // Once they are gone, the address may connect again.
    await waitFor('a new connection from 127.0.0.4 to be served', async () => (await httpRequest(`${proxy!.url}/live/demo/d.m4s`, { localAddress: '127.0.0.4' })).status === 200);
  }));

  test('RATE_LIMIT_PER_IP: beyond the burst, 429 with Retry-After; other and exempt addresses are not affected', withLogs(() => proxy, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => httpRequest(`${proxy!.url}/live/demo/r${i}.m4s`, { localAddress: '127.0.0.7', agent, headers: { 'x-request-id': `rate-${i}` } })));
    agent.destroy();
    const served = results.filter((r) => r.status === 200).length;
    const limited = results.filter((r) => r.status === 429);
    console.log(`rate limit 5/s, burst 5: ${served} served, ${limited.length} refused in ${Math.round(performance.now() - started)} ms`);
    assert.equal(served + limited.length, 60);
    assert.ok(served >= 5, 'the burst is served');
    assert.ok(limited.length > 0, 'requests beyond the rate are refused');
    for (const r of limited) {
      assert.ok(Number(r.headers['retry-after']) >= 1, `Retry-After ${r.headers['retry-after']}`);
      assert.match(r.body, /^429 Too Many Requests \(rate-limited\)/);
    }
    await waitFor('a record per refusal', () => {
      const refusedIds = new Set(accessRecords(proxy!).filter((r) => r.refusal === 'rate-limited').map((r) => r.request_id));
      return results.every((r, i) => r.status !== 429 || refusedIds.has(`rate-${i}`));
    });
    assert.ok((await metricValue(proxy!, 'onair_proxy_refusals_total', { reason: 'rate-limited' })) >= limited.length);
    assert.equal((await httpRequest(`${proxy!.url}/live/demo/other.m4s`, { localAddress: '127.0.0.8' })).status, 200, 'another address has its own bucket');
    const exempt = await Promise.all(Array.from({ length: 30 }, (_, i) => httpRequest(`${proxy!.url}/live/demo/x${i}.m4s`, { localAddress: '127.0.0.6' })));
    assert.ok(exempt.every((r) => r.status === 200), 'LIMIT_EXEMPT_CIDRS is not rate limited');
  }));

  test('a URL over MAX_URL_BYTES gets 414, headers over MAX_HEADER_BYTES 431; both recorded', withLogs(() => proxy, async () => {
    const longPath = `/live/demo/${'a'.repeat(3000)}.m4s`;
    const uri = await rawExchange(proxy!.port, `GET ${longPath} HTTP/1.1\r\nHost: x\r\nX-Request-Id: too-long-uri\r\n\r\n`, { localAddress: '127.0.0.9' });
    assert.equal(uri.status, 414);
    const uriRecord = await waitFor('the 414 record', () => accessRecords(proxy!).find((r) => r.request_id === 'too-long-uri'));
    assert.equal(uriRecord.refusal, 'uri-too-long');
    assert.ok((uriRecord.path as string).length <= 2048, 'the recorded path is cut to what monitoring accepts');

    const headers = await rawExchange(proxy!.port, `GET /live/demo/a.m4s HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(10_000)}\r\n\r\n`, { localAddress: '127.0.0.9' });
    assert.equal(headers.status, 431);
    assert.match(headers.raw, /\(headers-too-large\)/);
    const id = headers.headers['x-request-id']!;
    const headerRecord = await waitFor('the 431 record', () => accessRecords(proxy!).find((r) => r.request_id === id));
    assert.deepEqual([headerRecord.refusal, headerRecord.status, headerRecord.method, headerRecord.path, headerRecord.client_ip], ['headers-too-large', 431, 'GET', '/live/demo/a.m4s', '127.0.0.9']);
    assert.equal((await httpRequest(`${proxy!.url}/live/demo/after.m4s`, { localAddress: '127.0.0.10' })).status, 200);
  }));

  test('a slowloris client is cut off at HEADERS_TIMEOUT_MS while another client is served meanwhile', withLogs(() => proxy, async () => {
    const request = 'GET /live/demo/slow.m4s HTTP/1.1\r\nHost: x\r\nUser-Agent: slowloris\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa\r\n\r\n';
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    const slow = rawExchange(proxy!.port, '', {
      localAddress: '127.0.0.11',
      timeoutMs: 30_000,
      // One byte every 1.5 s: the headers would take ~2 minutes.
      write: (socket) => {
        const tick = (): void => {
          if (socket.destroyed || sent >= request.length) return;
          socket.write(request[sent++]!);
          timer = setTimeout(tick, 1_500);
        };
        tick();
      },
    });
    const served: number[] = [];
    const normal = (async () => {
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        const res = await httpRequest(`${proxy!.url}/live/demo/n${i}.m4s`, { localAddress: '127.0.0.12' });
        assert.equal(res.status, 200);
        assert.equal(res.body.length, DATA_BODY.length);
        served.push(Math.round(performance.now() - started));
        await sleep(300);
      }
    })();
    const [result] = await Promise.all([slow, normal]);
    clearTimeout(timer);
    console.log(`slowloris: ${result.outcome} ${result.status ?? ''} after ${result.ms} ms having sent ${sent}/${request.length} bytes; normal client served in ${served.join(', ')} ms`);
    assert.equal(result.status, 408, `the slow client is answered 408 (${result.outcome})`);
    assert.ok(sent < request.length, 'cut off long before it finished its headers');
    await waitFor('the 408 record', () => accessRecords(proxy!).find((r) => r.refusal === 'request-timeout' && r.client_ip === '127.0.0.11'));
    assert.equal(served.length, 5);
  }));
});

describe('MAX_CONNECTIONS', () => {
  let web: TestBackend;
  let proxy: RunningProxy | undefined;

  before(async () => {
    web = await TestBackend.start('web');
    proxy = await startProxy({ BACKENDS: web.url, OPS_TOKEN: TOKEN, MAX_CONNECTIONS: '3' });
    await waitForState(proxy, web, 'healthy');
  });

  after(async () => {
    await proxy?.stop();
    await web?.kill();
  });

  test('connections beyond the total are closed at accept, counted as overloaded; service resumes when they go', withLogs(() => proxy, async () => {
    // Only this request's own connection is open (the start-up probe's keep-alive one has gone).
    await waitFor('no other connection open', async () => (await connectionsGauge(proxy!)) === 1, 15_000, 250);
    await sleep(200);
    const held = await idleConnections(proxy!.port, 3, '127.0.0.20');
    await sleep(200);
    const refused = await rawExchange(proxy!.port, 'GET /live/demo/a.m4s HTTP/1.1\r\nHost: x\r\n\r\n', { localAddress: '127.0.0.21', timeoutMs: 5_000 });
    assert.ok(refused.outcome === 'closed' || refused.outcome === 'reset', `closed without an answer, got ${refused.outcome} ${refused.raw.slice(0, 40)}`);
    assert.equal(await requestOn(held[0]!, '/live/demo/b.m4s'), 200, 'the connections within the limit are served');
    for (const s of held) s.destroy();
    await waitFor('a new connection to be served', async () => (await httpRequest(`${proxy!.url}/live/demo/c.m4s`).catch(() => ({ status: 0 }))).status === 200);
    assert.ok((await metricValue(proxy!, 'onair_proxy_refusals_total', { reason: 'overloaded' })) >= 1);
    assert.ok(proxy!.proc.jsonLogs().some((l) => l.msg === 'connection limit reached: new connections closed at accept'));
  }));
});
