import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Backend, HoldMovedError, type HeldRequest } from '../src/backend.ts';
import { BackendPool } from '../src/backend-pool.ts';
import { LeastInFlightBalancer } from '../src/balancer.ts';
import { classifyUpstreamError, heldTimeoutMs, STALE_SOCKET_WINDOW_MS } from '../src/forwarder.ts';
import { canonicalDirectives, directiveHoldMs, hintedPartPath, isBlockingDirective } from '../src/hls-directives.ts';
import { PlaylistCache } from '../src/playlist-cache.ts';
import { PreloadHints } from '../src/preload-hints.ts';
import type { CachedSegment, FillWait } from '../src/segment-cache.ts';

const isHit = (found: CachedSegment | FillWait): boolean => 'body' in found;
const settled = (found: CachedSegment | FillWait): Promise<CachedSegment | null> => ('body' in found ? Promise.resolve(found) : found.pending);
const answer = (status: number, cacheControl?: string, body = '#EXTM3U\n'): CachedSegment => ({
  status,
  headers: cacheControl === undefined ? {} : { 'cache-control': cacheControl },
  body: Buffer.from(body),
  filledFrom: 'http://web-1',
  cacheable: false,
});

describe('canonical LL-HLS directives', () => {
  test('only _HLS_msn, _HLS_part, _HLS_skip, in that order; everything else left out', () => {
    const cases: Array<[string, string | null]> = [
      ['', ''],
      ['CMCD=sid%3D%22x%22&token=abc', ''],
      ['_HLS_msn=120', '_HLS_msn=120'],
      ['_HLS_msn=120&_HLS_part=3', '_HLS_msn=120&_HLS_part=3'],
      ['_HLS_part=3&CMCD=bl%3D1&_HLS_msn=120&token=t', '_HLS_msn=120&_HLS_part=3'],
      ['token=t&_HLS_skip=YES&_HLS_part=0&_HLS_msn=0', '_HLS_msn=0&_HLS_part=0&_HLS_skip=YES'],
      ['_HLS_skip=v2', '_HLS_skip=v2'],
      ['_HLS_pathway=a&_HLS_primary_id=x', ''], // other _HLS_ parameters (steering, interstitials) are not delivery directives
      ['_hls_msn=1', ''], // names are case-sensitive
      ['_HLS_msn=999999999999999', '_HLS_msn=999999999999999'],
      // malformed: not cached, forwarded as sent
      ['_HLS_part=3', null],
      ['_HLS_msn=', null],
      ['_HLS_msn', null],
      ['_HLS_msn=01', null],
      ['_HLS_msn=-1', null],
      ['_HLS_msn=1.0', null],
      ['_HLS_msn=%31', null],
      ['_HLS_msn=1e3', null],
      ['_HLS_msn=+1', null],
      ['_HLS_msn=1000000000000000', null],
      ['_HLS_msn=1&_HLS_msn=1', null],
      ['_HLS_msn=1&_HLS_part=1&_HLS_part=2', null],
      ['_HLS_msn=1&_HLS_skip=yes', null],
      ['_HLS_msn=1&_HLS_skip=NO', null],
      ['_HLS_msn=1&_HLS_skip=YES&_HLS_skip=YES', null],
    ];
    for (const [query, expected] of cases) assert.equal(canonicalDirectives(query), expected, query);
    assert.equal(isBlockingDirective('_HLS_msn=1&_HLS_part=0'), true);
    assert.equal(isBlockingDirective('_HLS_skip=YES'), false);
  });

  test('hold time of a directive answer: max-age up to 2 s, never no-store or private, else the plain TTL', () => {
    assert.equal(directiveHoldMs('public, max-age=1', 100), 1_000);
    assert.equal(directiveHoldMs('max-age=60', 100), 2_000, 'capped');
    assert.equal(directiveHoldMs('public, max-age=0', 100), 0);
    assert.equal(directiveHoldMs('no-store', 100), 0);
    assert.equal(directiveHoldMs('private, max-age=1', 100), 0);
    assert.equal(directiveHoldMs('no-cache', 100), 100);
    assert.equal(directiveHoldMs(undefined, 100), 100);
  });

  test('the hinted part of a playlist, resolved next to it', () => {
    const body = (hint: string): Buffer => Buffer.from(`#EXTM3U\n#EXT-X-PART:DURATION=0.33333,URI="r-p1.m4s"\n${hint}\n`);
    assert.equal(hintedPartPath('/live/demo/index.m3u8', body('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="r-p2.m4s"')), '/live/demo/r-p2.m4s');
    assert.equal(hintedPartPath('/live/demo/720p/index.m3u8', body('#EXT-X-PRELOAD-HINT:URI="r-p2.m4s",TYPE=PART')), '/live/demo/720p/r-p2.m4s');
    assert.equal(hintedPartPath('/live/demo/index.m3u8', body('#EXT-X-PRELOAD-HINT:TYPE=MAP,URI="r-init.mp4"')), null);
    assert.equal(hintedPartPath('/live/demo/index.m3u8', body('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="../other/x.m4s"')), null, 'only a plain name');
    assert.equal(hintedPartPath('/live/demo/index.m3u8', body('#EXT-X-ENDLIST')), null);
    const hints = new PreloadHints();
    hints.update('/live/demo/index.m3u8', body('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="r-p2.m4s"'));
    assert.equal(hints.isHinted('/live/demo/r-p2.m4s'), true);
    hints.update('/live/demo/index.m3u8', body('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="r-p3.m4s"'));
    assert.equal(hints.isHinted('/live/demo/r-p2.m4s'), false, 'written and listed: no longer held');
    assert.equal(hints.isHinted('/live/demo/r-p3.m4s'), true);
    hints.update('/live/demo/index.m3u8', body('#EXT-X-ENDLIST'));
    assert.equal(hints.isHinted('/live/demo/r-p3.m4s'), false);
  });
});

