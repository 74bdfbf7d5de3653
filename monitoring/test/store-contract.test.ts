/**
 * ONE contract for both AccessStore implementations (monitoring/src/store/access-store.ts).
 * DuckDB runs always. Elasticsearch runs when ELASTICSEARCH_URL points at a real Elasticsearch 9
 * server (ELASTICSEARCH_API_KEY or ELASTICSEARCH_USERNAME/ELASTICSEARCH_PASSWORD optional);
 * otherwise its run is reported as skipped. There is no mock: a skipped run tested nothing.
 *
 * All data is synthetic with fixed timestamps (fixtures/access-records.ts), never the wall clock.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import type { AccessStore } from '../src/store/access-store.ts';
import { DuckDbAccessStore } from '../src/store/duckdb-store.ts';
import { ElasticsearchAccessStore } from '../src/store/elasticsearch-store.ts';
import { T0, ipv4, recordMaker } from './fixtures/access-records.ts';

export interface StoreFixture {
  /** A new store object over the same storage on every call (close + create + open = restart). */
  create(): AccessStore;
  /** Removes the storage (files, data stream, template, policy). */
  cleanup(): Promise<void>;
}

export interface ContractOptions {
  /** Whether applyRetention deletes (DuckDB) or returns 0 because ILM does it (Elasticsearch). */
  retentionDeletes: boolean;
  skip?: string | false;
}

const SECOND = 1000;

