/**
 * Hostile and malformed requests over raw sockets against the real proxy process: each gets a
 * clear status, the ones the proxy answers itself get an access record with their refusal, no
 * traversal attempt reaches a backend, and the proxy keeps serving others.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../common/testing/processes.ts';
import { accessRecords, startProxy, TestBackend, waitForState, withLogs, type RunningProxy } from './helpers.ts';
import { httpRequest, rawExchange } from './security-helpers.ts';

const TOKEN = 'test-ops-token-bad-input';

const get = (target: string, extra = ''): string => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;

/** [name, raw request, acceptable statuses, refusal expected in the record (null: relayed or not ours)] */
type Case = [string, string, number[], string | null];

const TRAVERSAL: Case[] = [
  ['dot-dot', get('/live/../../etc/passwd'), [400], 'bad-path'],
  ['dot-dot after a stream', get('/live/demo/../../../etc/passwd'), [400], 'bad-path'],
  ['dot segment', get('/live/./demo/index.m3u8'), [400], 'bad-path'],
  ['%2e%2e%2f', get('/live/%2e%2e%2f%2e%2e%2fetc%2fpasswd'), [400], 'bad-path'],
  ['mixed case %2E%2e', get('/live/%2E%2e/%2E%2E/etc/passwd'), [400], 'bad-path'],
  ['mixed case path and escapes', get('/LIVE/%2E%2e/Monitor'), [400], 'bad-path'],
  ['double encoded %252e%252e', get('/live/%252e%252e/%252e%252e/etc/passwd'), [400], 'bad-path'],
  ['..%5c', get('/live/..%5c..%5cetc%5cpasswd'), [400], 'bad-path'],
  ['%5C upper case', get('/live/demo%5C..%5Cindex.m3u8'), [400], 'bad-path'],
  ['raw backslash', get('/live/..\\..\\etc\\passwd'), [400], null],
  ['overlong UTF-8 %c0%ae', get('/live/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd'), [400], 'bad-path'],
  ['overlong 3-byte %e0%80%ae', get('/live/%e0%80%ae%e0%80%ae/x'), [400], 'bad-path'],
  ['NUL %00', get('/live/demo/index.m3u8%00.txt'), [400], 'bad-path'],
  ['CRLF %0d%0a', get('/live/demo/x%0d%0aSet-Cookie:%20a=b'), [400], 'bad-path'],
  ['encoded slash in a name', get('/live/demo%2findex.m3u8'), [400], 'bad-path'],
  ['watch page traversal', get('/watch/..%2f..%2fetc%2fpasswd'), [400], 'bad-path'],
  ['api → admin', get('/api/../admin/backends'), [400], 'bad-path'],
  ['monitor → admin, encoded', get('/monitor/%2e%2e/admin/backends'), [400], 'bad-path'],
  ['doubled slash at the start', get('//etc/passwd'), [400], 'bad-path'],
  ['doubled slash inside', get('/live//demo/index.m3u8'), [400], 'bad-path'],
  ['protocol-relative', get('//evil.example/live/demo/index.m3u8'), [400], 'bad-path'],
];

