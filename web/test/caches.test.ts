import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PlaylistCache } from '../src/playlist-cache.ts';
import { SegmentCache } from '../src/segment-cache.ts';
import { SingleFlight } from '../src/single-flight.ts';

const bytes = (n: number, fill = 0): Buffer => Buffer.alloc(n, fill);

describe('SegmentCache', () => {
  it('accounts bytes and entries', () => {
    const cache = new SegmentCache(100);
    cache.set('a', bytes(30));
    cache.set('b', bytes(20));
    assert.equal(cache.bytes, 50);
    assert.equal(cache.size, 2);
    assert.equal(cache.get('a')?.length, 30);
    assert.equal(cache.get('missing'), undefined);
  });

  it('replacing a key does not count it twice', () => {
    const cache = new SegmentCache(100);
    cache.set('a', bytes(30));
    cache.set('a', bytes(40));
    assert.equal(cache.bytes, 40);
    assert.equal(cache.size, 1);
    assert.equal(cache.evictions, 0);
  });

  it('evicts the least recently used entries to stay within budget', () => {
    const cache = new SegmentCache(100);
    cache.set('a', bytes(40));
    cache.set('b', bytes(40));
    cache.get('a'); // a is now more recent than b
    cache.set('c', bytes(40));
    assert.equal(cache.get('b'), undefined);
    assert.ok(cache.get('a'));
    assert.ok(cache.get('c'));
    assert.equal(cache.bytes, 80);
    assert.equal(cache.evictions, 1);
  });

  it('evicts as many entries as needed for a big one', () => {
    const cache = new SegmentCache(100);
    for (const key of ['a', 'b', 'c', 'd']) cache.set(key, bytes(25));
    assert.equal(cache.bytes, 100);
    cache.set('big', bytes(90));
    assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => cache.get(k) !== undefined), [false, false, false, false]);
    assert.equal(cache.bytes, 90);
    assert.equal(cache.size, 1);
    assert.equal(cache.evictions, 4);
  });

  it('does not store an entry bigger than the whole budget (and keeps the others)', () => {
    const cache = new SegmentCache(100);
    cache.set('a', bytes(10));
    assert.equal(cache.set('huge', bytes(101)), false);
    assert.equal(cache.get('huge'), undefined);
    assert.equal(cache.bytes, 10);
  });

  it('a zero budget caches nothing', () => {
    const cache = new SegmentCache(0);
    assert.equal(cache.set('a', bytes(1)), false);
    assert.equal(cache.bytes, 0);
  });

  it('delete gives the bytes back', () => {
    const cache = new SegmentCache(100);
    cache.set('a', bytes(10));
    assert.equal(cache.delete('a'), true);
    assert.equal(cache.delete('a'), false);
    assert.equal(cache.bytes, 0);
    assert.equal(cache.size, 0);
  });
});

describe('SingleFlight', () => {
  it('concurrent callers for one key share one run', async () => {
    const flights = new SingleFlight<number>();
    let runs = 0;
    let release!: (value: number) => void;
    const work = (): Promise<number> => {
      runs++;
      return new Promise((resolve) => (release = resolve));
    };
    const results = Promise.all(Array.from({ length: 50 }, () => flights.run('seg', work)));
    assert.equal(flights.size, 1);
    release(7);
    assert.deepEqual(await results, Array(50).fill(7));
    assert.equal(runs, 1);
    assert.equal(flights.size, 0);
    // Once settled, the next call runs again.
    await flights.run('seg', async () => ++runs);
    assert.equal(runs, 2);
  });

  it('different keys run separately, and a failure reaches every waiter then clears', async () => {
    const flights = new SingleFlight<string>();
    const a = flights.run('a', async () => 'A');
    const b = flights.run('b', async () => 'B');
    assert.deepEqual(await Promise.all([a, b]), ['A', 'B']);
    const failing = (): Promise<string> => Promise.reject(new Error('disk on fire'));
    const both = [flights.run('c', failing), flights.run('c', failing)];
    for (const p of both) await assert.rejects(p, /disk on fire/);
    assert.equal(flights.size, 0);
  });
});

describe('PlaylistCache', () => {
  it('serves from memory within the TTL, reloads after it', async () => {
    let now = 1_000;
    let version = 1;
    let loads = 0;
    const cache = new PlaylistCache(async () => {
      loads++;
      return Buffer.from(`v${version}`);
    }, 100, () => now);
    assert.equal((await cache.get('p'))?.toString(), 'v1');
    version = 2;
    now += 99;
    assert.equal(cache.peek('p')?.toString(), 'v1');
    assert.equal((await cache.get('p'))?.toString(), 'v1');
    now += 1; // 100 ms after the read started: stale
    assert.equal(cache.peek('p'), undefined);
    assert.equal((await cache.get('p'))?.toString(), 'v2');
    assert.equal(loads, 2);
  });

  it('freshness counts from when the read started', async () => {
    let now = 0;
    let release!: (b: Buffer) => void;
    const cache = new PlaylistCache(() => new Promise<Buffer>((resolve) => (release = resolve)), 100, () => now);
    const pending = cache.get('p');
    now = 80; // a slow read
    release(Buffer.from('x'));
    await pending;
    now = 100;
    assert.equal(cache.peek('p'), undefined);
  });

  it('caches "missing" too, and shares concurrent reads', async () => {
    let loads = 0;
    const cache = new PlaylistCache(async () => {
      loads++;
      return null;
    }, 100, () => 0);
    const results = await Promise.all([cache.get('p'), cache.get('p'), cache.get('p')]);
    assert.deepEqual(results, [null, null, null]);
    assert.equal(cache.peek('p'), null);
    assert.equal(loads, 1);
  });

  it('stays bounded with many names', async () => {
    let now = 0;
    const cache = new PlaylistCache(async (key) => Buffer.from(key), 100, () => now);
    for (let i = 0; i < 1_500; i++) await cache.get(`p${i}`);
    assert.ok(cache.size <= 1_000, `size ${cache.size}`);
    now = 1_000;
    await cache.get('fresh');
    assert.equal(cache.size <= 1_000, true);
  });
});
