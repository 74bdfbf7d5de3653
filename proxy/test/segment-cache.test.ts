import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PlaylistCache } from '../src/playlist-cache.ts';
import { isCacheableSegmentResponse, replayedHeaders, SegmentCache, type CachedSegment, type FillWait } from '../src/segment-cache.ts';

const segment = (bytes: number, cacheable = true): CachedSegment => ({ status: cacheable ? 200 : 404, headers: { 'content-type': 'video/mp4' }, body: Buffer.alloc(bytes, 1), filledFrom: 'http://web-1', cacheable });
const settled = (found: CachedSegment | FillWait): Promise<CachedSegment | null> => ('body' in found ? Promise.resolve(found) : found.pending);
const isHit = (found: CachedSegment | FillWait): boolean => 'body' in found;

describe('segment cache', () => {
  it('fills once, then hits; requests during the fill share it', async () => {
    const cache = new SegmentCache(10_000, 5_000);
    let fills = 0;
    let release!: (s: CachedSegment) => void;
    const fill = (): Promise<CachedSegment> => {
      fills++;
      return new Promise((resolve) => (release = resolve));
    };
    const first = cache.lookup('/live/a/s-1.m4s', fill) as FillWait;
    const second = cache.lookup('/live/a/s-1.m4s', fill) as FillWait;
    assert.equal(first.shared, false, 'the first request starts the fill');
    assert.equal(second.shared, true, 'the second waits for it');
    release(segment(1000));
    const [a, b] = await Promise.all([first.pending, second.pending]);
    assert.equal(a, b);
    assert.equal(fills, 1);
    assert.ok(isHit(cache.lookup('/live/a/s-1.m4s', fill)), 'then a hit, answered synchronously');
    assert.deepEqual(cache.stats(), { hits: 1, sharedFills: 1, fills: 1, uncacheable: 0, evictions: 0, idleEvictions: 0, entries: 1, bytes: 1000 });
  });

  it('evicts the least recently used segments beyond its size', async () => {
    const cache = new SegmentCache(3_000, 3_000);
    for (const n of [1, 2, 3]) await settled(cache.lookup(`/s-${n}`, async () => segment(1000)));
    assert.ok(isHit(cache.lookup('/s-1', async () => assert.fail('s-1 is held')))); // touch: s-2 is now the oldest
    await settled(cache.lookup('/s-4', async () => segment(1000)));
    const refill = cache.lookup('/s-2', async () => segment(1000));
    assert.ok(!isHit(refill), 's-2 was evicted');
    await settled(refill); // evicts s-3, now the oldest
    assert.ok(isHit(cache.lookup('/s-1', async () => null)), 's-1 stayed');
    assert.ok(cache.stats().bytes <= 3000);
    assert.equal(cache.stats().evictions, 2);
  });

  it('drops segments nobody asked for during the idle time, keeps the ones being watched', async () => {
    let now = 0;
    const cache = new SegmentCache(1_000_000, 10_000, 60_000, () => now);
    for (const n of [1, 2, 3]) await settled(cache.lookup(`/s-${n}`, async () => segment(100)));
    now = 50_000;
    assert.ok(isHit(cache.lookup('/s-3', async () => segment(100))), 's-3 is still watched');
    now = 70_000;
    cache.sweep();
    assert.equal(cache.stats().entries, 1);
    assert.equal(cache.stats().bytes, 100);
    assert.equal(cache.stats().idleEvictions, 2);
    assert.ok(isHit(cache.lookup('/s-3', async () => segment(100))));
  });

  it('holds nothing it must not: an uncacheable answer reaches only those who waited; a failed fill resolves null; the next request tries again', async () => {
    const cache = new SegmentCache(10_000, 2_000);
    const notFound = await settled(cache.lookup('/s-9', async () => segment(20, false)));
    assert.equal(notFound?.status, 404, 'the waiting requests get the answer');
    assert.ok(!isHit(cache.lookup('/s-9', async () => segment(20))), 'but it is not held');
    assert.equal((await settled(cache.lookup('/big', async () => segment(2_001))))?.body.length, 2_001, 'over the entry limit: answered');
    assert.ok(!isHit(cache.lookup('/big', async () => segment(10))), 'but not held');
    assert.equal(await settled(cache.lookup('/broken', () => Promise.reject(new Error('ECONNRESET')))), null, 'a failed fill: forward');
    let tried = false;
    assert.notEqual(await settled(cache.lookup('/broken', async () => ((tried = true), segment(10)))), null);
    assert.ok(tried, 'a failure is not remembered');
    assert.equal(cache.stats().uncacheable, 3);
  });

  it('caches only 200 answers marked immutable and not private', () => {
    const immutable = { 'cache-control': 'public, max-age=31536000, immutable' };
    assert.equal(isCacheableSegmentResponse(200, immutable), true);
    assert.equal(isCacheableSegmentResponse(206, immutable), false);
    assert.equal(isCacheableSegmentResponse(404, immutable), false);
    assert.equal(isCacheableSegmentResponse(200, { 'cache-control': 'max-age=1' }), false);
    assert.equal(isCacheableSegmentResponse(200, { 'cache-control': 'private, immutable' }), false);
    assert.equal(isCacheableSegmentResponse(200, {}), false);
  });

  it('replays the content headers, not hop-by-hop or per-response ones', () => {
    const headers = replayedHeaders({ 'content-type': 'video/mp4', 'cache-control': 'immutable', etag: '"x"', connection: 'keep-alive', 'keep-alive': 'timeout=5', date: 'now', 'x-request-id': 'r1', 'content-length': '10' }, 10);
    assert.deepEqual(headers, { 'content-length': '10', 'content-type': 'video/mp4', 'cache-control': 'immutable', etag: '"x"' });
  });
});

describe('playlist cache', () => {
  it('holds a 200 or 404 answer for its TTL, shares one fill, and holds nothing else', async () => {
    let now = 1_000;
    const cache = new PlaylistCache(100, { now: () => now });
    let fills = 0;
    const answer = (status: number): CachedSegment => ({ status, headers: {}, body: Buffer.from('#EXTM3U\n'), filledFrom: 'http://web-1', cacheable: false });
    const fill = async (): Promise<CachedSegment> => ((fills += 1), answer(200));
    const first = cache.lookup('/live/a/index.m3u8', '', fill) as FillWait;
    const second = cache.lookup('/live/a/index.m3u8', '', fill) as FillWait;
    assert.equal(second.shared, true);
    await first.pending;
    assert.ok(isHit(cache.lookup('/live/a/index.m3u8', '', fill)), 'held within the TTL');
    now += 99;
    assert.ok(isHit(cache.lookup('/live/a/index.m3u8', '', fill)));
    now += 2;
    assert.ok(!isHit(cache.lookup('/live/a/index.m3u8', '', fill)), 'expired after 100 ms');
    await Promise.resolve();
    assert.equal(fills, 2);

    await settled(cache.lookup('/live/b/index.m3u8', '', async () => answer(404)));
    assert.ok(isHit(cache.lookup('/live/b/index.m3u8', '', fill)), 'a 404 (broadcast not started) is held too');
    await settled(cache.lookup('/live/c/index.m3u8', '', async () => answer(503)));
    assert.ok(!isHit(cache.lookup('/live/c/index.m3u8', '', fill)), 'a 503 is not');
    assert.equal(new PlaylistCache(0).enabled, false, '0 turns it off');
  });
});