const MALFORMED: Case[] = [
  ['absolute-form target', 'GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n', [400], 'bad-request'],
  ['absolute-form to ourselves', 'GET http://127.0.0.1/live/demo/index.m3u8 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', [400], 'bad-request'],
  ['asterisk-form', 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n', [400], 'bad-request'],
  ['unknown method FOO', 'FOO / HTTP/1.1\r\nHost: x\r\n\r\n', [400], 'bad-request'],
  ['lower-case method', 'get / HTTP/1.1\r\nHost: x\r\n\r\n', [400], 'bad-request'],
  ['CONNECT', 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n', [405], 'method-not-allowed'],
  ['TRACE', 'TRACE / HTTP/1.1\r\nHost: x\r\n\r\n', [405], 'method-not-allowed'],
  ['TRACE on media', 'TRACE /live/demo/index.m3u8 HTTP/1.1\r\nHost: x\r\nCookie: secret\r\n\r\n', [405], 'method-not-allowed'],
  ['PROPFIND (WebDAV)', 'PROPFIND / HTTP/1.1\r\nHost: x\r\n\r\n', [405], 'method-not-allowed'],
  ['garbage line', 'GARBAGE\r\n\r\n', [400], 'bad-request'],
  ['method only', 'GET\r\n\r\n', [400], 'bad-request'],
  ['unknown HTTP version', 'GET / HTTP/9.9\r\nHost: x\r\n\r\n', [400, 505], null],
  ['junk after the version', 'GET / HTTP/1.1 junk\r\nHost: x\r\n\r\n', [400], 'bad-request'],
  // Node's parser reads this leniently as "GET /": relayed.
  ['two spaces', 'GET  /  HTTP/1.1\r\nHost: x\r\n\r\n', [200, 400], null],
  ['header without colon', 'GET / HTTP/1.1\r\nHost x\r\n\r\n', [400], 'bad-request'],
  ['NUL in a header', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n', [400], 'bad-request'],
  ['raw NUL in the target', 'GET /live/\x00 HTTP/1.1\r\nHost: x\r\n\r\n', [400], 'bad-request'],
  ['HTTP/1.1 without Host', 'GET /live/demo/index.m3u8 HTTP/1.1\r\n\r\n', [400], 'bad-request'],
  ['Content-Length + Transfer-Encoding (smuggling)', 'POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', [400], 'bad-request'],
  ['two Content-Lengths', 'POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', [400], 'bad-request'],
  ['negative Content-Length', 'POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', [400], 'bad-request'],
  // The body breaks while the request is being relayed: the exchange is dropped, the request refused.
  ['bad chunk size', 'POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', [400], 'bad-request'],
  ['Expect: 200-ok', 'GET /live/demo/index.m3u8 HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n', [417], 'expectation-failed'],
  ['over-long URL', get(`/live/demo/${'x'.repeat(5000)}.m4s`), [414], 'uri-too-long'],
  ['over-long headers', get('/live/demo/index.m3u8', `X-Big: ${'y'.repeat(20_000)}\r\n`), [431], 'headers-too-large'],
  ['many headers', get('/live/demo/index.m3u8', Array.from({ length: 3000 }, (_, i) => `X-H${i}: v\r\n`).join('')), [431], 'headers-too-large'],
  ['h2c upgrade on media', get('/live/demo/index.m3u8', 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n'), [404], null],
];

describe('bad input', () => {
  let web: TestBackend;
  let monitoring: TestBackend;
  let proxy: RunningProxy | undefined;

  before(async () => {
    web = await TestBackend.start('web');
    monitoring = await TestBackend.start('monitoring');
    proxy = await startProxy({ BACKENDS: web.url, MONITORING_URL: monitoring.url, OPS_TOKEN: TOKEN });
    await waitForState(proxy, web, 'healthy');
  });

  after(async () => {
    await proxy?.stop();
    await Promise.all([web?.kill(), monitoring?.kill()]);
  });

  async function runCases(cases: Case[]): Promise<void> {
    const problems: string[] = [];
    for (const [name, raw, statuses, refusal] of cases) {
      const result = await rawExchange(proxy!.port, raw, { timeoutMs: 8_000 });
      if (result.status === null || !statuses.includes(result.status)) {
        problems.push(`${name}: expected ${statuses.join('/')}, got ${result.outcome} ${result.status ?? ''} ${JSON.stringify(result.raw.slice(0, 80))}`);
        continue;
      }
      if (refusal !== null) {
        const id = result.headers['x-request-id'];
        if (!id) {
          problems.push(`${name}: no X-Request-Id on the proxy's answer`);
          continue;
        }
        const record = await waitFor(`the record of "${name}"`, () => accessRecords(proxy!).find((r) => r.request_id === id), 5_000).catch(() => undefined);
        if (record?.refusal !== refusal || record.status !== result.status) problems.push(`${name}: record ${JSON.stringify(record)}; expected refusal ${refusal}`);
        else if (record.client_ip !== '127.0.0.1') problems.push(`${name}: client_ip ${record.client_ip}`);
      }
      if (!proxy!.proc.running) problems.push(`${name}: the proxy exited`);
    }
    assert.deepEqual(problems, []);
    assert.ok(proxy!.proc.running, 'the proxy is still running');
    const ok = await httpRequest(`${proxy!.url}/live/demo/index.m3u8`);
    assert.equal(ok.status, 200, 'and serves a normal request afterwards');
  }

  test('path traversal in every encoding: 400 from the proxy, nothing reaches a backend', withLogs(() => proxy, async () => {
    const hits = web.count + monitoring.count;
    await runCases(TRAVERSAL);
    assert.equal(web.count + monitoring.count, hits + 1, 'only the final normal request reached a backend');
  }));

  test('malformed request lines, bad methods, smuggling attempts, oversize: a clear status each, recorded', withLogs(() => proxy, () => runCases(MALFORMED)));

  test('a forged X-Forwarded-For does not change client_ip', withLogs(() => proxy, async () => {
    const res = await rawExchange(proxy!.port, get('/live/demo/seg.m4s', 'X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Request-Id: forged-xff\r\n'));
    assert.equal(res.status, 200);
    const record = await waitFor('the record', () => accessRecords(proxy!).find((r) => r.request_id === 'forged-xff'));
    assert.equal(record.client_ip, '127.0.0.1');
    assert.equal(record.refusal, null);
  }));

  test('pipelined requests after a bad one are not answered out of turn; the connection closes', withLogs(() => proxy, async () => {
    const res = await rawExchange(proxy!.port, `${get('/live/demo/a.m4s')}FOO / HTTP/1.1\r\nHost: x\r\n\r\n${get('/live/demo/b.m4s')}`, { untilClose: true });
    const statuses = [...res.raw.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, [200, 400], 'the good request, then 400 for the bad one, then nothing');
  }));
});
