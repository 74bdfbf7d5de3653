import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { parseMediaPlaylist, playlistPosition } from '../../common/src/hls/media-playlist.ts';
import { streamDir } from '../../common/src/media-layout.ts';
import { metricValue, scrapeMetrics } from '../../common/testing/metrics.ts';
import { freePort, makeTempDir, sleep, startService, waitFor, waitForHttpOk, type ManagedProcess } from '../../common/testing/processes.ts';
import { get, manySocketsAgent, percentile, type Answer } from './http-client.ts';
import { listsPart, LowLatencyPlaylist, LowLatencyWriter, partName } from './ll-fixtures.ts';

/**
 * Blocking playlist reload and hinted-part holds against the real web process, with a writer in
 * the test that publishes parts and playlists the way ingest does (temp + rename). TARGETDURATION
 * is 1 s (parts of 0.25 s), so a hold times out after 3 s.
 */

const STREAM = 'llt';
const TD2_STREAM = 'lltwo';
/** For the 3 000 held requests: TARGETDURATION 4, so none times out (12 s) while thousands connect on a busy machine. */
const MANY_STREAM = 'llmany';

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? NaN) * 1024;
}

function showLogsOnFailure(t: object, web: ManagedProcess | undefined): void {
  const context = t as { passed?: boolean; diagnostic?: (message: string) => void };
  if (context.passed === false && web) context.diagnostic?.(web.tail(80));
}

