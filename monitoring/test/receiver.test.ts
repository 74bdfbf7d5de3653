/**
 * The monitoring service as the Fluent receiver: a real FluentClient (acknowledgements on) sends
 * access records; they are acknowledged only once stored, malformed ones are counted, not stored.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { FluentClient } from '@fluent-org/logger';
import { ACCESS_RECORD_TAG, type AccessRecord } from '../../common/src/access-record.ts';
import { freePort, makeTempDir, startService, waitFor, waitForHttpOk } from '../../common/testing/processes.ts';
import { startMonitoring } from '../../common/testing/stack.ts';

const TOKEN = 'receiver-test-token-123';

function record(i: number, at: Date): AccessRecord {
  return {
    '@timestamp': at.toISOString(),
    stream: 'team',
    kind: i % 2 ? 'segment' : 'playlist',
    client_ip: `127.0.0.${(i % 5) + 2}`,
    method: 'GET',
    path: '/live/team/index.m3u8',
    status: 200,
    bytes: 500,
    duration_ms: 1,
    tier: 'proxy',
    instance: 'proxy-test',
    user_agent: 'test',
    session_id: `s${i % 7}`,
    record_id: `proxy-test-boot-${i}`,
    backend: 'http://127.0.0.1:3001',
    request_id: `r${i}`,
  };
}

test('records sent with acknowledgements are stored once and counted as viewers', async (t) => {
  const temp = await makeTempDir('receiver');
  t.after(temp.remove);
  const { process: monitoring, port, fluentPort } = await startMonitoring({
    mediaDir: path.join(temp.dir, 'media'),
    dataDir: path.join(temp.dir, 'data'),
    opsToken: TOKEN,
    env: { VIEWER_WINDOW_MS: '60000' },
  });
  t.after(() => monitoring.stop().then(() => undefined));
  await waitForHttpOk(`http://127.0.0.1:${port}/readyz`);
  const client = new FluentClient(ACCESS_RECORD_TAG.split('.')[0], {
    socket: { host: '127.0.0.1', port: fluentPort, disableReconnect: false },
    ack: { ackTimeout: 5000 },
    eventMode: 'PackedForward',
    milliseconds: true,
  });
  t.after(() => client.shutdown().catch(() => undefined));
  const now = new Date();
  const tag = ACCESS_RECORD_TAG.split('.').slice(1).join('.');
  const sends: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) sends.push(client.emit(tag, record(i, now) as unknown as Record<string, unknown>));
  // The same records again (a sender that lost its acks resends): stored once.
  for (let i = 0; i < 50; i++) sends.push(client.emit(tag, record(i, now) as unknown as Record<string, unknown>));
  sends.push(client.emit(tag, { nonsense: true }));
  await Promise.all(sends); // resolves only when acknowledged, i.e. stored

  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(metrics)?.[1] ?? NaN);
  assert.equal(value('onair_monitoring_records_received_total'), 251);
  assert.equal(value('onair_monitoring_records_stored_total'), 200);
  assert.equal(value('onair_monitoring_records_duplicate_total'), 50);
  assert.match(metrics, /onair_monitoring_records_rejected_total\{stage="validation"[^}]*\} 1/);
  // The embedded database's own memory is visible (the soak attributes monitoring's RSS with it).
  assert.ok(value('onair_monitoring_store_memory_bytes') > 0, 'DuckDB memory is reported');

  const streams = await waitFor('viewers in the API', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/api/streams`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const body = (await res.json()) as { streams: Array<{ stream: string; viewers: { ips: number; sessions: number } }> };
    return body.streams.find((s) => s.stream === 'team');
  });
  assert.deepEqual(streams.viewers, { ips: 5, sessions: 7 });
  const pipeline = (await (await fetch(`http://127.0.0.1:${port}/api/pipeline`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { lagMs: number };
  assert.ok(pipeline.lagMs >= 0 && pipeline.lagMs < 60_000);
  assert.equal((await fetch(`http://127.0.0.1:${port}/api/streams`)).status, 401);
  assert.equal((await fetch(`http://127.0.0.1:${port}/api/streams`, { headers: { authorization: 'Bearer wrong-token-000' } })).status, 401);
});

test('monitoring refuses to start without an ops token, with a clear message', async () => {
  const proc = startService('monitoring', { OPS_TOKEN: '', MONITORING_PORT: String(await freePort()) });
  const exit = await proc.exited;
  assert.equal(exit.code, 2);
  assert.match(proc.output.join('\n'), /OPS_TOKEN/);
});
