import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError } from '../../common/src/config.ts';
import { signPlaybackToken } from '../../common/src/playback-token.ts';
import { ClientLimits } from '../src/client-limits.ts';
import { loadProxyConfig } from '../src/config.ts';
import { PlaybackGate } from '../src/playback-gate.ts';
import { isBadPath } from '../src/request-target.ts';
import { describeRawRequest } from '../src/request-records.ts';
import { ViewerNetworks } from '../src/viewer-access.ts';
import { hasOpenssl, selfSignedCertificate } from './security-helpers.ts';

describe('request paths', () => {
  test('plain paths pass', () => {
    for (const p of ['/', '/watch/demo', '/live/demo/index.m3u8', '/live/demo/r1-42.m4s', '/assets/player.js', '/api/streams/demo/history', '/monitor', '/a..b/c.d', '/live/demo/.x']) {
      assert.equal(isBadPath(p), false, p);
    }
  });

  test('traversal in every encoding is refused', () => {
    const bad = [
      '/live/../etc/passwd', '/live/demo/..', '/./live', '/live/./demo', // dot-segments
      '/live/%2e%2e/x', '/live/%2E%2E/x', '/live/.%2e/x', '/live/%2e./x', '/live/%2e%2e%2fetc', // encoded dots
      '/live/..%2fetc', '/live/demo%2findex.m3u8', '/live/demo%2Findex.m3u8', // encoded slash
      '/live/..%5cetc', '/live/%5c', '/live\\demo', '/live/..\\etc', // backslash
      '/live/%252e%252e/x', '/live/%25', // double encoding
      '/live/%c0%ae%c0%ae/x', '/live/%C0%AE', '/live/%e0%80%ae', '/live/%ff', // overlong / invalid UTF-8
      '/live/demo%00.m3u8', '/live/%00', '/live/a%0d%0aSet-Cookie:x', '/live/%7f', // NUL, CR/LF, DEL
      '/live/%zz', '/live/%', '/live/%2', // malformed escapes
      '//evil.example/x', '/live//demo', // empty segments
      '/live/d\u00e9mo', '/live/\x01', '/live/ demo', // raw non-ASCII, control, space
    ];
    for (const p of bad) assert.equal(isBadPath(p), true, p);
  });
});