describe('low-latency HLS: blocking reloads and hinted parts (files)', () => {
  let media: Awaited<ReturnType<typeof makeTempDir>>;
  let web: ManagedProcess;
  let port: number;
  let base: string;
  let writer: LowLatencyWriter;
  let many: LowLatencyWriter;
  const agent = manySocketsAgent();

  const playlistUrl = `/live/${STREAM}/index.m3u8`;
  const model = (): LowLatencyPlaylist => writer.playlist;
  const next = (): string => `${playlistUrl}?_HLS_msn=${model().openMsn}&_HLS_part=${model().openParts}`;
  /** The largest event-loop delay web reported since this was last reset (each scrape restarts web's histogram). */
  let lagMaxSeconds = 0;
  const scrape = async (): Promise<string> => {
    const text = await scrapeMetrics(base);
    lagMaxSeconds = Math.max(lagMaxSeconds, metricValue(text, 'nodejs_eventloop_lag_max_seconds'));
    return text;
  };
  const metrics = async (name: string, labels = ''): Promise<number> => metricValue(await scrape(), name, labels);
  const heldAtLeast = (kind: 'playlist' | 'part', count: number, timeoutMs = 15_000, intervalMs = 20): Promise<number> =>
    waitFor(`${count} held ${kind} requests`, async () => {
      const held = await metrics('web_held_requests', `kind="${kind}"`);
      return held >= count && held;
    }, timeoutMs, intervalMs);

  before(async () => {
    media = await makeTempDir('web-ll');
    writer = new LowLatencyWriter(streamDir(media.dir, STREAM), new LowLatencyPlaylist({ run: 'mfz3k2a1b2c3', targetDuration: 1, partTarget: 0.25, partsPerSegment: 4 }));
    await writer.start(9); // segments 0, 1 complete, open segment 2 with one part
    const td2 = new LowLatencyWriter(streamDir(media.dir, TD2_STREAM), new LowLatencyPlaylist({ run: 'mfz3k2a1b2c4', targetDuration: 2, partTarget: 0.5, partsPerSegment: 4 }));
    await td2.start(5);
    many = new LowLatencyWriter(streamDir(media.dir, MANY_STREAM), new LowLatencyPlaylist({ run: 'mfz3k2a1b2c6', targetDuration: 4, partTarget: 1, partsPerSegment: 4 }));
    await many.start(5);
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    web = startService('web', { WEB_PORT: String(port), WEB_HOST: '127.0.0.1', MEDIA_DIR: media.dir, INSTANCE: 'web-ll', MEDIA_CACHE_MB: '64', LOG_LEVEL: 'info' });
    try {
      await waitForHttpOk(`${base}/readyz`);
    } catch (err) {
      await web.stop();
      throw new Error(`${String(err)}\n${web.tail()}`);
    }
  });

  afterEach((t) => showLogsOnFailure(t, web));

  after(async () => {
    agent.destroy();
    await web?.stop();
    await media?.remove();
  });

  it('answers what the playlist already has at once, with the cache headers of the contract', async () => {
    const plain = await get(port, playlistUrl);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['content-type'], 'application/vnd.apple.mpegurl');
    assert.equal(plain.headers['cache-control'], 'no-cache');
    assert.equal(plain.body.toString(), model().render());
    const have = await get(port, `${playlistUrl}?_HLS_msn=${model().openMsn}&_HLS_part=0&CMCD=sid%3D%22x%22`);
    assert.equal(have.status, 200);
    assert.equal(have.headers['cache-control'], 'no-cache', 'TARGETDURATION 1: max-age=1 would be more than half of it');
    const two = await get(port, `/live/${TD2_STREAM}/index.m3u8?_HLS_msn=1&_HLS_part=0`);
    assert.equal(two.status, 200);
    assert.equal(two.headers['cache-control'], 'public, max-age=1');
    assert.equal((await get(port, `/live/${TD2_STREAM}/index.m3u8`)).headers['cache-control'], 'no-cache');
    for (const answer of [plain, have, two]) assert.equal(answer.headers.age, undefined, 'never an Age header');
    const head = await get(port, `${playlistUrl}?_HLS_msn=0`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  it('(a) wakes 200 held requests for the next part when the playlist listing it is renamed into place', async (t) => {
    const target = next();
    const held = Array.from({ length: 200 }, () => get(port, target, { agent }));
    await heldAtLeast('playlist', 200);
    const readyBefore = await metrics('web_held_requests_finished_total', 'outcome="ready"');
    // Let the 200 connections' set-up and the polling scrapes settle: the figure is the wake's.
    await sleep(300);
    const part = await writer.publishPart();
    const renamedAt = performance.now();
    const answers = await Promise.all(held);
    const latencies = answers.map((a) => Math.max(0, a.at - renamedAt));
    t.diagnostic(`wake latency after rename, 200 held: p50 ${percentile(latencies, 50).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms`);
    for (const answer of answers) {
      assert.equal(answer.status, 200);
      assert.equal(answer.headers['cache-control'], 'no-cache');
      assert.ok(listsPart(answer.body, part), 'the answer lists the part');
    }
    assert.ok(Math.max(...latencies) < 1_500, `all answered within 1.5 s of the rename (max ${Math.max(...latencies).toFixed(0)} ms)`);
    assert.equal(await metrics('web_held_requests', 'kind="playlist"'), 0);
    assert.equal((await metrics('web_held_requests_finished_total', 'outcome="ready"')) - readyBefore, 200);
    // Plain requests see the new version right away: no TTL.
    assert.equal((await get(port, playlistUrl)).body.toString(), model().render());
  });

  it('(a) a part past the last one of a segment waits for the next segment\'s part 0', async () => {
    while (model().openParts !== model().shape.partsPerSegment - 1) await writer.publishPart();
    const lastMsn = model().openMsn;
    const pending = get(port, `${playlistUrl}?_HLS_msn=${lastMsn}&_HLS_part=${model().shape.partsPerSegment}`, { agent });
    await heldAtLeast('playlist', 1);
    await writer.publishPart(); // completes segment lastMsn: part 4 of it = part 0 of the next, not there yet
    await sleep(150);
    assert.equal(await metrics('web_held_requests', 'kind="playlist"'), 1, 'still held after the segment completed');
    const part = await writer.publishPart();
    const answer = await pending;
    assert.equal(answer.status, 200);
    assert.ok(listsPart(answer.body, part));
    assert.equal(playlistPosition(parseMediaPlaylist(answer.body.toString())).lastMsn, lastMsn);
  });

  it('(b) refuses far-ahead and malformed directives with 400 at once', async (t) => {
    const lastMsn = model().openMsn - 1;
    const targets = [
      `${playlistUrl}?_HLS_msn=${lastMsn + 3}`,
      `${playlistUrl}?_HLS_msn=${lastMsn + 1}&_HLS_part=${model().openParts + 40}`,
      `${playlistUrl}?_HLS_part=1`,
      `${playlistUrl}?_HLS_msn=abc`,
      `${playlistUrl}?_HLS_msn=-1`,
      `${playlistUrl}?_HLS_msn=1e3`,
      `${playlistUrl}?_HLS_msn=${'9'.repeat(40)}`,
      `${playlistUrl}?_HLS_msn=1&_HLS_msn=1`,
    ];
    const startedAt = performance.now();
    const answers = await Promise.all(targets.map((target) => get(port, target, { agent })));
    const took = performance.now() - startedAt;
    t.diagnostic(`${targets.length} refusals in ${took.toFixed(0)} ms`);
    for (const [i, answer] of answers.entries()) {
      assert.equal(answer.status, 400, targets[i]);
      assert.equal(answer.headers['cache-control'], 'no-store');
      assert.match(answer.body.toString(), /^bad request: /);
    }
    assert.ok(took < 1_000, `at once, not held (${took.toFixed(0)} ms)`);
    // Ignored parameters and _HLS_skip do not make a request blocking.
    const plain = await get(port, `${playlistUrl}?_HLS_skip=YES&token=abc&CMCD=x`);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['cache-control'], 'no-cache');
  });

  it('(c) when nothing arrives: the current playlist after 3 × TARGETDURATION, no-store; the hinted part 404s', async (t) => {
    const before = model().render();
    const startedAt = performance.now();
    const [reload, hinted] = await Promise.all([get(port, next(), { agent }), get(port, `/live/${STREAM}/${model().hint}`, { agent })]);
    const waited = performance.now() - startedAt;
    t.diagnostic(`held for ${waited.toFixed(0)} ms (3 × TARGETDURATION = 3000 ms)`);
    assert.equal(reload.status, 200);
    assert.equal(reload.headers['cache-control'], 'no-store');
    assert.equal(reload.body.toString(), before);
    assert.equal(hinted.status, 404);
    assert.ok(waited >= 2_900, `not before the deadline (${waited.toFixed(0)} ms)`);
    assert.ok(waited < 5_000, `not long after it (${waited.toFixed(0)} ms)`);
    assert.ok((await metrics('web_held_requests_finished_total', 'outcome="timeout"')) >= 2);
  });

  it('(d) holds the hinted part until it is written and serves it byte-identical; other missing parts 404 at once', async () => {
    const hint = model().hint;
    const pending = Promise.all([get(port, `/live/${STREAM}/${hint}`, { agent }), get(port, `/live/${STREAM}/${hint}`, { agent, headers: { range: 'bytes=0-9' } })]);
    await heldAtLeast('part', 2);
    const startedAt = performance.now();
    const missing = await get(port, `/live/${STREAM}/${partName(model().shape.run, Number(/p(\d+)\.m4s$/.exec(hint)![1]) + 5)}`);
    assert.equal(missing.status, 404);
    assert.ok(performance.now() - startedAt < 1_000, 'a part nobody hinted at: 404 at once');
    assert.equal((await get(port, `/live/${STREAM}/nothing-here.m4s`)).status, 404);
    const part = await writer.publishPart();
    assert.equal(part, hint);
    const [full, range] = await pending;
    assert.equal(full.status, 200);
    assert.deepEqual(full.body, writer.bodies.get(hint));
    assert.equal(full.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(full.headers['content-type'], 'video/iso.segment');
    assert.equal(range.status, 206);
    assert.deepEqual(range.body, writer.bodies.get(hint)!.subarray(0, 10));
    assert.ok((await metrics('web_hinted_part_holds_total')) >= 2);
  });

  it('(d) the hinted part is served as soon as its file exists, before any playlist lists it', async () => {
    const hint = model().hint;
    const pending = get(port, `/live/${STREAM}/${hint}`, { agent });
    await heldAtLeast('part', 1);
    const staged = await writer.writeNextPartFileOnly();
    const answer = await pending;
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, writer.bodies.get(staged.name));
    await staged.commit();
  });

  it('(g) a client that leaves while held breaks nothing and is counted as gone', async () => {
    const goneBefore = await metrics('web_held_requests_finished_total', 'kind="playlist",outcome="gone"');
    const controllers = Array.from({ length: 5 }, () => new AbortController());
    const leaving = controllers.map((c) => get(port, next(), { signal: c.signal }).catch((err: Error) => err));
    const staying = get(port, next(), { agent });
    await heldAtLeast('playlist', 6);
    for (const c of controllers) c.abort();
    for (const outcome of await Promise.all(leaving)) assert.ok(outcome instanceof Error);
    await sleep(50);
    const part = await writer.publishPart();
    const answer = await staying;
    assert.equal(answer.status, 200);
    assert.ok(listsPart(answer.body, part));
    await waitFor('gone counted', async () => (await metrics('web_held_requests_finished_total', 'kind="playlist",outcome="gone"')) - goneBefore === 5);
    assert.equal(await metrics('web_held_requests', 'kind="playlist"'), 0);
    assert.ok(web.running);
  });

  it('(f) holds 3 000 requests at once at little cost, and answers them all', async (t) => {
    const rssBefore = await rssBytes(web.pid);
    const target = `/live/${MANY_STREAM}/index.m3u8?_HLS_msn=${many.playlist.openMsn}&_HLS_part=${many.playlist.openParts}`;
    const count = 3_000;
    const held: Promise<Answer>[] = [];
    await scrape();
    lagMaxSeconds = 0;
    for (let i = 0; i < count; i++) held.push(get(port, target, { agent }));
    await heldAtLeast('playlist', count, 30_000, 100);
    const rssHeld = await rssBytes(web.pid);
    await scrape();
    const lagWhileHeld = lagMaxSeconds;
    lagMaxSeconds = 0;
    const probeStart = performance.now();
    assert.equal((await get(port, '/healthz')).status, 200);
    const probe = performance.now() - probeStart;
    const part = await many.publishPart();
    const renamedAt = performance.now();
    const answers = await Promise.all(held);
    const wakeAll = Math.max(...answers.map((a) => a.at)) - renamedAt;
    await scrape();
    const lagWake = lagMaxSeconds;
    const growth = rssHeld - rssBefore;
    t.diagnostic(
      `3000 held: RSS +${(growth / 1e6).toFixed(1)} MB (${(growth / count / 1024).toFixed(1)} KiB per held request, sockets included); ` +
        `/healthz while held ${probe.toFixed(1)} ms; event-loop delay max ${(lagWhileHeld * 1000).toFixed(1)} ms while 3000 arrived and were held, ${(lagWake * 1000).toFixed(1)} ms around the wake; all answered ${wakeAll.toFixed(0)} ms after the rename`,
    );
    for (const answer of answers) {
      assert.equal(answer.status, 200);
      assert.ok(listsPart(answer.body, part));
    }
    assert.ok(growth < 60e6, `RSS growth ${(growth / 1e6).toFixed(1)} MB`);
    assert.ok(probe < 1_000, `web stays responsive while holding (${probe.toFixed(0)} ms)`);
    assert.ok(lagWake < 1, `event-loop delay around the wake ${(lagWake * 1000).toFixed(0)} ms`);
  });

  it('counts versions by source and exposes the state gauges', async () => {
    const text = await scrapeMetrics(base);
    assert.ok(metricValue(text, 'web_playlist_versions_total', 'source="watch"') > 0, 'versions came from file-system events');
    assert.ok(metricValue(text, 'web_live_playlists') >= 1);
    assert.ok(!text.includes('web_playlist_feed_connected'), 'no feed metrics without INGEST_FEED_URL');
  });

  it('on SIGTERM answers held requests at once with the current playlist, and exits 0', async (t) => {
    const current = model().render();
    const pending = Array.from({ length: 20 }, () => get(port, next(), { agent }));
    const hinted = get(port, `/live/${STREAM}/${model().hint}`, { agent });
    await heldAtLeast('playlist', 20);
    await heldAtLeast('part', 1);
    const stoppedAt = performance.now();
    web.child.kill('SIGTERM');
    const answers = await Promise.all(pending);
    const took = performance.now() - stoppedAt;
    t.diagnostic(`held requests answered ${took.toFixed(0)} ms after SIGTERM`);
    for (const answer of answers) {
      assert.equal(answer.status, 200);
      assert.equal(answer.headers['cache-control'], 'no-store');
      assert.equal(answer.body.toString(), current);
    }
    assert.equal((await hinted).status, 404);
    assert.ok(took < 2_000, `not held for 3 × TARGETDURATION (${took.toFixed(0)} ms)`);
    assert.deepEqual(await web.exited, { code: 0, signal: null });
  });
});