export function runAccessStoreContract(name: string, makeFixture: () => Promise<StoreFixture> | StoreFixture, options: ContractOptions): void {
  /** Opens a store on fresh storage, runs the body, always closes and cleans up. */
  async function withStore(body: (store: AccessStore, fixture: StoreFixture) => Promise<void>): Promise<void> {
    const fixture = await makeFixture();
    let store = fixture.create();
    try {
      await store.open();
      await body(store, fixture);
    } finally {
      await store.close().catch(() => undefined);
      await fixture.cleanup();
    }
  }

  // The skip goes on every test (not on the suite) so that each one is reported as skipped.
  const skip = { skip: options.skip ?? false };
  describe(`AccessStore contract: ${name}`, () => {
    test('opens idempotently and answers on an empty store', skip, () =>
      withStore(async (store) => {
        await store.open();
        assert.equal(await store.ping(), true);
        assert.equal(await store.count(), 0);
        assert.equal(await store.newestRecordTime(), null);
        assert.equal((await store.viewersNow(new Date(T0), 30 * SECOND)).size, 0);
        assert.deepEqual(await store.recordingsWatched(new Date(T0), 30 * SECOND), []);
        const history = await store.viewerHistory('alpha', new Date(T0), new Date(T0 + 30 * SECOND), 10 * SECOND);
        assert.deepEqual(history, [0, 1, 2].map((i) => ({ t: new Date(T0 + i * 10 * SECOND), ips: 0, sessions: 0 })));
        assert.deepEqual(await store.traffic(null, 'proxy', new Date(T0), new Date(T0 + 60 * SECOND)), {
          requests: 0, bytes: 0, serverErrors: 0, clientErrors: 0, byBackend: {},
        });
      }));

    test('insert is idempotent by record_id (replays and in-batch repeats count as duplicates)', skip, () =>
      withStore(async (store) => {
        const rec = recordMaker('idem');
        const [r1, r2, r3] = [rec({ at: T0 }), rec({ at: T0 + 1 }), rec({ at: T0 + 2 })];
        assert.deepEqual(await store.insert([r1!, r2!]), { inserted: 2, duplicates: 0, rejected: [] });
        assert.deepEqual(await store.insert([r1!]), { inserted: 0, duplicates: 1, rejected: [] });
        assert.deepEqual(await store.insert([r3!, r3!, r2!]), { inserted: 1, duplicates: 2, rejected: [] });
        // Same id, different content (a replay must never become a second record): first copy wins.
        assert.deepEqual(await store.insert([{ ...r1!, bytes: 999_999 }]), { inserted: 0, duplicates: 1, rejected: [] });
        assert.equal(await store.count(), 3);
        const traffic = await store.traffic('alpha', 'proxy', new Date(T0), new Date(T0 + SECOND));
        assert.equal(traffic.requests, 3);
        assert.equal(traffic.bytes, 3 * 125_000);
      }));

    test('viewersNow counts distinct IPs and sessions per stream in (t - W, t], proxy playlist/segment only', skip, () =>
      withStore(async (store) => {
        const rec = recordMaker('now');
        const t = T0 + 60 * SECOND;
        const W = 30 * SECOND;
        const records = [];
        // alpha: 20 viewers, one session each, playlist + segment inside the window.
        for (let i = 1; i <= 20; i++) {
          records.push(rec({ at: t - 20 * SECOND, kind: 'playlist', client_ip: ipv4(1, i), session_id: `a-${i}` }));
          records.push(rec({ at: t - 10 * SECOND, kind: 'segment', client_ip: ipv4(1, i), session_id: `a-${i}` }));
        }
        // Four players behind one NAT address: 1 IP, 4 sessions.
        for (let s = 1; s <= 4; s++) records.push(rec({ at: t - 5 * SECOND, client_ip: '203.0.113.7', session_id: `nat-${s}` }));
        // Another spelling of a known address is the same viewer (IPv4-mapped IPv6; IPv6 zero runs).
        records.push(rec({ at: t - 3 * SECOND, client_ip: '::ffff:10.1.0.1', session_id: 'a-1' }));
        records.push(rec({ at: t - 4 * SECOND, client_ip: '2001:db8::5', session_id: 'v6-1' }));
        records.push(rec({ at: t - 4 * SECOND, client_ip: '2001:0DB8:0:0:0:0:0:5', session_id: 'v6-1' }));
        // Window edges: t - W is outside, t is inside, t + 1 ms is outside, t - W + 1 ms is inside.
        records.push(rec({ at: t - W, client_ip: '10.9.0.1', session_id: 'edge-1' }));
        records.push(rec({ at: t, client_ip: '10.9.0.2', session_id: 'edge-2' }));
        records.push(rec({ at: t + 1, client_ip: '10.9.0.3', session_id: 'edge-3' }));
        records.push(rec({ at: t - W + 1, client_ip: '10.9.0.4', session_id: null })); // an IP without a session id
        // Status does not matter: a player polling a playlist that 404s is still watching.
        records.push(rec({ at: t - SECOND, kind: 'playlist', status: 404, client_ip: '10.9.0.5', session_id: 'err-5' }));
        // Not viewers: web tier (double counting), watch page, other files, no stream.
        records.push(rec({ at: t - SECOND, tier: 'web', client_ip: '10.2.0.1', session_id: 'web-1' }));
        records.push(rec({ at: t - SECOND, kind: 'page', client_ip: '10.2.0.2', session_id: 'page-1' }));
        records.push(rec({ at: t - SECOND, kind: 'other', client_ip: '10.2.0.3', session_id: 'other-1' }));
        records.push(rec({ at: t - SECOND, kind: 'other', stream: null, client_ip: '10.2.0.4', session_id: 'none-1' }));
        // beta: counted apart; one IP also watches alpha; one session seen from two IPs.
        records.push(rec({ at: t - 2 * SECOND, stream: 'beta', client_ip: ipv4(1, 1), session_id: 'b-1' }));
        records.push(rec({ at: t - 2 * SECOND, stream: 'beta', client_ip: '10.3.0.1', session_id: 'b-2' }));
        records.push(rec({ at: t - 2 * SECOND, stream: 'beta', kind: 'playlist', client_ip: '10.3.0.2', session_id: 'b-2' }));
        // gamma: only before the window, so absent.
        records.push(rec({ at: t - 40 * SECOND, stream: 'gamma', client_ip: '10.4.0.1', session_id: 'g-1' }));

        const result = await store.insert(records);
        assert.deepEqual(result, { inserted: records.length, duplicates: 0, rejected: [] });

        const now = await store.viewersNow(new Date(t), W);
        assert.deepEqual([...now.keys()].sort(), ['alpha', 'beta']);
        // ips: 20 + NAT + IPv6 + 10.9.0.2 + 10.9.0.4 + 10.9.0.5; sessions: 20 + 4 + v6-1 + edge-2 + err-5
        assert.deepEqual(now.get('alpha'), { ips: 25, sessions: 27 });
        assert.deepEqual(now.get('beta'), { ips: 3, sessions: 2 });

        // A 5 s window: the NAT records at exactly t - 5 s fall out; 10.1.0.1 (mapped form), the
        // IPv6 viewer, 10.9.0.2 and 10.9.0.5 stay.
        const narrow = await store.viewersNow(new Date(t), 5 * SECOND);
        assert.deepEqual(narrow.get('alpha'), { ips: 4, sessions: 4 });
        assert.deepEqual(narrow.get('beta'), { ips: 3, sessions: 2 });

        // Later, everyone has left the window.
        assert.equal((await store.viewersNow(new Date(t + W + 2), W)).size, 0);
      }));

    test('requests the proxy refused are stored with their reason but never counted as viewers', skip, () =>
      withStore(async (store) => {
        const rec = recordMaker('refused');
        const t = T0 + 60 * SECOND;
        const records = [
          // Two real viewers: refusal null, and absent (a record from an older proxy, or from web).
          rec({ at: t - 2 * SECOND, client_ip: '10.5.0.1', session_id: 'real-1', refusal: null }),
          rec({ at: t - 2 * SECOND, client_ip: '10.5.0.2', session_id: 'real-2' }),
          // Turned away: another network, no or a bad token, throttled, bad input. Each from its own address.
          rec({ at: t - SECOND, kind: 'playlist', status: 403, bytes: 80, backend: null, client_ip: '10.6.0.1', session_id: 'r-1', refusal: 'network' }),
          rec({ at: t - SECOND, kind: 'playlist', status: 403, bytes: 80, backend: null, client_ip: '10.6.0.2', session_id: 'r-2', refusal: 'token-missing' }),
          rec({ at: t - SECOND, kind: 'segment', status: 403, bytes: 80, backend: null, client_ip: '10.6.0.3', session_id: 'r-3', refusal: 'token-expired' }),
          rec({ at: t - SECOND, kind: 'segment', status: 429, bytes: 80, backend: null, client_ip: '10.6.0.4', session_id: 'r-4', refusal: 'rate-limited' }),
          rec({ at: t - SECOND, kind: 'segment', status: 400, bytes: 80, backend: null, client_ip: '10.6.0.5', session_id: 'r-5', refusal: 'bad-path' }),
          // A 403/429 without a refusal field (another answerer) is not a viewer either.
          rec({ at: t - SECOND, kind: 'playlist', status: 403, client_ip: '10.6.0.6', session_id: 'r-6' }),
          rec({ at: t - SECOND, kind: 'playlist', status: 429, client_ip: '10.6.0.7', session_id: 'r-7' }),
          rec({ at: t - SECOND, kind: 'playlist', status: 401, client_ip: '10.6.0.8', session_id: 'r-8' }),
        ];
        assert.deepEqual(await store.insert(records), { inserted: records.length, duplicates: 0, rejected: [] });
        assert.deepEqual((await store.viewersNow(new Date(t), 30 * SECOND)).get('alpha'), { ips: 2, sessions: 2 });
        const history = await store.viewerHistory('alpha', new Date(T0 + 50 * SECOND), new Date(T0 + 60 * SECOND), 10 * SECOND);
        assert.deepEqual(history, [{ t: new Date(T0 + 50 * SECOND), ips: 2, sessions: 2 }]);
        // They are still traffic: requests and client errors.
        const traffic = await store.traffic('alpha', 'proxy', new Date(T0), new Date(t + 1));
        assert.equal(traffic.requests, records.length);
        assert.equal(traffic.clientErrors, 8);
        // A refusal is kept as it came; a malformed one is refused like any bad field.
        const bad = await store.insert([{ ...rec({ at: t }), refusal: 42 } as never, { ...rec({ at: t }), refusal: 'x'.repeat(65) }]);
        assert.equal(bad.inserted, 0);
        assert.match(bad.rejected[0]!.reason, /refusal/);
      }));

    test('recordingsWatched: requests for a recording\'s playlist and segments in (t - W, t], by (stream, session), read from the path', skip, () =>
      withStore(async (store) => {
        const rec = recordMaker('recwatch');
        const t = T0 + 3600 * SECOND;
        const W = 600 * SECOND;
        const A = { stream: 'town-hall', session: '20250115-110000-abc123' };
        const B = { stream: 'town-hall', session: '20250115-100000-def456' };
        const C = { stream: 'q3_review', session: '20250114-090000-0f0f0f' };
        const base = (r: { stream: string; session: string }) => `/archive/${r.stream}/${r.session}`;
        // As web and proxy record them today: stream null, kind 'other'; the path names the recording.
        const archive = (at: number, path: string, fields: Record<string, unknown> = {}) =>
          rec({ at, path, stream: null, kind: 'other', ...fields });
        const records = [
          // A: three IPs, four sessions (two players behind 10.10.0.2); playlist, init, segments.
          archive(t - 500 * SECOND, `${base(A)}/index.m3u8`, { client_ip: '10.10.0.1', session_id: 'a-1' }),
          archive(t - 499 * SECOND, `${base(A)}/r1-init.mp4`, { client_ip: '10.10.0.1', session_id: 'a-1' }),
          archive(t - 498 * SECOND, `${base(A)}/r1-17.m4s`, { client_ip: '10.10.0.1', session_id: 'a-1' }),
          archive(t - 60 * SECOND, `${base(A)}/r1-18.m4s`, { client_ip: '10.10.0.2', session_id: 'a-2' }),
          archive(t - 59 * SECOND, `${base(A)}/r1-19.m4s`, { client_ip: '10.10.0.2', session_id: 'a-3' }),
          // The same viewer spelled as IPv4-mapped IPv6.
          archive(t - 30 * SECOND, `${base(A)}/r1-20.m4s`, { client_ip: '::ffff:10.10.0.1', session_id: 'a-1' }),
          // A newer sender may fill stream/kind: the path still decides. No session id: an IP only.
          archive(t - 20 * SECOND, `${base(A)}/index.m3u8`, { stream: 'town-hall', kind: 'playlist', client_ip: '10.10.0.3', session_id: null }),
          // A status other than a refusal still counts (as for live viewers); this is A's newest request.
          archive(t - 10 * SECOND, `${base(A)}/r1-21.m4s`, { status: 404, client_ip: '10.10.0.2', session_id: 'a-4' }),
          // A rendition folder of a ladder recording is the same recording.
          archive(t - 40 * SECOND, `${base(A)}/720p/r1-20.m4s`, { client_ip: '10.10.0.2', session_id: 'a-3' }),
          // B: the window edges. t - W is outside, t is inside (its newest request), t + 1 ms is outside.
          archive(t - W, `${base(B)}/index.m3u8`, { client_ip: '10.11.0.1', session_id: 'b-1' }),
          archive(t, `${base(B)}/index.m3u8`, { client_ip: '10.11.0.2', session_id: 'b-2' }),
          archive(t - W + 1, `${base(B)}/a-1.ts`, { client_ip: '10.11.0.3', session_id: 'b-3' }),
          archive(t + 1, `${base(B)}/index.m3u8`, { client_ip: '10.11.0.4', session_id: 'b-4' }),
          // C: only before the window.
          archive(t - W - 5 * SECOND, `${base(C)}/index.m3u8`, { client_ip: '10.12.0.1', session_id: 'c-1' }),
          // Not watching A or B: the listing's thumbnail, non-media files, the web tier, refusals,
          // the player page, live media, and paths that only look like a recording's.
          archive(t - SECOND, `${base(B)}/thumbnail.jpg`, { client_ip: '10.19.0.1', session_id: 'x-1' }),
          archive(t - SECOND, `${base(A)}/session.json`, { status: 404, client_ip: '10.19.0.2', session_id: 'x-2' }),
          archive(t - SECOND, `${base(A)}/r1-22.m4s`, { tier: 'web', client_ip: '10.19.0.3', session_id: 'x-3' }),
          archive(t - SECOND, `${base(A)}/index.m3u8`, { status: 403, refusal: 'token-expired', backend: null, client_ip: '10.19.0.4', session_id: 'x-4' }),
          archive(t - SECOND, `${base(A)}/index.m3u8`, { status: 429, client_ip: '10.19.0.5', session_id: 'x-5' }),
          archive(t - SECOND, `${base(A)}/index.m3u8`, { status: 401, client_ip: '10.19.0.6', session_id: 'x-6' }),
          archive(t - SECOND, `/vod/${A.stream}/${A.session}`, { kind: 'page', client_ip: '10.19.0.7', session_id: 'x-7' }),
          rec({ at: t - SECOND, kind: 'playlist', stream: 'town-hall', client_ip: '10.19.0.8', session_id: 'x-8' }),
          archive(t - SECOND, '/archive/town-hall/not-a-session/index.m3u8', { client_ip: '10.19.0.9', session_id: 'x-9' }),
          archive(t - SECOND, `${base(A)}/720p/sub/index.m3u8`, { client_ip: '10.19.0.10', session_id: 'x-10' }),
          archive(t - SECOND, `/archive/Town-Hall/${A.session}/index.m3u8`, { client_ip: '10.19.0.11', session_id: 'x-11' }),
          archive(t - SECOND, `/archive/${A.stream}/${A.session}/.r1-23.m4s.tmp`, { client_ip: '10.19.0.12', session_id: 'x-12' }),
          archive(t - SECOND, `/archive/${A.stream}/${A.session}/index.m3u8/`, { client_ip: '10.19.0.13', session_id: 'x-13' }),
          archive(t - SECOND, `/archive/${A.stream}%2F${A.session}/index.m3u8`, { client_ip: '10.19.0.14', session_id: 'x-14' }),
          archive(t - SECOND, `/x/archive/${A.stream}/${A.session}/index.m3u8`, { client_ip: '10.19.0.15', session_id: 'x-15' }),
        ];
        assert.deepEqual(await store.insert(records), { inserted: records.length, duplicates: 0, rejected: [] });

        assert.deepEqual(await store.recordingsWatched(new Date(t), W), [
          { ...B, viewers: { ips: 2, sessions: 2 }, lastRequestAt: new Date(t) },
          { ...A, viewers: { ips: 3, sessions: 4 }, lastRequestAt: new Date(t - 10 * SECOND) },
        ]);
        // A narrower window: A's requests of the last 45 s only; B's one at t.
        assert.deepEqual(await store.recordingsWatched(new Date(t), 45 * SECOND), [
          { ...B, viewers: { ips: 1, sessions: 1 }, lastRequestAt: new Date(t) },
          { ...A, viewers: { ips: 3, sessions: 3 }, lastRequestAt: new Date(t - 10 * SECOND) },
        ]);
        // A wider one reaches C, which sorts first (by stream, then session).
        assert.deepEqual((await store.recordingsWatched(new Date(t), W + 10 * SECOND)).map((r) => `${r.stream}/${r.session}`), [
          `${C.stream}/${C.session}`, `${B.stream}/${B.session}`, `${A.stream}/${A.session}`,
        ]);
        // Once the window has passed, nobody watches.
        assert.deepEqual(await store.recordingsWatched(new Date(t + W + 2), W), []);
      }));

    test('viewerHistory returns aligned, continuous buckets with zeros', skip, () =>
      withStore(async (store) => {
        const rec = recordMaker('hist');
        const B = 10 * SECOND;
        await store.insert([
          // bucket 0: two IPs, A twice
          rec({ at: T0, client_ip: '10.5.0.1', session_id: 's-a' }),
          rec({ at: T0 + 9_999, client_ip: '10.5.0.1', session_id: 's-a' }),
          rec({ at: T0 + 1_000, kind: 'playlist', client_ip: '10.5.0.2', session_id: 's-b' }),
          // bucket 1: one IP, two sessions
          rec({ at: T0 + B, client_ip: '10.5.0.1', session_id: 's-a2' }),
          rec({ at: T0 + B + 5_000, client_ip: '10.5.0.1', session_id: 's-a3' }),
          // bucket 2: nothing that counts for alpha
          rec({ at: T0 + 2 * B + 1, stream: 'beta', client_ip: '10.5.0.9', session_id: 's-x' }),
          rec({ at: T0 + 2 * B + 2, tier: 'web', client_ip: '10.5.0.9', session_id: 's-x' }),
          rec({ at: T0 + 2 * B + 3, kind: 'page', client_ip: '10.5.0.9', session_id: 's-x' }),
          // bucket 3: exactly on the bucket start
          rec({ at: T0 + 3 * B, client_ip: '10.5.0.3', session_id: 's-c' }),
          // at `to`: outside
          rec({ at: T0 + 4 * B, client_ip: '10.5.0.4', session_id: 's-d' }),
        ]);
        const history = await store.viewerHistory('alpha', new Date(T0), new Date(T0 + 4 * B), B);
        assert.deepEqual(history, [
          { t: new Date(T0), ips: 2, sessions: 2 },
          { t: new Date(T0 + B), ips: 1, sessions: 2 },
          { t: new Date(T0 + 2 * B), ips: 0, sessions: 0 },
          { t: new Date(T0 + 3 * B), ips: 1, sessions: 1 },
        ]);
        // An unaligned `from` still gives aligned buckets; records before `from` do not count.
        const unaligned = await store.viewerHistory('alpha', new Date(T0 + 5_000), new Date(T0 + 3 * B + 5_000), B);
        assert.deepEqual(unaligned, [
          { t: new Date(T0), ips: 1, sessions: 1 },
          { t: new Date(T0 + B), ips: 1, sessions: 2 },
          { t: new Date(T0 + 2 * B), ips: 0, sessions: 0 },
          { t: new Date(T0 + 3 * B), ips: 1, sessions: 1 },
        ]);
        // Coarser buckets: one minute holds all of it.
        assert.deepEqual(await store.viewerHistory('alpha', new Date(T0), new Date(T0 + 60 * SECOND), 60 * SECOND), [
          { t: new Date(T0), ips: 4, sessions: 6 }, // now T0 + 40 s is inside too
        ]);
        assert.deepEqual(await store.viewerHistory('alpha', new Date(T0), new Date(T0), B), []);
        assert.deepEqual(
          await store.viewerHistory('nobody', new Date(T0), new Date(T0 + 2 * B), B),
          [{ t: new Date(T0), ips: 0, sessions: 0 }, { t: new Date(T0 + B), ips: 0, sessions: 0 }],
        );
      }));

    test('traffic sums requests, bytes, errors and per-backend share for one tier', skip, () =>
      withStore(async (store) => {
        const rec = recordMaker('traffic');
        const at = T0 + 10 * SECOND;
        const records = [];
        for (let i = 0; i < 5; i++) records.push(rec({ at: at + i, bytes: 1000, backend: 'web-1' }));
        for (let i = 0; i < 3; i++) records.push(rec({ at: at + i, kind: 'playlist', bytes: 500, backend: 'web-2' }));
        for (let i = 0; i < 2; i++) records.push(rec({ at: at + i, status: 503, bytes: 0, backend: 'web-2' }));
        records.push(rec({ at, status: 404, bytes: 10, backend: 'web-3' }));
        records.push(rec({ at, kind: 'page', bytes: 2000, backend: 'web-1' }));
        records.push(rec({ at, kind: 'other', stream: null, status: 502, bytes: 0, backend: null })); // the proxy answered itself
        records.push(rec({ at, stream: 'beta', bytes: 7000, backend: 'web-3' }));
        records.push(rec({ at: T0 + 60 * SECOND, bytes: 1 })); // at `to`: outside
        records.push(rec({ at: T0 - 1, bytes: 1 })); // before `from`: outside
        records.push(rec({ at, tier: 'web', instance: 'web-1', bytes: 1000 }));
        records.push(rec({ at, tier: 'web', instance: 'web-1', bytes: 1000 }));
        records.push(rec({ at, tier: 'web', instance: 'web-2', status: 500, bytes: 0 }));
        assert.equal((await store.insert(records)).inserted, records.length);

        const from = new Date(T0);
        const to = new Date(T0 + 60 * SECOND);
        assert.deepEqual(await store.traffic('alpha', 'proxy', from, to), {
          requests: 12, bytes: 8510, serverErrors: 2, clientErrors: 1, byBackend: { 'web-1': 6, 'web-2': 5, 'web-3': 1 },
        });
        assert.deepEqual(await store.traffic(null, 'proxy', from, to), {
          requests: 14, bytes: 15_510, serverErrors: 3, clientErrors: 1, byBackend: { 'web-1': 6, 'web-2': 5, 'web-3': 2 },
        });
        assert.deepEqual(await store.traffic('alpha', 'web', from, to), {
          requests: 3, bytes: 2000, serverErrors: 1, clientErrors: 0, byBackend: { 'web-1': 2, 'web-2': 1 },
        });
        assert.deepEqual(await store.traffic('beta', 'web', from, to), {
          requests: 0, bytes: 0, serverErrors: 0, clientErrors: 0, byBackend: {},
        });
      }));

    test('newestRecordTime is the newest @timestamp, to the millisecond', skip, () =>
      withStore(async (store) => {
        const rec = recordMaker('newest');
        await store.insert([rec({ at: T0 + 1 }), rec({ at: T0 + 123_456 }), rec({ at: T0 + 5 })]);
        assert.deepEqual(await store.newestRecordTime(), new Date(T0 + 123_456));
        await store.insert([rec({ at: T0 - 60 * SECOND })]); // a late, older record changes nothing
        assert.deepEqual(await store.newestRecordTime(), new Date(T0 + 123_456));
        // Web records count too: lag is about the pipeline, not about viewers.
        await store.insert([rec({ at: T0 + 200_000, tier: 'web', kind: 'other', stream: null })]);
        assert.deepEqual(await store.newestRecordTime(), new Date(T0 + 200_000));
      }));

    test(options.retentionDeletes ? 'applyRetention deletes records older than the cut-off' : 'applyRetention is left to the store (returns 0)', skip, () =>
      withStore(async (store) => {
        const rec = recordMaker('retention');
        await store.insert(Array.from({ length: 10 }, (_, i) => rec({ at: T0 + i * SECOND, client_ip: ipv4(6, i), session_id: `r-${i}` })));
        const deleted = await store.applyRetention(new Date(T0 + 4 * SECOND));
        if (options.retentionDeletes) {
          assert.equal(deleted, 4);
          assert.equal(await store.count(), 6);
          assert.deepEqual(await store.viewerHistory('alpha', new Date(T0), new Date(T0 + 10 * SECOND), 5 * SECOND), [
            { t: new Date(T0), ips: 1, sessions: 1 }, // only T0 + 4 s is left of the first five
            { t: new Date(T0 + 5 * SECOND), ips: 5, sessions: 5 },
          ]);
          assert.deepEqual(await store.newestRecordTime(), new Date(T0 + 9 * SECOND));
          assert.equal(await store.applyRetention(new Date(T0 + 4 * SECOND)), 0);
          // The store keeps working after a deletion.
          assert.equal((await store.insert([rec({ at: T0 + 10 * SECOND })])).inserted, 1);
          assert.equal(await store.count(), 7);
        } else {
          assert.equal(deleted, 0);
          assert.equal(await store.count(), 10);
        }
      }));

    test('a malformed record is rejected with its reason; the rest of the batch is stored', skip, () =>
      withStore(async (store) => {
        const rec = recordMaker('bad');
        const good1 = rec({ at: T0, client_ip: '10.7.0.1', session_id: 'g-1' });
        const good2 = rec({ at: T0 + 1, client_ip: '10.7.0.2', session_id: 'g-2' });
        const { client_ip: _omitted, ...noIp } = rec({ at: T0 });
        const { record_id: _none, ...noId } = rec({ at: T0 });
        const batch: unknown[] = [
          good1,
          noIp,
          { ...rec({ at: T0 }), '@timestamp': 'yesterday' },
          { ...rec({ at: T0 }), '@timestamp': '2025-01-15T12:00:00' }, // no zone: local time? refused
          { ...rec({ at: T0 }), kind: 'video' },
          { ...rec({ at: T0 }), client_ip: 'not-an-ip' },
          { ...rec({ at: T0 }), status: '200' },
          { ...rec({ at: T0 }), bytes: -1 },
          { ...rec({ at: T0 }), tier: 'cdn' },
          noId,
          null,
          'a string',
          good2,
        ];
        const result = await store.insert(batch as never);
        assert.equal(result.inserted, 2);
        assert.equal(result.duplicates, 0);
        assert.equal(result.rejected.length, batch.length - 2);
        assert.deepEqual(
          result.rejected.map((r) => r.record_id),
          ['bad-3', 'bad-5', 'bad-6', 'bad-7', 'bad-8', 'bad-9', 'bad-10', 'bad-11', null, null, null],
        );
        for (const r of result.rejected) assert.ok(r.reason.length > 0);
        assert.match(result.rejected[0]!.reason, /client_ip/);
        assert.match(result.rejected[3]!.reason, /kind/);
        assert.equal(await store.count(), 2);
        assert.deepEqual((await store.viewersNow(new Date(T0 + 1), 30 * SECOND)).get('alpha'), { ips: 2, sessions: 2 });
        // A batch of nothing but bad records is not an error either.
        assert.deepEqual(await store.insert([{} as never]), { inserted: 0, duplicates: 0, rejected: [{ record_id: null, reason: 'record_id: missing or not a non-empty string' }] });
      }));

    test('records and history survive close and reopen', skip, () =>
      withStore(async (first, fixture) => {
        const rec = recordMaker('persist');
        const records = Array.from({ length: 50 }, (_, i) =>
          rec({ at: T0 + i * 200, client_ip: ipv4(8, i % 10), session_id: `p-${i % 12}`, kind: i % 2 ? 'segment' : 'playlist' }),
        );
        assert.equal((await first.insert(records)).inserted, 50);
        const before = {
          now: await first.viewersNow(new Date(T0 + 10 * SECOND), 30 * SECOND),
          history: await first.viewerHistory('alpha', new Date(T0), new Date(T0 + 10 * SECOND), 5 * SECOND),
          newest: await first.newestRecordTime(),
        };
        assert.deepEqual(before.now.get('alpha'), { ips: 10, sessions: 12 });
        await first.close();

        const second = fixture.create();
        await second.open();
        try {
          assert.equal(await second.count(), 50);
          assert.deepEqual(await second.viewersNow(new Date(T0 + 10 * SECOND), 30 * SECOND), before.now);
          assert.deepEqual(await second.viewerHistory('alpha', new Date(T0), new Date(T0 + 10 * SECOND), 5 * SECOND), before.history);
          assert.deepEqual(await second.newestRecordTime(), before.newest);
          // The record ids are remembered too: a replay after the restart is still a duplicate.
          assert.deepEqual(await second.insert(records.slice(0, 5)), { inserted: 0, duplicates: 5, rejected: [] });
        } finally {
          await second.close();
        }
      }));
  });
}