describe('viewer networks', () => {
  test('IPv4 and IPv6 CIDRs and addresses; an empty list lets everyone in', () => {
    const nets = new ViewerNetworks(['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '::1']);
    assert.equal(nets.restricted, true);
    for (const ip of ['10.1.2.3', '192.168.1.7', '2001:db8::42', '::1']) assert.equal(nets.allows(ip), true, ip);
    for (const ip of ['11.0.0.1', '192.168.1.8', '2001:db9::1', '127.0.0.1', '', 'not-an-ip']) assert.equal(nets.allows(ip), false, ip);
    const open = new ViewerNetworks([]);
    assert.equal(open.restricted, false);
    assert.equal(open.allows('203.0.113.9'), true);
  });
});

describe('client limits', () => {
  const limitsWith = (ratePerIp: number, rateBurst: number, exempt: string[] = []) =>
    new ClientLimits({ maxConnectionsPerIp: 2, ratePerIp, rateBurst, exempt, allows: (ip) => ip !== '10.6.6.6' });

  test('token bucket: a burst, then the sustained rate, with the wait until the next token', () => {
    const limits = limitsWith(10, 5);
    const c = limits.client('10.0.0.1', 0);
    for (let i = 0; i < 5; i++) assert.equal(limits.takeRequest(c, 0), 0, `burst request ${i}`);
    assert.equal(limits.takeRequest(c, 0), 1, 'bucket empty: retry after 1 s');
    assert.equal(limits.takeRequest(c, 100), 0, '100 ms at 10/s refills one token');
    assert.equal(limits.takeRequest(c, 150), 1);
    // Another address has its own bucket.
    assert.equal(limits.takeRequest(limits.client('10.0.0.2', 150), 150), 0);
    // A long pause refills up to the burst, not beyond.
    let served = 0;
    for (let i = 0; i < 20; i++) if (limits.takeRequest(c, 60_000) === 0) served++;
    assert.equal(served, 5);
  });

  test('the defaults let 500 low-latency viewers behind one company NAT tune in together and watch without a 429', () => {
    const { limits: defaults } = loadProxyConfig({});
    const limits = new ClientLimits({ ...defaults, allows: () => true });
    const nat = limits.client('198.51.100.7', 0);
    // What Chromium measured for one hls.js LL viewer on onair's page: ~13 requests in each of its
    // first two seconds, then ~7/s (a blocking reload and a part per 1/3 s, plus /streams.json).
    // 500 viewers open the page within the same second (a town hall starting), each request at its own time.
    let refused = 0;
    let sent = 0;
    const requests: number[] = [];
    for (let v = 0; v < 500; v++) {
      const opened = (v / 500) * 1000;
      for (let i = 0; i < 26; i++) requests.push(opened + (i / 26) * 2000);
      for (let t = opened + 2000; t < 20_000; t += 1000 / 7) requests.push(t);
    }
    requests.sort((a, b) => a - b);
    for (const at of requests) {
      sent++;
      if (limits.takeRequest(nat, at) !== 0) refused++;
    }
    assert.equal(refused, 0, `${refused} of ${sent} requests refused`);
    // 500 viewers at 2-3 connections each fit the connection limit too.
    assert.ok(defaults.maxConnectionsPerIp >= 500 * 3, `MAX_CONNECTIONS_PER_IP ${defaults.maxConnectionsPerIp}`);
    // And a flood from one address is still stopped: 10 000 requests in a second.
    const flood = limits.client('203.0.113.66', 0);
    let floodRefused = 0;
    for (let i = 0; i < 20_000; i++) if (limits.takeRequest(flood, i / 20) !== 0) floodRefused++;
    assert.ok(floodRefused > 0, 'a flood is refused');
  });

  test('a slow rate tells the client how long to wait', () => {
    const limits = limitsWith(0.5 as number, 1);
    const c = limits.client('10.0.0.1', 0);
    assert.equal(limits.takeRequest(c, 0), 0);
    assert.equal(limits.takeRequest(c, 0), 2);
  });

  test('exempt addresses and rate 0 are not limited; the allowlist verdict is kept per address', () => {
    const limits = limitsWith(1, 1, ['127.0.0.0/8']);
    const exempt = limits.client('127.0.0.5', 0);
    for (let i = 0; i < 100; i++) assert.equal(limits.takeRequest(exempt, 0), 0);
    assert.equal(limits.client('10.6.6.6', 0).allowed, false);
    assert.equal(limits.client('10.0.0.9', 0).allowed, true);
    const off = limitsWith(0, 1);
    const c = off.client('10.0.0.1', 0);
    for (let i = 0; i < 100; i++) assert.equal(off.takeRequest(c, 0), 0);
  });

  test('idle addresses are forgotten only once their bucket has refilled; the same state object is reused until then', () => {
    const limits = limitsWith(1, 100); // 100 s to refill
    const c = limits.client('10.0.0.1', 0);
    assert.equal(limits.client('10.0.0.1', 5), c);
    assert.equal(limits.sweep(50_000), 0);
    assert.equal(limits.trackedClients, 1);
    assert.equal(limits.sweep(105_000), 1);
    assert.equal(limits.trackedClients, 0);
  });
});

describe('playback gate', () => {
  const SECRET = 'gate-test-secret-0123456789';
  const NOW = 1_800_000_000;
  const gate = new PlaybackGate(SECRET);
  const token = signPlaybackToken(SECRET, 'demo', NOW + 600);

  test('/live/ needs a token from the query or the cookie; other paths are open', () => {
    assert.deepEqual(gate.check('/live/demo/index.m3u8', '/live/demo/index.m3u8', undefined, false, NOW), { ok: false, reason: 'token-missing' });
    const viaQuery = gate.check('/live/demo/index.m3u8', `/live/demo/index.m3u8?CMCD=sid%3D%22x%22&token=${token}`, undefined, false, NOW);
    assert.deepEqual(viaQuery, { ok: true, stream: 'demo', setCookie: [`onair_playback=${token}; Max-Age=600; Path=/live/demo/; HttpOnly; SameSite=Strict`, `onair_playback=${token}; Max-Age=600; Path=/archive/demo/; HttpOnly; SameSite=Strict`, `onair_playback=${token}; Max-Age=600; Path=/vod/demo; HttpOnly; SameSite=Strict`] });
    const viaCookie = gate.check('/live/demo/r1-7.m4s', '/live/demo/r1-7.m4s', `theme=dark; onair_playback=${token}`, false, NOW);
    assert.deepEqual(viaCookie, { ok: true, stream: 'demo', setCookie: null });
    assert.deepEqual(gate.check('/live/other/index.m3u8', `/live/other/index.m3u8?token=${token}`, undefined, false, NOW), { ok: false, reason: 'token-invalid' });
    assert.deepEqual(gate.check('/live/demo/index.m3u8', `/live/demo/index.m3u8?token=${token}`, undefined, false, NOW + 600), { ok: false, reason: 'token-expired' });
    assert.deepEqual(gate.check('/live/demo/x.m4s', '/live/demo/x.m4s', 'onair_playback=garbage', false, NOW), { ok: false, reason: 'token-invalid' });
    // A name that only ends like the cookie's is not the cookie.
    assert.deepEqual(gate.check('/live/demo/x.m4s', '/live/demo/x.m4s', `not_onair_playback=${token}`, false, NOW), { ok: false, reason: 'token-missing' });
    for (const open of ['/', '/assets/player.js', '/api/streams', '/monitor', '/watch/Bad_Name', '/streams.json']) {
      assert.deepEqual(gate.check(open, open, undefined, false, NOW), { ok: true, stream: null, setCookie: null }, open);
    }
  });

  test('/watch/<stream> needs a query token (cookies are scoped to /live/) and sets the cookie, Secure over HTTPS', () => {
    assert.deepEqual(gate.check('/watch/demo', '/watch/demo', `onair_playback=${token}`, false, NOW), { ok: false, reason: 'token-missing' });
    const page = gate.check('/watch/demo', `/watch/demo?token=${token}`, undefined, true, NOW + 100);
    assert.deepEqual(page, { ok: true, stream: 'demo', setCookie: [`onair_playback=${token}; Max-Age=500; Path=/live/demo/; HttpOnly; SameSite=Strict; Secure`, `onair_playback=${token}; Max-Age=500; Path=/archive/demo/; HttpOnly; SameSite=Strict; Secure`, `onair_playback=${token}; Max-Age=500; Path=/vod/demo; HttpOnly; SameSite=Strict; Secure`] });
    assert.deepEqual(gate.check('/watch/other', `/watch/other?token=${token}`, undefined, false, NOW), { ok: false, reason: 'token-invalid' });
  });

  test('recordings are protected like the live stream: /archive/<stream>/ files and /vod/<stream> pages', () => {
    const session = '20261122-040000-abcdef';
    assert.deepEqual(gate.check(`/archive/demo/${session}/index.m3u8`, `/archive/demo/${session}/index.m3u8`, undefined, false, NOW), { ok: false, reason: 'token-missing' });
    assert.deepEqual(gate.check(`/archive/demo/${session}/r-1.m4s`, `/archive/demo/${session}/r-1.m4s`, `onair_playback=${token}`, false, NOW), { ok: true, stream: 'demo', setCookie: null });
    assert.deepEqual(gate.check(`/archive/other/${session}/index.m3u8`, `/archive/other/${session}/index.m3u8`, `onair_playback=${token}`, false, NOW), { ok: false, reason: 'token-invalid' });
    for (const page of ['/vod/demo', `/vod/demo/${session}`]) {
      assert.deepEqual(gate.check(page, page, undefined, false, NOW), { ok: false, reason: 'token-missing' }, page);
      const allowed = gate.check(page, `${page}?token=${token}`, undefined, false, NOW);
      assert.ok(allowed.ok && allowed.setCookie?.some((c) => c.includes('Path=/archive/demo/')), `${page}: the cookie reaches the recordings`);
      assert.deepEqual(gate.check(page, page, `onair_playback=${token}`, false, NOW), { ok: true, stream: 'demo', setCookie: null }, `${page}: from the watch page's link, the cookie`);
    }
    assert.deepEqual(gate.check('/vod.json', '/vod.json', undefined, false, NOW), { ok: true, stream: null, setCookie: null }, 'the listing, like /streams.json, is open');
  });

  test('a stale query token does not hide a valid cookie', () => {
    const stale = signPlaybackToken(SECRET, 'demo', NOW - 1);
    assert.deepEqual(gate.check('/live/demo/x.m4s', `/live/demo/x.m4s?token=${stale}`, `onair_playback=${token}`, false, NOW), { ok: true, stream: 'demo', setCookie: null });
    assert.deepEqual(gate.check('/live/demo/x.m4s', `/live/demo/x.m4s?token=${stale}`, undefined, false, NOW), { ok: false, reason: 'token-expired' });
  });
});

test('unparsable requests are described from their first bytes, printable ASCII only', () => {
  assert.deepEqual(describeRawRequest(Buffer.from('FOO /live/demo/x?y=1 HTTP/1.1\r\n')), { method: 'FOO', path: '/live/demo/x' });
  assert.deepEqual(describeRawRequest(Buffer.from('GARBAGE\r\n\r\n')), { method: '-', path: '' });
  assert.deepEqual(describeRawRequest(Buffer.from([0, 1, 2, 255])), { method: '-', path: '' });
  assert.deepEqual(describeRawRequest(undefined), { method: '-', path: '' });
});

describe('security configuration', () => {
  test('defaults: everyone, no tokens, generous limits, plain HTTP', () => {
    const c = loadProxyConfig({});
    assert.deepEqual(c.viewerAllowCidrs, []);
    assert.deepEqual(c.frontProxies, []);
    assert.equal(c.playbackTokenSecret, undefined);
    assert.equal(c.tls, null);
    assert.deepEqual(c.limits, {
      maxConnections: 20_000, maxConnectionsPerIp: 2_000, ratePerIp: 5_000, rateBurst: 10_000, exempt: [],
      maxUrlBytes: 4_096, maxHeaderBytes: 16_384, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000,
    });
  });

  test('lists and limits are parsed; empty means unset', () => {
    const c = loadProxyConfig({ VIEWER_ALLOW_CIDRS: ' 10.0.0.0/8 , 2001:db8::/32,', FRONT_PROXIES: '', LIMIT_EXEMPT_CIDRS: '127.0.0.0/8', RATE_LIMIT_PER_IP: '0', PLAYBACK_TOKEN_SECRET: '' });
    assert.deepEqual(c.viewerAllowCidrs, ['10.0.0.0/8', '2001:db8::/32']);
    assert.deepEqual(c.limits.exempt, ['127.0.0.0/8']);
    assert.equal(c.limits.ratePerIp, 0);
    assert.equal(c.playbackTokenSecret, undefined);
  });

  test('bad values are reported together, by variable', () => {
    try {
      loadProxyConfig({
        VIEWER_ALLOW_CIDRS: '10.0.0.0/33', FRONT_PROXIES: 'proxy.local', PLAYBACK_TOKEN_SECRET: 'short', MAX_CONNECTIONS: '-1',
        MAX_HEADER_BYTES: '10', HEADERS_TIMEOUT_MS: '40000', REQUEST_TIMEOUT_MS: '30000', TLS_CERT_FILE: '/nonexistent/cert.pem',
      });
      assert.fail('expected a ConfigError');
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      const text = err.problems.join('\n');
      for (const name of ['VIEWER_ALLOW_CIDRS', 'FRONT_PROXIES', 'PLAYBACK_TOKEN_SECRET', 'MAX_CONNECTIONS', 'MAX_HEADER_BYTES', 'HEADERS_TIMEOUT_MS', 'TLS_KEY_FILE']) {
        assert.match(text, new RegExp(`^${name}:`, 'm'), `${name} reported in:\n${text}`);
      }
    }
  });

  test('TLS: both files or neither, readable, and a matching pair', { skip: hasOpenssl() ? false : 'openssl not installed' }, () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'onair-tls-unit-'));
    try {
      const { cert, key } = selfSignedCertificate(dir);
      const c = loadProxyConfig({ TLS_CERT_FILE: cert, TLS_KEY_FILE: key });
      assert.ok(c.tls && c.tls.cert.length > 0 && c.tls.key.length > 0);
      const problems = (env: Record<string, string>): string => {
        try {
          loadProxyConfig(env);
          return '';
        } catch (err) {
          return (err as ConfigError).problems.join('\n');
        }
      };
      assert.match(problems({ TLS_CERT_FILE: cert }), /^TLS_KEY_FILE: required when TLS_CERT_FILE is set/m);
      assert.match(problems({ TLS_KEY_FILE: key }), /^TLS_CERT_FILE: required when TLS_KEY_FILE is set/m);
      assert.match(problems({ TLS_CERT_FILE: cert, TLS_KEY_FILE: path.join(dir, 'missing.pem') }), /^TLS_KEY_FILE: cannot read .*missing\.pem: ENOENT/m);
      const garbage = path.join(dir, 'garbage.pem');
      writeFileSync(garbage, 'not a pem file\n');
      assert.match(problems({ TLS_CERT_FILE: garbage, TLS_KEY_FILE: key }), /^TLS_CERT_FILE: .* not a usable certificate and key/m);
      const other = selfSignedCertificate(dir, 'other');
      assert.match(problems({ TLS_CERT_FILE: cert, TLS_KEY_FILE: other.key }), /^TLS_CERT_FILE: .* not a usable certificate and key/m, 'a key that does not match the certificate');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
