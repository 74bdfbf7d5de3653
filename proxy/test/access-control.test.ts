/**
 * Who may use the proxy: the viewer network allowlist (VIEWER_ALLOW_CIDRS), front proxies
 * (FRONT_PROXIES) and signed playback tokens (PLAYBACK_TOKEN_SECRET), against the real proxy
 * process. Clients use distinct loopback addresses (127.0.0.x) as their TCP source.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { once } from 'node:events';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { signPlaybackToken } from '../../common/src/playback-token.ts';
import { REPO_ROOT, waitFor } from '../../common/testing/processes.ts';
import { accessRecords, DATA_BODY, metricValue, startProxy, TestBackend, waitForState, withLogs, type RunningProxy } from './helpers.ts';
import { httpRequest, rawExchange } from './security-helpers.ts';

const TOKEN = 'test-ops-token-access';

async function recordOf(proxy: RunningProxy, requestId: string): Promise<Record<string, unknown>> {
  return waitFor(`the record of ${requestId}`, () => accessRecords(proxy).find((r) => r.request_id === requestId));
}

describe('viewer network allowlist and front proxies', () => {
  let web: TestBackend;
  let monitoring: TestBackend;
  let proxy: RunningProxy | undefined;

  before(async () => {
    web = await TestBackend.start('web');
    monitoring = await TestBackend.start('monitoring');
    monitoring.server.on('upgrade', (_req, socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.on('error', () => {});
      socket.end();
    });
    proxy = await startProxy({
      BACKENDS: web.url,
      MONITORING_URL: monitoring.url,
      OPS_TOKEN: TOKEN,
      // 127.0.0.1 (the test runner's default source) is NOT allowed; 127.0.0.2 is; 127.0.0.3 is a front proxy.
      VIEWER_ALLOW_CIDRS: '127.0.0.2/32,10.1.0.0/16,2001:db8::/32',
      FRONT_PROXIES: '127.0.0.3',
    });
    // (The admin API is refused from 127.0.0.1 here, so readiness is seen through an allowed address.)
    await waitFor('web healthy', async () => (await httpRequest(`${proxy!.url}/live/demo/a.m4s`, { localAddress: '127.0.0.2' })).status === 200);
  });

  after(async () => {
    await proxy?.stop();
    await Promise.all([web?.kill(), monitoring?.kill()]);
  });

  test('an address outside the list gets 403 (network) on every route but the ops endpoints, with a record', withLogs(() => proxy, async () => {
    const hitsBefore = web.count + monitoring.count;
    for (const p of ['/', '/watch/demo', '/live/demo/index.m3u8', '/api/streams', '/monitor', '/admin/backends', '/assets/player.js']) {
      const id = `net-${p.replace(/\W/g, '_')}-${Date.now()}`;
      const res = await httpRequest(`${proxy!.url}${p}`, { headers: { 'x-request-id': id, authorization: `Bearer ${TOKEN}` } });
      assert.equal(res.status, 403, p);
      assert.match(res.body, /^403 Forbidden \(network\): this service is not available from your network\n$/, p);
      assert.equal(res.headers.connection, 'close', 'the connection of a refused network is closed');
      assert.equal(res.headers['x-request-id'], id);
      const record = await recordOf(proxy!, id);
      assert.equal(record.refusal, 'network');
      assert.equal(record.status, 403);
      assert.equal(record.client_ip, '127.0.0.1');
      assert.equal(record.backend, null);
    }
    assert.equal(web.count + monitoring.count, hitsBefore, 'nothing reached a backend');
    for (const p of ['/healthz', '/readyz', '/metrics']) assert.equal((await httpRequest(`${proxy!.url}${p}`)).status, 200, `${p} stays reachable for probes and scrapers`);
    assert.ok((await metricValue(proxy!, 'onair_proxy_refusals_total', { reason: 'network' })) >= 7);
  }));

  test('an address inside the list is served', withLogs(() => proxy, async () => {
    const res = await httpRequest(`${proxy!.url}/live/demo/seg1.m4s`, { localAddress: '127.0.0.2' });
    assert.equal(res.status, 200);
    assert.equal(res.body, DATA_BODY.toString());
  }));

  test('a forged X-Forwarded-For neither changes client_ip nor opens the door', withLogs(() => proxy, async () => {
    for (const forged of ['127.0.0.2', '10.1.2.3', '127.0.0.2, 10.1.2.3', '2001:db8::1']) {
      const id = `forged-${Date.now()}-${forged.length}`;
      const res = await httpRequest(`${proxy!.url}/live/demo/index.m3u8`, { headers: { 'x-forwarded-for': forged, 'x-real-ip': '127.0.0.2', forwarded: 'for=127.0.0.2', 'x-request-id': id } });
      assert.equal(res.status, 403, forged);
      const record = await recordOf(proxy!, id);
      assert.equal(record.client_ip, '127.0.0.1');
      assert.equal(record.refusal, 'network');
    }
    // Allowed peer with a forged header: served, and the header is replaced with the real peer upstream.
    const echo = await httpRequest(`${proxy!.url}/echo`, { localAddress: '127.0.0.2', headers: { 'x-forwarded-for': '10.1.2.3' } });
    assert.equal(echo.status, 200);
    assert.equal((JSON.parse(echo.body) as { headers: Record<string, string> }).headers['x-forwarded-for'], '127.0.0.2');
  }));

  test('WebSocket upgrades are refused outside the list too', withLogs(() => proxy, async () => {
    const refused = await rawExchange(proxy!.port, 'GET /monitor/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Request-Id: ws-refused\r\n\r\n', { end: false, timeoutMs: 5_000 });
    assert.equal(refused.status, 403);
    assert.equal((await recordOf(proxy!, 'ws-refused')).refusal, 'network');
    const req = http.request({ host: '127.0.0.1', port: proxy!.port, localAddress: '127.0.0.2', path: '/monitor/ws', headers: { connection: 'Upgrade', upgrade: 'websocket' } });
    req.end();
    const [res, socket] = (await once(req, 'upgrade')) as [http.IncomingMessage, import('node:net').Socket];
    assert.equal(res.statusCode, 101);
    socket.destroy();
  }));

  test('behind a front proxy, its X-Forwarded-For is the client: recorded, forwarded and checked against the list', withLogs(() => proxy, async () => {
    const inside = await httpRequest(`${proxy!.url}/echo`, { localAddress: '127.0.0.3', headers: { 'x-forwarded-for': '203.0.113.9, 10.1.2.3', 'x-forwarded-proto': 'https', 'x-request-id': 'front-inside' } });
    assert.equal(inside.status, 200);
    const upstream = (JSON.parse(inside.body) as { headers: Record<string, string> }).headers;
    assert.equal(upstream['x-forwarded-for'], '10.1.2.3', 'the nearest untrusted hop, alone');
    assert.equal(upstream['x-forwarded-proto'], 'https', 'the scheme the front proxy terminated');
    assert.equal((await recordOf(proxy!, 'front-inside')).client_ip, '10.1.2.3');

    const outside = await httpRequest(`${proxy!.url}/live/demo/index.m3u8`, { localAddress: '127.0.0.3', headers: { 'x-forwarded-for': '10.2.0.1', 'x-request-id': 'front-outside' } });
    assert.equal(outside.status, 403);
    const record = await recordOf(proxy!, 'front-outside');
    assert.equal(record.client_ip, '10.2.0.1');
    assert.equal(record.refusal, 'network');
  }));
});

describe('signed playback tokens', () => {
  const SECRET = 'integration-test-playback-secret';
  let web: TestBackend;
  let proxy: RunningProxy | undefined;
  const now = () => Math.floor(Date.now() / 1000);

  before(async () => {
    web = await TestBackend.start('web');
    proxy = await startProxy({ BACKENDS: web.url, OPS_TOKEN: TOKEN, PLAYBACK_TOKEN_SECRET: SECRET });
    await waitForState(proxy, web, 'healthy');
  });

  after(async () => {
    await proxy?.stop();
    await web?.kill();
  });

  test('without a token, playlists, segments and the watch page are refused (token-missing); the rest is open', withLogs(() => proxy, async () => {
    const hits = web.count;
    for (const [p, kind] of [['/live/demo/index.m3u8', 'playlist'], ['/live/demo/r1-5.m4s', 'segment'], ['/watch/demo', 'page']] as const) {
      const id = `missing-${kind}`;
      const res = await httpRequest(`${proxy!.url}${p}`, { headers: { 'x-request-id': id } });
      assert.equal(res.status, 403, p);
      assert.equal(res.body, '403 Forbidden (token-missing): this stream needs a playback link with a token\n');
      const record = await recordOf(proxy!, id);
      assert.deepEqual([record.refusal, record.kind, record.stream, record.status], ['token-missing', kind, 'demo', 403]);
    }
    assert.equal(web.count, hits, 'nothing reached a backend');
    for (const p of ['/', '/assets/player.js', '/streams.json']) assert.equal((await httpRequest(`${proxy!.url}${p}`)).status, 200, p);
  }));

  test('the browser flow: /watch?token= sets a /live/<stream>/ cookie, which then opens playlists and segments', withLogs(() => proxy, async () => {
    const token = signPlaybackToken(SECRET, 'demo', now() + 3600);
    const page = await httpRequest(`${proxy!.url}/watch/demo?token=${token}`);
    assert.equal(page.status, 200);
    const cookie = page.headers['set-cookie']?.[0] ?? '';
    assert.match(cookie, new RegExp(`^onair_playback=${token.replace('.', '\\.')}; Max-Age=(\\d+); Path=/live/demo/; HttpOnly; SameSite=Strict$`));
    const maxAge = Number(/Max-Age=(\d+)/.exec(cookie)![1]);
    assert.ok(maxAge > 3500 && maxAge <= 3600, `Max-Age ${maxAge} = the token's remaining lifetime`);
    const jar = cookie.split(';')[0]!;
    for (const p of ['/live/demo/index.m3u8', '/live/demo/r1-6.m4s', '/live/demo/r1-init.mp4']) {
      const res = await httpRequest(`${proxy!.url}${p}`, { headers: { cookie: `theme=dark; ${jar}` } });
      assert.equal(res.status, 200, p);
      assert.equal(res.headers['set-cookie'], undefined, 'no new cookie when the cookie was the credential');
    }
    // The cookie of one stream opens no other (a browser would not even send it there).
    const other = await httpRequest(`${proxy!.url}/live/other/index.m3u8`, { headers: { cookie: jar, 'x-request-id': 'cookie-other' } });
    assert.equal(other.status, 403);
    assert.equal((await recordOf(proxy!, 'cookie-other')).refusal, 'token-invalid');
  }));

  test('players may pass ?token= on playlists and segments; the playlist answer also sets the cookie', withLogs(() => proxy, async () => {
    const token = signPlaybackToken(SECRET, 'demo', now() + 600);
    const playlist = await httpRequest(`${proxy!.url}/live/demo/index.m3u8?token=${token}`);
    assert.equal(playlist.status, 200);
    assert.match(playlist.headers['set-cookie']?.[0] ?? '', /Path=\/live\/demo\/; HttpOnly; SameSite=Strict$/);
    assert.equal((await httpRequest(`${proxy!.url}/live/demo/r1-7.m4s?CMCD=sid%3D%22s1%22&token=${token}`)).status, 200);
  }));

  test('wrong stream, expired, tampered or garbage tokens: 403 with the reason, recorded and counted', withLogs(() => proxy, async () => {
    const forOther = signPlaybackToken(SECRET, 'other', now() + 600);
    const expired = signPlaybackToken(SECRET, 'demo', now() - 1);
    const tampered = signPlaybackToken(SECRET, 'demo', now() + 600).replace(/^\d+/, String(now() + 99_999));
    const foreign = signPlaybackToken('a-different-secret-0123456789', 'demo', now() + 600);
    const cases = [
      [`/live/demo/index.m3u8?token=${forOther}`, 'token-invalid'],
      [`/watch/demo?token=${forOther}`, 'token-invalid'],
      [`/live/demo/index.m3u8?token=${expired}`, 'token-expired'],
      [`/watch/demo?token=${expired}`, 'token-expired'],
      [`/live/demo/r1-1.m4s?token=${tampered}`, 'token-invalid'],
      [`/live/demo/r1-1.m4s?token=${foreign}`, 'token-invalid'],
      ['/live/demo/r1-1.m4s?token=', 'token-invalid'],
      ['/live/demo/r1-1.m4s?token=%41%41', 'token-invalid'],
    ] as const;
    const before = await metricValue(proxy!, 'onair_proxy_refusals_total', { reason: 'token-invalid' });
    for (const [p, reason] of cases) {
      const id = `bad-token-${cases.findIndex((c) => c[0] === p)}`;
      const res = await httpRequest(`${proxy!.url}${p}`, { headers: { 'x-request-id': id } });
      assert.equal(res.status, 403, p);
      assert.ok(res.body.includes(`(${reason})`), `${p}: ${res.body}`);
      assert.equal((await recordOf(proxy!, id)).refusal, reason, p);
      assert.equal(res.headers['set-cookie'], undefined);
    }
    assert.equal(await metricValue(proxy!, 'onair_proxy_refusals_total', { reason: 'token-invalid' }), before + 6);
    // Tokens never appear in records: paths are recorded without their query.
    assert.ok(accessRecords(proxy!).every((r) => !String(r.path).includes('token')));
  }));

  test('the link printed by `onair tokens sign` opens the stream', withLogs(() => proxy, async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(REPO_ROOT, 'bin', 'onair.js'), 'tokens', 'sign', 'demo', '--ttl', '2h', '--base-url', proxy!.url], {
      env: { ...process.env, PLAYBACK_TOKEN_SECRET: SECRET },
    });
    const link = stdout.trim();
    assert.match(link, new RegExp(`^${proxy!.url.replace(/[.]/g, '\\.')}/watch/demo\\?token=\\d+\\.[A-Za-z0-9_-]{43}$`));
    const page = await httpRequest(link);
    assert.equal(page.status, 200);
    const maxAge = Number(/Max-Age=(\d+)/.exec(page.headers['set-cookie']?.[0] ?? '')?.[1]);
    assert.ok(maxAge > 7000 && maxAge <= 7200, `Max-Age ${maxAge} for --ttl 2h`);
    const jar = page.headers['set-cookie']![0]!.split(';')[0]!;
    assert.equal((await httpRequest(`${proxy!.url}/live/demo/index.m3u8`, { headers: { cookie: jar } })).status, 200);
  }));
});