describe('playlist cache with directives', () => {
  const PATH = '/live/a/index.m3u8';

  test('keyed by path + canonical directives; the fill asks for exactly that key, held when it blocks', async () => {
    let now = 0;
    const cache = new PlaylistCache(100, { now: () => now });
    const asked: Array<[string, boolean]> = [];
    const fill = async (target: string, held: boolean): Promise<CachedSegment> => (asked.push([target, held]), answer(200, 'public, max-age=1'));
    await settled(cache.lookup(PATH, '_HLS_msn=5&_HLS_part=1', fill));
    await settled(cache.lookup(PATH, '_HLS_msn=5&_HLS_part=2', fill));
    await settled(cache.lookup(PATH, '', fill));
    await settled(cache.lookup(PATH, '_HLS_skip=YES', fill));
    assert.deepEqual(asked, [
      [`${PATH}?_HLS_msn=5&_HLS_part=1`, true],
      [`${PATH}?_HLS_msn=5&_HLS_part=2`, true],
      [PATH, false],
      [`${PATH}?_HLS_skip=YES`, false],
    ]);
    assert.ok(isHit(cache.lookup(PATH, '_HLS_msn=5&_HLS_part=1', fill)));
    now += 999;
    assert.ok(isHit(cache.lookup(PATH, '_HLS_msn=5&_HLS_part=1', fill)), 'held for max-age=1');
    assert.ok(!isHit(cache.lookup(PATH, '', fill)), 'the plain answer only PLAYLIST_CACHE_MS');
    now += 2;
    assert.ok(!isHit(cache.lookup(PATH, '_HLS_msn=5&_HLS_part=1', fill)));
    const s = cache.stats();
    assert.deepEqual(s.byDirectives.yes, { hits: 2, sharedFills: 0, fills: 4 });
    assert.deepEqual(s.byDirectives.no, { hits: 0, sharedFills: 0, fills: 2 });
    assert.equal(s.hits, 2);
    assert.equal(s.fills, 6);
  });

  test('max-age is capped at 2 s; no-store and errors are never held; no-cache falls back to PLAYLIST_CACHE_MS; plain 404s still held', async () => {
    let now = 0;
    const cache = new PlaylistCache(100, { now: () => now });
    const with_ = (a: CachedSegment) => async () => a;
    await settled(cache.lookup(PATH, '_HLS_msn=1', with_(answer(200, 'public, max-age=30'))));
    await settled(cache.lookup(PATH, '_HLS_msn=2', with_(answer(200, 'no-store'))));
    await settled(cache.lookup(PATH, '_HLS_msn=3', with_(answer(200, 'no-cache'))));
    await settled(cache.lookup(PATH, '_HLS_msn=4', with_(answer(400, 'no-store'))));
    await settled(cache.lookup(PATH, '_HLS_msn=5', with_(answer(404, 'no-store'))));
    await settled(cache.lookup(PATH, '', with_(answer(404, 'no-store'))));
    const never = async (): Promise<CachedSegment> => assert.fail('held');
    assert.ok(!isHit(cache.lookup(PATH, '_HLS_msn=2', async () => answer(200))), 'no-store: not held');
    assert.ok(!isHit(cache.lookup(PATH, '_HLS_msn=4', async () => answer(200))), 'a 400 is not held');
    assert.ok(!isHit(cache.lookup(PATH, '_HLS_msn=5', async () => answer(200))), 'nor a no-store 404 to a directive');
    assert.ok(isHit(cache.lookup(PATH, '', never)), "a plain 404 (broadcast not started) is held as before, whatever web's no-store says");
    now += 99;
    assert.ok(isHit(cache.lookup(PATH, '_HLS_msn=3', never)));
    now += 2;
    assert.ok(!isHit(cache.lookup(PATH, '_HLS_msn=3', async () => answer(200))), 'no-cache: PLAYLIST_CACHE_MS');
    now = 1_999;
    assert.ok(isHit(cache.lookup(PATH, '_HLS_msn=1', never)));
    now = 2_001;
    assert.ok(!isHit(cache.lookup(PATH, '_HLS_msn=1', async () => answer(200))), 'max-age=30 held 2 s only');
  });

  test('bounded LRU: 5 000 made-up paths do not evict a live playlist that is being watched', async () => {
    // All within one TTL: nothing expires, so only the bound can push entries out.
    const cache = new PlaylistCache(100, { now: () => 0 });
    const live = '/live/live/index.m3u8';
    let liveFills = 0;
    const liveFill = async (): Promise<CachedSegment> => (liveFills++, answer(200, 'no-cache'));
    await settled(cache.lookup(live, '', liveFill));
    for (let i = 0; i < 5_000; i++) {
      await settled(cache.lookup(`/live/x${i}/index.m3u8`, '', async () => answer(404, 'no-store', 'not found\n')));
      // Viewers keep asking for the live playlist meanwhile.
      if (i % 50 === 0) assert.ok(isHit(cache.lookup(live, '', liveFill)), `live entry still held after ${i} made-up paths`);
    }
    const s = cache.stats();
    assert.equal(liveFills, 1, 'never pushed out, never refilled');
    assert.equal(s.entries, 4_096, 'bounded');
    assert.equal(s.evictions, 5_001 - 4_096, 'made-up paths pushed out each other, oldest first');
    assert.ok(isHit(cache.lookup(live, '', liveFill)));

    // The bound is a real LRU: an entry nobody asks for goes first.
    const cold = new PlaylistCache(100, { now: () => 0, maxEntries: 10 });
    await settled(cold.lookup('/live/cold/index.m3u8', '', async () => answer(200)));
    for (let i = 0; i < 10; i++) await settled(cold.lookup(`/live/y${i}/index.m3u8`, '', async () => answer(404)));
    assert.ok(!isHit(cold.lookup('/live/cold/index.m3u8', '', async () => answer(200))));
    assert.equal(cold.stats().entries, 10);
  });

  test('expired answers are swept', async () => {
    let now = 0;
    const cache = new PlaylistCache(100, { now: () => now });
    for (let i = 0; i < 20; i++) await settled(cache.lookup(`/live/s${i}/index.m3u8`, '', async () => answer(200)));
    now = 50;
    await settled(cache.lookup(PATH, '_HLS_msn=1', async () => answer(200, 'max-age=1')));
    now = 200;
    cache.sweep();
    assert.equal(cache.stats().entries, 1);
  });
});

