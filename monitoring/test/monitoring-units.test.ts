import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { historyBucketMs } from '../src/analytics/overview.ts';
import { OpsAuth, SESSION_COOKIE } from '../src/http/ops-auth.ts';
import { checkAccessRecord } from '../src/receiver/access-record-schema.ts';
import { RecordBatcher } from '../src/receiver/record-batcher.ts';
import type { AccessRecord } from '../../common/src/access-record.ts';

const record = (id: string): AccessRecord => ({
  '@timestamp': '2026-01-01T00:00:00.000Z',
  stream: 's',
  kind: 'segment',
  client_ip: '127.0.0.2',
  method: 'GET',
  path: '/live/s/a-1.m4s',
  status: 200,
  bytes: 1000,
  duration_ms: 1.5,
  tier: 'proxy',
  instance: 'proxy-1',
  user_agent: 'test',
  session_id: 'abc',
  record_id: id,
  backend: 'http://127.0.0.1:3001',
  request_id: 'r1',
});

test('the batcher writes full batches at once, the rest after the linger, and resolves after the write', async () => {
  const writes: number[] = [];
  const batcher = new RecordBatcher(async (records) => {
    writes.push(records.length);
  }, 3, 20);
  await Promise.all([batcher.add([record('a'), record('b')]), batcher.add([record('c'), record('d')])]);
  assert.deepEqual(writes, [4]);
  await batcher.add([record('e')]);
  assert.deepEqual(writes, [4, 1]);
});

test('a failed write rejects every waiter of that batch (they are not acknowledged)', async () => {
  let fail = true;
  const batcher = new RecordBatcher(async () => {
    if (fail) throw new Error('store down');
  }, 100, 5);
  await assert.rejects(Promise.all([batcher.add([record('a')]), batcher.add([record('b')])]), /store down/);
  fail = false;
  await batcher.add([record('c')]);
});

test('received records are validated field by field', () => {
  assert.ok(checkAccessRecord(record('x')).ok);
  const bad = checkAccessRecord({ ...record('x'), client_ip: 'not-an-ip', kind: 'video' });
  assert.equal(bad.ok, false);
  assert.match((bad as { reason: string }).reason, /client_ip/);
  assert.match((bad as { reason: string }).reason, /kind/);
  assert.equal(checkAccessRecord(null).ok, false);
  const noSession = checkAccessRecord({ ...record('y'), session_id: 12 });
  assert.ok(noSession.ok && noSession.record.session_id === null, 'a bad session id is dropped, not the record');
  const refused = checkAccessRecord({ ...record('z'), status: 403, refusal: 'token-expired' });
  assert.ok(refused.ok && refused.record.refusal === 'token-expired', 'the refusal reaches the store');
  assert.equal(checkAccessRecord({ ...record('w'), refusal: 7 }).ok, false);
});

test('ops auth: bearer token or the session cookie, nothing else', () => {
  const auth = new OpsAuth('correct-horse-battery');
  const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
  assert.ok(auth.isAuthenticated(req({ authorization: 'Bearer correct-horse-battery' })));
  assert.ok(!auth.isAuthenticated(req({ authorization: 'Bearer correct-horse-batter' })));
  assert.ok(!auth.isAuthenticated(req({})));
  assert.ok(auth.isAuthenticated(req({ cookie: `a=b; ${SESSION_COOKIE}=${auth.sessionValue}` })));
  assert.ok(!auth.isAuthenticated(req({ cookie: `${SESSION_COOKIE}=correct-horse-battery` })), 'the cookie is not the token');
  assert.ok(!new OpsAuth('another-token-123').isAuthenticated(req({ cookie: `${SESSION_COOKIE}=${auth.sessionValue}` })), 'a new token ends old sessions');
  assert.match(auth.sessionCookie(), /HttpOnly; SameSite=Strict/);
});

test('history resolution is 10 s for the last hours and coarser beyond', () => {
  assert.equal(historyBucketMs(30 * 60_000), 10_000);
  assert.equal(historyBucketMs(6 * 3600_000), 10_000);
  assert.equal(historyBucketMs(24 * 3600_000), 60_000);
  assert.equal(historyBucketMs(7 * 24 * 3600_000), 600_000);
  assert.equal(historyBucketMs(60 * 24 * 3600_000), 3600_000);
});

test('sender loss counters are summed over label sets from a Prometheus exposition', async () => {
  const { readSenderMetrics } = await import('../src/analytics/sender-stats.ts');
  const text = [
    '# HELP onair_records_dropped_total Access records given up on, by reason',
    '# TYPE onair_records_dropped_total counter',
    'onair_records_dropped_total{reason="spool_full",service="web",instance="web-1"} 3',
    'onair_records_dropped_total{reason="spool_corrupt",service="web",instance="web-1"} 1',
    'onair_records_queued{service="web",instance="web-1"} 42',
    'onair_records_spooled{service="web",instance="web-1"} 1000',
    'onair_records_receiver_up{service="web",instance="web-1"} 1',
    'onair_records_sent_total{service="web",instance="web-1"} 99',
  ].join('\n');
  assert.deepEqual(readSenderMetrics(text), { onair_records_dropped_total: 4, onair_records_queued: 42, onair_records_spooled: 1000, onair_records_receiver_up: 1 });
});
