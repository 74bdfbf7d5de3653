import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTrustList, describePath, normalizeIp, resolveClientIp } from '../src/access-record.ts';

test('describes request paths in domain terms', () => {
  assert.deepEqual(describePath('/live/town-hall/index.m3u8'), { stream: 'town-hall', kind: 'playlist' });
  assert.deepEqual(describePath('/live/town-hall/abc-12.m4s'), { stream: 'town-hall', kind: 'segment' });
  assert.deepEqual(describePath('/live/town-hall/abc-init.mp4'), { stream: 'town-hall', kind: 'segment' });
  assert.deepEqual(describePath('/watch/town-hall'), { stream: 'town-hall', kind: 'page' });
  assert.deepEqual(describePath('/'), { stream: null, kind: 'page' });
  assert.deepEqual(describePath('/live/Bad/index.m3u8'), { stream: null, kind: 'other' });
  assert.deepEqual(describePath('/assets/hls.min.js'), { stream: null, kind: 'other' });
  // A quality ladder: /live/<stream>/<rendition>/<file> belongs to the stream.
  assert.deepEqual(describePath('/live/town-hall/720p/index.m3u8'), { stream: 'town-hall', kind: 'playlist' });
  assert.deepEqual(describePath('/live/town-hall/source/abc-12.m4s'), { stream: 'town-hall', kind: 'segment' });
  assert.deepEqual(describePath('/live/town-hall/360p/abc-init.mp4'), { stream: 'town-hall', kind: 'segment' });
  assert.deepEqual(describePath('/live/town-hall/other/abc-12.m4s'), { stream: null, kind: 'other' });
});

test('X-Forwarded-For is believed only from trusted peers', () => {
  const trusted = createTrustList(['127.0.0.1', '10.0.0.0/8', '::1']);
  assert.equal(resolveClientIp('203.0.113.9', '1.2.3.4', trusted), '203.0.113.9', 'untrusted peer: its claim is ignored');
  assert.equal(resolveClientIp('::ffff:127.0.0.1', '198.51.100.7', trusted), '198.51.100.7');
  assert.equal(resolveClientIp('127.0.0.1', '6.6.6.6, 198.51.100.7', trusted), '198.51.100.7', 'only the hop our proxy added counts');
  assert.equal(resolveClientIp('127.0.0.1', '198.51.100.7, 10.1.2.3', trusted), '198.51.100.7', 'trusted hops are skipped');
  assert.equal(resolveClientIp('127.0.0.1', 'garbage', trusted), '127.0.0.1');
  assert.equal(resolveClientIp('127.0.0.1', undefined, trusted), '127.0.0.1');
  assert.equal(normalizeIp('::ffff:10.0.0.1'), '10.0.0.1');
  assert.throws(() => createTrustList(['not-an-ip']), /not an IP/);
  assert.throws(() => createTrustList(['10.0.0.0/33']), /bad CIDR/);
});

test('refused or odd file names under a stream are not counted as media', () => {
  assert.deepEqual(describePath('/live/town-hall/..%2fx.m4s'), { stream: 'town-hall', kind: 'other' });
  assert.deepEqual(describePath('/live/town-hall/index.m3u8.tmp'), { stream: 'town-hall', kind: 'other' });
  assert.deepEqual(describePath('/live/town-hall/.hidden.m4s'), { stream: 'town-hall', kind: 'other' });
});
