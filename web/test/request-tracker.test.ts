/**
 * The access record of a request whose client hung up before it was served. Node reads a socket's
 * peer address lazily (getpeername), and a reset socket has none any more: the record must carry
 * the address the request arrived from, or monitoring's store refuses it (client_ip is required),
 * which loses the record. Seen end to end in e2e/failures.test.ts: when viewers stop, the proxy
 * cancels their upstream requests, and web records of those requests had client_ip "".
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { AccessRecord } from '../../common/src/access-record.ts';
import { createTrustList } from '../../common/src/access-record.ts';
import { createWebMetrics } from '../src/metrics.ts';
import { createRequestTracker } from '../src/request-tracker.ts';

function tracker(records: AccessRecord[]) {
  const metrics = createWebMetrics(new Registry(), { segmentCacheBytes: () => 0, segmentCacheEntries: () => 0, segmentCacheEvictions: () => 0, liveStreams: () => 0 });
  return createRequestTracker({ instance: 'web-test', trustList: createTrustList(['127.0.0.1']), accessLog: { write: (r) => records.push(r) }, metrics });
}

/** A request on a socket that stops knowing its peer once `hangUp()` is called (what a reset does). */
function request(peer: string, headers: Record<string, string> = {}) {
  let connected = true;
  const socket = {
    get remoteAddress(): string | undefined {
      return connected ? peer : undefined;
    },
  };
  const req = Object.assign(new EventEmitter(), { url: '/live/demo/index.m3u8', method: 'GET', headers, socket }) as unknown as IncomingMessage;
  const res = Object.assign(new EventEmitter(), { headersSent: false, statusCode: 200, write: () => true, end: () => undefined }) as unknown as ServerResponse;
  return { req, res, hangUp: () => (connected = false) };
}

describe('request tracker: the client address of an abandoned request', () => {
  it('is the address the request came from, not the reset socket\'s (none)', () => {
    const records: AccessRecord[] = [];
    const t = tracker(records);
    const { req, res, hangUp } = request('10.1.2.3');
    t.track(req, res);
    hangUp();
    res.emit('close');
    assert.equal(records.length, 1);
    assert.equal(records[0]!.status, 499);
    assert.equal(records[0]!.client_ip, '10.1.2.3');
  });

  it('behind the trusted proxy: the X-Forwarded-For client, also after the proxy cancelled', () => {
    const records: AccessRecord[] = [];
    const t = tracker(records);
    const { req, res, hangUp } = request('127.0.0.1', { 'x-forwarded-for': '127.0.0.42' });
    t.track(req, res);
    hangUp();
    res.emit('close');
    assert.equal(records[0]!.client_ip, '127.0.0.42');
  });
});
