/**
 * A small, bounded fuzz run of the proxy's HTTP front: FUZZ_COUNT (2 000) requests, mutated from a
 * corpus of real ones or random bytes, from a fixed seed (FUZZ_SEED to replay another run), over
 * raw sockets to 127.0.0.1 only. Asserted: the proxy never exits; every connection ends in a
 * well-formed HTTP response or a close, none hangs; every answer carrying an X-Request-Id has its
 * access record; a normal request is served afterwards. Counts per outcome are printed.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../../common/testing/processes.ts';
import { startProxy, TestBackend, waitForState, type RunningProxy } from './helpers.ts';
import { httpRequest, rawExchange, type RawOutcome } from './security-helpers.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 20_260_601) >>> 0;
const COUNT = Number(process.env.FUZZ_COUNT ?? 2_000);
const CONCURRENCY = 40;
/** No new case starts after this (the run is bounded in time, whatever the machine). */
const BUDGET_MS = 25_000;

/** mulberry32: a tiny deterministic PRNG, so a seed replays the same run. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const CORPUS = [
  'GET /live/demo/index.m3u8?CMCD=sid%3D%22abc%22 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: fuzz\r\n\r\n',
  'GET /live/demo/r1-12.m4s HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99\r\nAccept: */*\r\n\r\n',
  'HEAD /watch/demo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  'GET / HTTP/1.0\r\n\r\n',
  'GET /assets/player.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nIf-None-Match: "abc"\r\n\r\n',
  'POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{"token":"abcde"}',
  'POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'GET /monitor/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  'GET /admin/backends HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n',
  'OPTIONS /live/demo/index.m3u8 HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n\r\n',
  'GET /live/demo/a.m4s HTTP/1.1\r\nHost: x\r\n\r\nGET /live/demo/b.m4s HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /api/streams/demo/history?minutes=5 HTTP/1.1\r\nHost: x\r\nCookie: onair_session=abc; onair_playback=1.x\r\nX-Request-Id: fuzz-seed\r\n\r\n',
];

const DICTIONARY = [
  '\r\n', '\n', '\r', ' ', '\t', ':', '%', '%00', '%2e%2e%2f', '%c0%ae', '..', '/', '//', '\\', '\x00', '\xff', '\x7f', '?', '#', '@',
  'Content-Length: 99999\r\n', 'Content-Length: -1\r\n', 'Content-Length: 0\r\n', 'Transfer-Encoding: chunked\r\n', 'Transfer-Encoding: gzip, chunked\r\n',
  'Expect: 100-continue\r\n', 'Expect: x\r\n', 'Connection: close\r\n', 'Connection: Upgrade\r\nUpgrade: h2c\r\n', 'Host: \r\n', 'Host: a\r\nHost: b\r\n',
  '\r\n\r\n', 'HTTP/1.1', 'HTTP/2.0', 'GET ', 'CONNECT ', 'TRACE ', '?token=1.abc', 'X-Forwarded-For: 10.0.0.1\r\n', 'X-Request-Id: ../../x\r\n',
  'A'.repeat(5_000), `X-Big: ${'B'.repeat(20_000)}\r\n`, 'http://evil.example', '*', '0\r\n\r\n', 'ffffffff\r\n',
];

const METHODS = ['GET', 'POST', 'HEAD', 'PUT', 'FOO', 'CONNECT', 'TRACE', 'PRI', 'get', 'DELETE', 'PROPFIND', '', 'G\x00T'];

function makeCase(random: () => number): { bytes: Buffer; halfClose: boolean } {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const int = (n: number): number => Math.floor(random() * n);
  // Half-closing makes the server see the end of the stream at once (an incomplete request is refused
  // instead of waiting for the headers timeout), but Node then abandons requests it is relaying.
  const halfClose = random() < 0.75;
  if (random() < 0.05) return { bytes: Buffer.from(Array.from({ length: 1 + int(512) }, () => int(256))), halfClose };
  let b = Buffer.from(pick(CORPUS), 'latin1');
  const mutations = 1 + int(3);
  for (let m = 0; m < mutations; m++) {
    const at = int(b.length + 1);
    switch (int(8)) {
      case 0: // flip a byte
        if (b.length > 0) b[int(b.length)] = int(256);
        break;
      case 1: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + int(16) }, () => int(256))), b.subarray(at)]);
        break;
      case 2: // delete a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(20)))]);
        break;
      case 3: // duplicate a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + int(40)), b.subarray(at)]);
        break;
      case 4:
      case 5: // insert a dictionary token
        b = Buffer.concat([b.subarray(0, at), Buffer.from(pick(DICTIONARY), 'latin1'), b.subarray(at)]);
        break;
      case 6: // truncate
        b = b.subarray(0, at);
        break;
      case 7: {
        // swap the method
        const space = b.indexOf(0x20);
        b = Buffer.concat([Buffer.from(pick(METHODS), 'latin1'), space === -1 ? b : b.subarray(space)]);
        break;
      }
    }
  }
  return { bytes: b, halfClose };
}