// ---------------------------------------------------------------------------------------------

runAccessStoreContract(
  'DuckDB (embedded file)',
  () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onair-store-'));
    const file = path.join(dir, 'monitoring', 'access.duckdb');
    return {
      create: () => new DuckDbAccessStore({ path: file }),
      cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  },
  { retentionDeletes: true },
);

const esUrl = process.env['ELASTICSEARCH_URL'];
runAccessStoreContract(
  'Elasticsearch',
  () => {
    // A unique data stream (and template and policy) per test, removed afterwards.
    const dataStream = `onair-test-${process.pid}-${randomBytes(4).toString('hex')}`;
    const options = {
      node: esUrl!,
      ...(process.env['ELASTICSEARCH_API_KEY'] ? { apiKey: process.env['ELASTICSEARCH_API_KEY'] } : {}),
      ...(process.env['ELASTICSEARCH_USERNAME'] ? { username: process.env['ELASTICSEARCH_USERNAME'], password: process.env['ELASTICSEARCH_PASSWORD'] ?? '' } : {}),
      dataStream,
      retentionDays: 1,
      refresh: 'wait_for' as const, // read-your-writes for the assertions
    };
    return {
      create: () => new ElasticsearchAccessStore(options),
      cleanup: async () => {
        const admin = new ElasticsearchAccessStore(options);
        try {
          await admin.removeAll();
        } finally {
          await admin.close();
        }
      },
    };
  },
  { retentionDeletes: false, skip: esUrl ? false : 'ELASTICSEARCH_URL not set: no Elasticsearch server on this machine' },
);
