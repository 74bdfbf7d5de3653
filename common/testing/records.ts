import type { AccessRecord } from '../src/access-record.ts';

/** A realistic access record whose record_id is `<instance>-<i>`, so tests can tell which arrived. */
export function syntheticRecord(instance: string, i: number, at: Date = new Date()): AccessRecord {
  return {
    '@timestamp': at.toISOString(),
    stream: 'demo',
    kind: i % 10 === 0 ? 'playlist' : 'segment',
    client_ip: `10.0.${(i >> 8) & 0xff}.${i & 0xff}`,
    method: 'GET',
    path: i % 10 === 0 ? '/live/demo/index.m3u8' : `/live/demo/r1-${i}.m4s`,
    status: 200,
    bytes: 512_000 + (i % 1000),
    duration_ms: 1.234,
    tier: 'proxy',
    instance,
    user_agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
    session_id: `6e2fb550-c457-11e9-bb97-${String(i % 1000).padStart(12, '0')}`,
    record_id: `${instance}-${i}`,
    backend: 'http://127.0.0.1:3001',
    request_id: `req-${i}`,
  };
}