let web: TestBackend;
let monitoring: TestBackend;
let proxy: RunningProxy | undefined;
/** Request ids of every access record the proxy logged (read from its stdout, all of it). */
const recorded = new Set<string>();

before(async () => {
  web = await TestBackend.start('web');
  monitoring = await TestBackend.start('monitoring');
  proxy = await startProxy({
    BACKENDS: web.url,
    MONITORING_URL: monitoring.url,
    OPS_TOKEN: 'fuzz-ops-token',
    HEADERS_TIMEOUT_MS: '1000',
    REQUEST_TIMEOUT_MS: '2000',
    UPSTREAM_TIMEOUT_MS: '3000',
    LOG_LEVEL: 'info',
  });
  let pending = '';
  proxy.proc.child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString('utf8')).split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      const at = line.indexOf('"request_id":"');
      if (line.includes('"msg":"access"') && at !== -1) recorded.add(line.slice(at + 14, line.indexOf('"', at + 14)));
    }
  });
  await waitForState(proxy, web, 'healthy');
});

after(async () => {
  await proxy?.stop();
  await Promise.all([web?.kill(), monitoring?.kill()]);
});

test(`fuzz: ${COUNT} random and mutated requests (seed ${SEED}); the proxy stays up and answers or closes every one`, async () => {
  console.log(`fuzz seed ${SEED} (FUZZ_SEED=${SEED} replays this run), ${COUNT} cases, ${CONCURRENCY} at a time`);
  const random = prng(SEED);
  const cases = Array.from({ length: COUNT }, () => makeCase(random));
  const counts = new Map<string, number>();
  const problems: string[] = [];
  const answeredIds: string[] = [];
  const started = performance.now();
  let next = 0;
  let ran = 0;
  const worker = async (): Promise<void> => {
    while (next < cases.length && performance.now() - started < BUDGET_MS) {
      const i = next++;
      const { bytes, halfClose } = cases[i]!;
      const result: RawOutcome = await rawExchange(proxy!.port, bytes, { end: halfClose, timeoutMs: 8_000 });
      ran++;
      let key: string = result.outcome;
      if (result.outcome === 'response') key = `HTTP ${result.status}`;
      // Bytes without a final answer are only fine when they are interim "100 Continue" heads (then the close).
      else if (result.raw.replace(/^(?:HTTP\/1\.[01] 100 [^\r\n]*\r\n\r\n)+/, '').length > 0) key = 'invalid answer';
      else if (result.raw.length > 0) key = `${result.outcome} after 100 Continue`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      if (key === 'invalid answer' || result.outcome === 'timeout') problems.push(`case ${i} (${halfClose ? 'half-closed' : 'open'}): ${key} ${JSON.stringify(result.raw.slice(0, 100))} for ${JSON.stringify(bytes.toString('latin1').slice(0, 120))}`);
      const id = result.headers['x-request-id'];
      if (result.outcome === 'response' && id !== undefined) answeredIds.push(id);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const summary = [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(', ');
  console.log(`fuzz: ${ran} cases in ${seconds} s → ${summary}`);

  assert.ok(proxy!.proc.running, `the proxy exited:\n${proxy!.proc.tail()}`);
  assert.deepEqual(problems.slice(0, 20), [], 'every connection ends in a well-formed answer or a close');
  assert.ok(ran >= Math.min(COUNT, 200), `only ${ran} cases ran within ${BUDGET_MS} ms`);
  // Every answer the proxy gave (its own or relayed: both carry X-Request-Id) has its access record.
  await waitFor('a record for every answer', () => answeredIds.every((id) => recorded.has(id)), 10_000).catch(() => undefined);
  const missing = answeredIds.filter((id) => !recorded.has(id));
  assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${answeredIds.length} answers have no access record`);
  assert.ok(!proxy!.proc.output.some((l) => l.includes('uncaught exception')), 'no uncaught exception');
  const ok = await httpRequest(`${proxy!.url}/live/demo/index.m3u8`);
  assert.equal(ok.status, 200, 'a normal request is served afterwards');
});
