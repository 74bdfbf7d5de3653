/**
 * TLS_CERT_FILE + TLS_KEY_FILE: the real proxy serves HTTPS on PROXY_PORT with a self-signed
 * certificate made here by `openssl req -x509`; relaying, X-Forwarded-Proto, the Secure playback
 * cookie and WebSocket upgrades work over it; a bad pair stops the proxy at start with exit code 2.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { signPlaybackToken } from '../../common/src/playback-token.ts';
import { freePort, makeTempDir, sleep, startService, waitFor } from '../../common/testing/processes.ts';
import { DATA_BODY, startProxy, TestBackend, withLogs, type RunningProxy } from './helpers.ts';
import { hasOpenssl, rawExchange, selfSignedCertificate } from './security-helpers.ts';

const SECRET = 'tls-test-playback-secret-0123';
const skip = hasOpenssl() ? false : 'openssl not installed';

function httpsGet(url: string, ca: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

describe('HTTPS', { skip }, () => {
  let web: TestBackend;
  let monitoring: TestBackend;
  let proxy: RunningProxy | undefined;
  let temp: { dir: string; remove: () => Promise<void> };
  let ca: Buffer;

  before(async () => {
    temp = await makeTempDir('proxy-tls');
    const { cert, key } = selfSignedCertificate(temp.dir);
    ca = readFileSync(cert);
    web = await TestBackend.start('web');
    monitoring = await TestBackend.start('monitoring');
    monitoring.server.on('upgrade', (req, socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (chunk: Buffer) => socket.write(`echo:${chunk.toString()}:${req.headers['x-forwarded-proto']}`));
      socket.on('end', () => socket.end());
      socket.on('error', () => {});
    });
    proxy = await startProxy(
      { BACKENDS: web.url, MONITORING_URL: monitoring.url, OPS_TOKEN: 'tls-ops-token-1', TLS_CERT_FILE: cert, TLS_KEY_FILE: key, PLAYBACK_TOKEN_SECRET: SECRET },
      'proxy-tls',
      async (healthz) => (await httpsGet(healthz, ca)).status === 200,
    );
  });

  after(async () => {
    await proxy?.stop();
    await Promise.all([web?.kill(), monitoring?.kill()]);
    await temp?.remove();
  });

  test('relays over HTTPS; the backend hears X-Forwarded-Proto: https', withLogs(() => proxy, async () => {
    assert.match(proxy!.url, /^https:/);
    const token = signPlaybackToken(SECRET, 'demo', Math.floor(Date.now() / 1000) + 600);
    // Until the backend has passed its first health check.
    const res = await waitFor('a relayed answer', async () => {
      const r = await httpsGet(`${proxy!.url}/live/demo/r1-1.m4s?token=${token}`, ca);
      return r.status === 503 ? undefined : r;
    });
    assert.equal(res.status, 200);
    assert.equal(res.body, DATA_BODY.toString());
    const echo = await httpsGet(`${proxy!.url}/echo`, ca);
    assert.equal((JSON.parse(echo.body) as { headers: Record<string, string> }).headers['x-forwarded-proto'], 'https');
  }));

  test('the playback cookie is Secure over HTTPS', withLogs(() => proxy, async () => {
    const token = signPlaybackToken(SECRET, 'demo', Math.floor(Date.now() / 1000) + 600);
    const page = await httpsGet(`${proxy!.url}/watch/demo?token=${token}`, ca);
    assert.equal(page.status, 200);
    assert.match(page.headers['set-cookie']?.[0] ?? '', /; Path=\/live\/demo\/; HttpOnly; SameSite=Strict; Secure$/);
  }));

  test('WebSocket upgrades work over TLS', withLogs(() => proxy, async () => {
    const req = https.request({ host: '127.0.0.1', port: proxy!.port, path: '/monitor/ws', ca, agent: false, headers: { connection: 'Upgrade', upgrade: 'websocket' } });
    req.end();
    const [res, socket] = (await once(req, 'upgrade')) as [IncomingMessage, Socket];
    assert.equal(res.statusCode, 101);
    socket.write('ping');
    const [reply] = (await once(socket, 'data')) as [Buffer];
    assert.equal(reply.toString(), 'echo:ping:https');
    socket.destroy();
  }));

  test('plain HTTP or a failed handshake on the HTTPS port only closes that connection', withLogs(() => proxy, async () => {
    const plain = await rawExchange(proxy!.port, 'GET /live/demo/index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 5_000 });
    assert.notEqual(plain.outcome, 'timeout');
    assert.equal(plain.status, null, 'no HTTP answer in clear text');
    const untrusting = tls.connect({ host: '127.0.0.1', port: proxy!.port, rejectUnauthorized: true });
    const [err] = (await once(untrusting, 'error')) as [Error];
    assert.match(String((err as NodeJS.ErrnoException).code), /SELF_SIGNED|UNABLE_TO_VERIFY|DEPTH_ZERO/);
    assert.ok(proxy!.proc.running);
    assert.equal((await httpsGet(`${proxy!.url}/healthz`, ca)).status, 200);
  }));

  // Last: it stops the proxy.
  test('SIGTERM lets a request in flight over TLS finish, then exits 0', withLogs(() => proxy, async () => {
    const slow = httpsGet(`${proxy!.url}/slow?ms=800`, ca);
    await waitFor('the request to reach the backend', () => web.slowInFlight > 0);
    const exited = proxy!.proc.stop(10_000);
    await sleep(100);
    const res = await slow;
    assert.equal(res.status, 200);
    assert.equal(res.body, DATA_BODY.toString());
    assert.equal((await exited).code, 0);
  }));
});

test('TLS configuration errors stop the proxy at start with exit code 2 and a clear message', { skip }, async () => {
  const temp = await makeTempDir('proxy-tls-bad');
  try {
    const { cert } = selfSignedCertificate(temp.dir);
    for (const [env, message] of [
      [{ TLS_CERT_FILE: cert }, /TLS_KEY_FILE: required when TLS_CERT_FILE is set/],
      [{ TLS_CERT_FILE: cert, TLS_KEY_FILE: `${temp.dir}/nope.pem` }, /TLS_KEY_FILE: cannot read .*nope\.pem: ENOENT/],
      [{ TLS_CERT_FILE: cert, TLS_KEY_FILE: cert }, /TLS_CERT_FILE: .*not a usable certificate and key/],
    ] as const) {
      const unset: Record<string, string> = { TLS_CERT_FILE: '', TLS_KEY_FILE: '' };
      const proc = startService('proxy', { PROXY_PORT: String(await freePort()), PROXY_HOST: '127.0.0.1', BACKENDS: '', ...unset, ...env }, 'proxy-bad-tls');
      const { code } = await proc.exited;
      assert.equal(code, 2, proc.tail());
      assert.match(proc.output.join('\n'), message);
    }
  } finally {
    await temp.remove();
  }
});