describe('held requests at a backend', () => {
  const thresholds = { healthyThreshold: 1, unhealthyThreshold: 2 };
  const healthy = (url: string): Backend => {
    const b = new Backend(url, thresholds);
    b.recordCheck(true, 'ok');
    return b;
  };
  const holdOf = (onMove: () => void = () => {}): HeldRequest => ({ moveHold: onMove });

  test('counted in held, not inFlight: the balancer does not see them', () => {
    const a = healthy('http://a:1');
    const b = healthy('http://b:1');
    const holds = Array.from({ length: 100 }, () => holdOf());
    for (const h of holds) a.startRequest(h);
    assert.deepEqual([a.inFlight, a.held, a.requests], [0, 100, 100]);
    const balancer = new LeastInFlightBalancer();
    const picks = Array.from({ length: 10 }, () => balancer.pick([a, b])!.url);
    assert.deepEqual(picks.filter((u) => u === 'http://a:1').length, 5, 'still round-robin');
    for (const h of holds) a.finishRequest(h);
    a.finishRequest(holds[0]!); // settled twice: counted once
    assert.deepEqual([a.inFlight, a.held], [0, 0]);
    assert.equal(a.snapshot().held, 0);
  });

  test('a draining backend waits for its held requests too', () => {
    const a = healthy('http://a:1');
    const hold = holdOf();
    a.startRequest(hold);
    a.drain();
    assert.equal(a.state, 'draining');
    a.finishRequest(hold);
    assert.equal(a.state, 'removed');
  });

  test('turning unhealthy moves every held request (not the others) when another backend is in rotation', () => {
    const pool = new BackendPool('web', thresholds);
    const a = pool.add('http://127.0.0.1:1').backend;
    const b = pool.add('http://127.0.0.1:2').backend;
    a.recordCheck(true, 'ok');
    let moved = 0;
    const holds = [holdOf(() => moved++), holdOf(() => moved++)];
    for (const h of holds) a.startRequest(h);
    a.startRequest();
    a.eject('reset');
    assert.equal(moved, 0, 'the only replica: its held requests stay (it may still answer them)');
    a.recordCheck(true, 'ok');
    b.recordCheck(true, 'ok');
    a.eject('reset');
    assert.equal(moved, 2);
    assert.equal(a.holdsMoved, 2);
    assert.equal(new HoldMovedError().code, 'HOLD_MOVED');
  });

  test('a reset on a reused socket is the idle race only right after sending; held requests get a long idle limit', () => {
    const err = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const reused = { reusedSocket: true } as never;
    assert.equal(classifyUpstreamError(err, reused), 'stale_socket');
    assert.equal(classifyUpstreamError(err, reused, STALE_SOCKET_WINDOW_MS - 1), 'stale_socket');
    assert.equal(classifyUpstreamError(err, reused, 3_000), 'reset', 'held for seconds, then cut: the replica died');
    assert.equal(heldTimeoutMs(30_000), 30_000);
    assert.equal(heldTimeoutMs(5_000), 30_000, 'never below web’s longest hold');
    assert.equal(heldTimeoutMs(60_000), 60_000);
    assert.equal(heldTimeoutMs(0), 0);
  });
});
