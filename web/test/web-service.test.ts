import assert from 'node:assert/strict';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { writeFileAtomic } from '../../common/src/atomic-file.ts';
import type { AccessRecord } from '../../common/src/access-record.ts';
import type { LiveStream } from '../../common/src/live-state.ts';
import { streamDir } from '../../common/src/media-layout.ts';
import { freePort, makeTempDir, REPO_ROOT, sleep, startService, waitFor, waitForHttpOk, type ManagedProcess } from '../../common/testing/processes.ts';
import { keepLiveStateFresh, liveStream, mediaPlaylist, rawGet, rawRequest, writeLiveState, writeStreamFiles } from './fixtures.ts';

interface RunningWeb {
  web: ManagedProcess;
  port: number;
  base: string;
}

async function startWeb(mediaDir: string, env: Record<string, string> = {}): Promise<RunningWeb> {
  const port = await freePort();
  const web = startService('web', { WEB_PORT: String(port), WEB_HOST: '127.0.0.1', MEDIA_DIR: mediaDir, INSTANCE: 'web-test', MEDIA_CACHE_MB: '64', ...env });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForHttpOk(`${base}/readyz`);
  } catch (err) {
    await web.stop();
    throw new Error(`${String(err)}\n${web.tail()}`);
  }
  return { web, port, base };
}

function accessRecords(web: ManagedProcess): AccessRecord[] {
  return web.jsonLogs().filter((line) => line.msg === 'access').map((line) => line.access as AccessRecord);
}

/** Node 20.20 has `passed` on the hook's context; @types/node 20 does not declare it yet. */
function showLogsOnFailure(t: object, web: ManagedProcess | undefined): void {
  const context = t as { passed?: boolean; diagnostic?: (message: string) => void };
  if (context.passed === false && web) context.diagnostic?.(web.tail(80));
}

describe('web service', () => {
  let media: Awaited<ReturnType<typeof makeTempDir>>;
  let files: Map<string, Buffer>;
  let running: RunningWeb;
  let base: string;
  let port: number;
  let liveNow: LiveStream[] = [liveStream('demo')];
  let heartbeat: { stop: () => void } | undefined;

  before(async () => {
    media = await makeTempDir('web');
    files = await writeStreamFiles(media.dir, 'demo', 'r1', 3);
    // Temp files and dotfiles as ffmpeg and writeFileAtomic leave them, plus things outside live/.
    const dir = streamDir(media.dir, 'demo');
    await writeFile(path.join(dir, 'index.m3u8.tmp'), 'half-written');
    await writeFile(path.join(dir, '.index.m3u8.1a2b3c4d.tmp'), 'half-written');
    await writeFile(path.join(dir, '.hidden.m3u8'), 'hidden');
    await writeFile(path.join(dir, 'r1-9.m4s.tmp'), 'half-written');
    await writeFile(path.join(dir, 'r1-0.ts'), Buffer.from('transport stream bytes'));
    await mkdir(path.join(dir, 'sub'));
    await writeFile(path.join(dir, 'sub', 'seg.m4s'), 'nested');
    await mkdir(path.join(dir, 'dir.m4s')); // a directory with a media name
    await writeFile(path.join(media.dir, 'secret.m4s'), 'SECRET');
    await writeFile(path.join(media.dir, 'live', 'secret.m4s'), 'SECRET');
    await writeLiveState(media.dir, liveNow);
    heartbeat = keepLiveStateFresh(media.dir, () => liveNow);
    running = await startWeb(media.dir);
    ({ base, port } = running);
  });

  afterEach((t) => showLogsOnFailure(t, running?.web));

  after(async () => {
    heartbeat?.stop();
    await running?.web.stop();
    await media?.remove();
  });

  it('logs one start line with port and media dir', () => {
    const line = running.web.jsonLogs().find((l) => l.msg === 'web listening');
    assert.ok(line);
    assert.equal(line.port, port);
    assert.equal(line.mediaDir, media.dir);
  });

  it('serves the playlist, never cached', async () => {
    const res = await fetch(`${base}/live/demo/index.m3u8`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.equal(res.headers.get('content-length'), String(files.get('index.m3u8')!.length));
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), files.get('index.m3u8'));
  });

  it('serves init files and segments byte-exact, immutable', async () => {
    for (const [name, type] of [['r1-init.mp4', 'video/mp4'], ['r1-0.m4s', 'video/iso.segment'], ['r1-2.m4s', 'video/iso.segment']] as const) {
      for (let round = 0; round < 2; round++) {
        // Second round comes from the memory cache; it must be identical.
        const res = await fetch(`${base}/live/demo/${name}`);
        assert.equal(res.status, 200, name);
        assert.equal(res.headers.get('content-type'), type);
        assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
        assert.equal(res.headers.get('content-length'), String(files.get(name)!.length));
        assert.equal(res.headers.get('accept-ranges'), 'bytes');
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), files.get(name));
      }
    }
    const ts = await fetch(`${base}/live/demo/r1-0.ts`);
    assert.equal(ts.headers.get('content-type'), 'video/mp2t');
    assert.equal(await ts.text(), 'transport stream bytes');
  });

  it('answers HEAD with the same headers and no body', async () => {
    for (const name of ['index.m3u8', 'r1-1.m4s']) {
      const res = await rawGet(port, `/live/demo/${name}`, 'HEAD');
      assert.equal(res.status, 200);
      assert.match(res.head, new RegExp(`content-length: ${files.get(name)!.length}\\r\\n`, 'i'));
      assert.equal(res.body.length, 0);
    }
    const missing = await fetch(`${base}/live/demo/r1-77.m4s`, { method: 'HEAD' });
    assert.equal(missing.status, 404);
  });

  it('honours a single byte range on segments', async () => {
    const body = files.get('r1-1.m4s')!;
    const size = body.length;
    const get = (range: string): Promise<Response> => fetch(`${base}/live/demo/r1-1.m4s`, { headers: { range } });

    let res = await get('bytes=10-19');
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 10-19/${size}`);
    assert.equal(res.headers.get('content-length'), '10');
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), body.subarray(10, 20));

    res = await get('bytes=-100');
    assert.equal(res.status, 206);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), body.subarray(size - 100));

    res = await get(`bytes=${size - 5}-`);
    assert.equal(res.status, 206);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), body.subarray(size - 5));

    res = await get(`bytes=${size}-`);
    assert.equal(res.status, 416);
    assert.equal(res.headers.get('content-range'), `bytes */${size}`);
    await res.arrayBuffer();

    res = await get('bytes=0-1,4-5');
    assert.equal(res.status, 200);
    assert.equal((await res.arrayBuffer()).byteLength, size);

    const playlist = await fetch(`${base}/live/demo/index.m3u8`, { headers: { range: 'bytes=0-3' } });
    assert.equal(playlist.status, 200);
    assert.equal(await playlist.text(), files.get('index.m3u8')!.toString());
  });

  it('answers 404 for missing media, not cached', async () => {
    for (const target of ['/live/demo/r1-99.m4s', '/live/nobody/index.m3u8', '/live/demo/other.m3u8', '/live/demo/dir.m4s']) {
      const res = await fetch(`${base}${target}`);
      assert.equal(res.status, 404, target);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      assert.equal(await res.text(), 'not found\n');
    }
  });

  it('refuses temp files, dotfiles, other names and depth', async () => {
    for (const target of ['/live/demo/index.m3u8.tmp', '/live/demo/.index.m3u8.1a2b3c4d.tmp', '/live/demo/.hidden.m3u8', '/live/demo/r1-9.m4s.tmp', '/live/DEMO/index.m3u8', '/live/demo/sub/seg.m4s', '/live/secret.m4s', '/live/demo/INDEX.m3u8']) {
      const res = await fetch(`${base}${target}`);
      assert.equal(res.status, 404, target);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.doesNotMatch(await res.text(), /half-written|hidden|nested|SECRET/);
    }
  });

  it('refuses traversal sent verbatim on the wire (400/404, never a file, never 500)', async () => {
    const targets = [
      '/live/../../etc/passwd',
      '/live/demo/../../secret.m4s',
      '/live/demo/../secret.m4s',
      '/live/x/%2e%2e%2fsecret',
      '/live/x/..%2f..%2fetc%2fpasswd',
      '/live/demo/%2e%2e%2f%2e%2e%2fsecret.m4s',
      '/live/demo/..%2fsecret.m4s',
      '/live/demo/..%5c..%5csecret.m4s',
      '/live/demo/..\\..\\secret.m4s',
      '/live//demo/index.m3u8',
      '/live/demo//index.m3u8',
      '/live/demo/%2fetc%2fpasswd',
      '/live/demo/index.m3u8%00.m4s',
      '/live/%2e%2e/secret.m4s',
      '/live/demo/./index.m3u8',
      '/live/demo/index.m3u8/..',
    ];
    for (const target of targets) {
      const res = await rawGet(port, target);
      assert.ok(res.status === 400 || res.status === 404, `${target} → ${res.status}`);
      assert.doesNotMatch(res.body.toString('latin1'), /SECRET|root:/, target);
    }
    // Outside origin-form: absolute URLs and '*' are for proxies.
    assert.equal((await rawGet(port, 'http://127.0.0.1/live/demo/index.m3u8')).status, 400);
    assert.equal((await rawRequest(port, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).status, 400);
  });

  it('answers other methods with 405 and Allow', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']) {
      const res = await fetch(`${base}/live/demo/r1-0.m4s`, { method });
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.get('allow'), 'GET, HEAD');
      await res.arrayBuffer();
    }
    const page = await fetch(`${base}/`, { method: 'POST', body: 'x' });
    assert.equal(page.status, 405);
    assert.equal(page.headers.get('allow'), 'GET, HEAD');
  });

  it('survives malformed requests and says 400', async () => {
    assert.equal((await rawRequest(port, 'FOO /live/demo/index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n')).status, 400);
    assert.equal((await rawRequest(port, 'this is not http\r\n\r\n')).status, 400);
    assert.equal((await rawRequest(port, `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\nX: ${'b'.repeat(20_000)}\r\n\r\n`)).status, 431);
    assert.equal((await rawGet(port, '/watch/%E0%A4%A')).status, 400);
    // An aborted request: connect, send half a request line, hang up.
    const socket = connect(port, '127.0.0.1');
    socket.write('GET /live/demo/r1-0.m4s HTT');
    await sleep(50);
    socket.destroy();
    const res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    assert.ok(running.web.running);
  });

  it('lists live streams on / and /streams.json', async () => {
    const json = await fetch(`${base}/streams.json`);
    assert.equal(json.status, 200);
    assert.equal(json.headers.get('cache-control'), 'no-cache');
    assert.match(json.headers.get('content-type') ?? '', /^application\/json/);
    const body = (await json.json()) as { streams: Array<Record<string, unknown>> };
    assert.equal(body.streams.length, 1);
    // Nothing internal (bitrate, publisher): what a viewer's page needs, and whether the player tunes for low latency.
    assert.deepEqual(Object.keys(body.streams[0]!).sort(), ['audio', 'lowLatency', 'since', 'state', 'stream', 'video']);
    assert.equal(body.streams[0]!.stream, 'demo');
    assert.equal(body.streams[0]!.state, 'live');

    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const html = await page.text();
    assert.match(html, /<a href="\/watch\/demo">/);
    assert.match(html, /1280×720/);
    assert.match(html, /<p id="nothing-live" class="empty" hidden>/);
    assert.match(html, /src="\/assets\/streams\.js"/);
  });

  it('says so when nothing is live, and treats a stale live.json as nothing live', async (t) => {
    t.after(() => {
      liveNow = [liveStream('demo')];
    });
    liveNow = [];
    await writeLiveState(media.dir, liveNow);
    await waitFor('empty stream list', async () => ((await (await fetch(`${base}/streams.json`)).json()) as { streams: unknown[] }).streams.length === 0);
    const html = await (await fetch(`${base}/`)).text();
    assert.match(html, /Nothing is live right now/);
    assert.match(html, /<p id="nothing-live" class="empty">/);

    liveNow = [liveStream('demo')];
    await writeLiveState(media.dir, liveNow);
    await waitFor('stream listed again', async () => ((await (await fetch(`${base}/streams.json`)).json()) as { streams: unknown[] }).streams.length === 1);

    heartbeat!.stop();
    await writeLiveState(media.dir, liveNow, new Date(Date.now() - 60_000));
    await waitFor('stale file ignored', async () => ((await (await fetch(`${base}/streams.json`)).json()) as { streams: unknown[] }).streams.length === 0);
    heartbeat = keepLiveStateFresh(media.dir, () => liveNow);
    await writeLiveState(media.dir, liveNow);
    await waitFor('fresh again', async () => ((await (await fetch(`${base}/streams.json`)).json()) as { streams: unknown[] }).streams.length === 1);
  });

  it('serves the player page with hls.js from our own origin', async () => {
    const page = await fetch(`${base}/watch/demo`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /data-stream="demo"/);
    assert.match(html, /data-playlist="\/live\/demo\/index\.m3u8"/);
    assert.match(html, /<script src="\/assets\/hls\.min\.js"><\/script>/);
    assert.match(html, /<script src="\/assets\/player\.js" type="module"><\/script>/);
    assert.doesNotMatch(html, /https?:\/\//, 'no third-party URL on the page');

    const hlsOnDisk = await readFile(path.join(REPO_ROOT, 'node_modules/hls.js/dist/hls.min.js'));
    const plain = await rawGet(port, '/assets/hls.min.js');
    assert.equal(plain.status, 200);
    assert.match(plain.head, /content-type: text\/javascript/i);
    assert.deepEqual(plain.body, hlsOnDisk);
    const gz = await rawRequest(port, 'GET /assets/hls.min.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n');
    assert.match(gz.head, /content-encoding: gzip/i);
    assert.deepEqual(gunzipSync(gz.body), hlsOnDisk);
    const etag = /etag: (.+)\r?\n?/i.exec(plain.head)?.[1]?.trim();
    assert.ok(etag);
    const revalidated = await rawRequest(port, `GET /assets/hls.min.js HTTP/1.1\r\nHost: x\r\nIf-None-Match: ${etag}\r\nConnection: close\r\n\r\n`);
    assert.equal(revalidated.status, 304);

    for (const asset of ['player.js', 'streams.js', 'style.css']) {
      const res = await fetch(`${base}/assets/${asset}`);
      assert.equal(res.status, 200, asset);
      await res.arrayBuffer();
    }
    assert.equal((await fetch(`${base}/assets/nope.js`)).status, 404);
  });

  it('answers an invalid stream name or unknown page with a 404 page', async () => {
    for (const target of ['/watch/Bad', '/watch/-x', '/watch/a%20b', '/nothing/here']) {
      const res = await fetch(`${base}${target}`);
      assert.equal(res.status, 404, target);
      assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(await res.text(), /Not found/);
    }
  });

  it('writes one access record per request, with the trusted proxy\'s X-Forwarded-For', async () => {
    const agent = `onair-test-${Math.random().toString(36).slice(2)}`;
    const headers = { 'user-agent': agent, 'x-forwarded-for': '203.0.113.7' };
    await (await fetch(`${base}/live/demo/index.m3u8?CMCD=sid%3Dabc`, { headers })).arrayBuffer();
    await (await fetch(`${base}/live/demo/r1-0.m4s`, { headers })).arrayBuffer();
    await (await fetch(`${base}/live/demo/r1-0.m4s`, { headers: { ...headers, range: 'bytes=0-99' } })).arrayBuffer();
    await (await fetch(`${base}/live/demo/r1-0.m4s`, { headers, method: 'HEAD' })).arrayBuffer();
    await (await fetch(`${base}/watch/demo`, { headers })).arrayBuffer();
    await (await fetch(`${base}/live/demo/r1-404.m4s`, { headers })).arrayBuffer();
    await (await fetch(`${base}/healthz`, { headers })).arrayBuffer();
    await (await fetch(`${base}/metrics`, { headers })).arrayBuffer();
    await (await fetch(`${base}/readyz`, { headers })).arrayBuffer();

    const mine = await waitFor('six access records', () => {
      const records = accessRecords(running.web).filter((r) => r.user_agent === agent);
      return records.length >= 6 && records;
    });
    await sleep(200);
    assert.equal(accessRecords(running.web).filter((r) => r.user_agent === agent).length, 6, 'no records for ops endpoints');
    const segment = files.get('r1-0.m4s')!.length;
    const expected = [
      { path: '/live/demo/index.m3u8', kind: 'playlist', stream: 'demo', method: 'GET', status: 200, bytes: files.get('index.m3u8')!.length },
      { path: '/live/demo/r1-0.m4s', kind: 'segment', stream: 'demo', method: 'GET', status: 200, bytes: segment },
      { path: '/live/demo/r1-0.m4s', kind: 'segment', stream: 'demo', method: 'GET', status: 206, bytes: 100 },
      { path: '/live/demo/r1-0.m4s', kind: 'segment', stream: 'demo', method: 'HEAD', status: 200, bytes: 0 },
      { path: '/watch/demo', kind: 'page', stream: 'demo', method: 'GET', status: 200 },
      { path: '/live/demo/r1-404.m4s', kind: 'segment', stream: 'demo', method: 'GET', status: 404, bytes: 'not found\n'.length },
    ];
    for (const [i, want] of expected.entries()) {
      const record = mine[i]!;
      for (const [key, value] of Object.entries(want)) assert.equal(record[key as keyof AccessRecord], value, `${want.path} ${key}`);
      assert.equal(record.client_ip, '203.0.113.7');
      assert.equal(record.tier, 'web');
      assert.equal(record.instance, 'web-test');
      assert.match(record['@timestamp'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(typeof record.duration_ms, 'number');
      assert.ok(record.duration_ms >= 0);
      assert.deepEqual(Object.keys(record).sort(), ['@timestamp', 'bytes', 'client_ip', 'duration_ms', 'instance', 'kind', 'method', 'path', 'record_id', 'session_id', 'status', 'stream', 'tier', 'user_agent']);
      assert.equal(record.session_id, null, 'no CMCD in these requests');
      assert.match(record.record_id, /^web-test-[0-9a-f]{12}-\d+$/);
    }
    assert.equal(new Set(mine.map((r) => r.record_id)).size, mine.length, 'record ids are unique');
    const page = mine[4]!;
    assert.ok(page.bytes > 500, 'page bytes counted');
  });

  it('makes a playlist rewrite visible within ~300 ms, even under polling', async (t) => {
    const url = `${base}/live/demo/index.m3u8`;
    const file = path.join(streamDir(media.dir, 'demo'), 'index.m3u8');
    const before = files.get('index.m3u8')!.toString();
    const next = mediaPlaylist('r1', 3, true);
    let hammering = true;
    // Viewers keep the micro-cache warm with the old version right up to the rename.
    const hammer = (async () => {
      while (hammering) await (await fetch(url)).arrayBuffer();
    })();
    try {
      assert.equal(await (await fetch(url)).text(), before);
      await writeFileAtomic(file, next);
      const renamedAt = performance.now();
      await waitFor('the new playlist', async () => (await (await fetch(url)).text()) === next, 5_000, 5);
      const visibleAfter = performance.now() - renamedAt;
      t.diagnostic(`playlist rewrite visible after ${visibleAfter.toFixed(0)} ms`);
      assert.ok(visibleAfter < 300, `visible after ${visibleAfter.toFixed(0)} ms`);
    } finally {
      hammering = false;
      await hammer;
      await writeFileAtomic(file, before);
    }
  });

  it('serves hot segments from memory: one read, later hits, even after the file is gone', async () => {
    const name = 'r1-cache-probe.m4s';
    const body = Buffer.alloc(200_000, 7);
    await writeFile(path.join(streamDir(media.dir, 'demo'), name), body);
    const metric = async (metricName: string): Promise<number> => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return Number(new RegExp(`^${metricName}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    };
    const hitsBefore = await metric('web_segment_cache_hits_total');
    const responses = await Promise.all(Array.from({ length: 20 }, () => fetch(`${base}/live/demo/${name}`)));
    for (const res of responses) assert.deepEqual(Buffer.from(await res.arrayBuffer()), body);
    await rm(path.join(streamDir(media.dir, 'demo'), name));
    const again = await fetch(`${base}/live/demo/${name}`);
    assert.equal(again.status, 200);
    assert.deepEqual(Buffer.from(await again.arrayBuffer()), body);
    assert.ok((await metric('web_segment_cache_hits_total')) > hitsBefore);
    assert.ok((await metric('web_segment_cache_bytes')) >= body.length);
  });

  it('is not ready while MEDIA_DIR/live is unreachable', async (t) => {
    const live = path.join(media.dir, 'live');
    const away = path.join(media.dir, 'live-away');
    await rename(live, away);
    t.after(() => rename(away, live).catch(() => {}));
    const notReady = await waitFor('503 from /readyz', async () => {
      const res = await fetch(`${base}/readyz`);
      return res.status === 503 && res.text();
    });
    assert.match(notReady, /media directory unreachable/);
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'alive all the same');
    await rename(away, live);
    await waitFor('ready again', async () => (await fetch(`${base}/readyz`)).status === 200);
  });

  it('has health, readiness and Prometheus metrics', async () => {
    assert.equal(await (await fetch(`${base}/healthz`)).text(), 'ok\n');
    assert.equal(await (await fetch(`${base}/readyz`)).text(), 'ready\n');
    const text = await (await fetch(`${base}/metrics`)).text();
    for (const name of [
      'web_http_requests_total{',
      'web_http_response_bytes_total{',
      'web_http_request_duration_seconds_bucket{',
      'web_segment_cache_hits_total',
      'web_segment_cache_misses_total',
      'web_segment_cache_bytes',
      'web_live_streams',
    ]) assert.ok(text.includes(name), name);
    assert.match(text, /web_http_requests_total\{[^}]*kind="segment"[^}]*status="200"/);
    assert.match(text, /web_http_requests_total\{[^}]*kind="ops"/);
    assert.match(text, /instance="web-test"/);
  });
});

describe('web service behind an untrusted peer', () => {
  let media: Awaited<ReturnType<typeof makeTempDir>> | undefined;
  let running: RunningWeb | undefined;

  before(async () => {
    media = await makeTempDir('web-untrusted');
    await writeStreamFiles(media.dir, 'demo', 'r1', 1);
    // Loopback is not in the list: the X-Forwarded-For header must be ignored.
    running = await startWeb(media.dir, { TRUSTED_PROXIES: '10.0.0.0/8' });
  });
  afterEach((t) => showLogsOnFailure(t, running?.web));
  after(async () => {
    await running?.web.stop();
    await media?.remove();
  });

  it('uses the peer address, not X-Forwarded-For', async () => {
    const agent = `onair-untrusted-${Math.random().toString(36).slice(2)}`;
    await (await fetch(`${running!.base}/live/demo/index.m3u8`, { headers: { 'user-agent': agent, 'x-forwarded-for': '203.0.113.7' } })).arrayBuffer();
    const record = await waitFor('the access record', () => accessRecords(running!.web).find((r) => r.user_agent === agent));
    assert.equal(record.client_ip, '127.0.0.1');
  });
});

describe('web service shutdown', () => {
  it('on SIGTERM stops being ready, finishes the response in flight, exits 0', async (t) => {
    const media = await makeTempDir('web-drain');
    t.after(() => media.remove());
    const big = Buffer.alloc(32 * 1024 * 1024, 3);
    await mkdir(streamDir(media.dir, 'demo'), { recursive: true });
    await writeFile(path.join(streamDir(media.dir, 'demo'), 'r1-0.m4s'), big);
    const running = await startWeb(media.dir);
    t.after(() => running.web.stop());

    // A slow viewer: asks for a big segment and stops reading, so the response stays in flight.
    const socket = connect(running.port, '127.0.0.1');
    t.after(() => socket.destroy());
    let received = 0;
    let headerEnd = -1;
    let head = Buffer.alloc(0);
    const firstData = new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      if (headerEnd === -1) {
        head = Buffer.concat([head, chunk]);
        headerEnd = head.indexOf('\r\n\r\n');
        if (headerEnd !== -1) received = head.length - headerEnd - 4;
      } else received += chunk.length;
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write('GET /live/demo/r1-0.m4s HTTP/1.1\r\nHost: x\r\n\r\n');
    await firstData;
    socket.pause();

    running.web.child.kill('SIGTERM');
    await waitFor('shutting down', () => running.web.jsonLogs().some((l) => l.msg === 'shutting down'));
    await sleep(500);
    assert.ok(running.web.running, 'still draining the slow response');
    assert.ok(received < big.length);

    socket.resume();
    const exit = await running.web.exited;
    await closed;
    assert.equal(received, big.length, 'the response in flight was finished');
    assert.match(head.subarray(0, headerEnd).toString(), /^HTTP\/1\.1 200/);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(running.web.jsonLogs().some((l) => l.msg === 'stopped'));
  });

  it('exits 2 with a clear message on bad configuration', async () => {
    const web = startService('web', { WEB_PORT: 'not-a-port', TRUSTED_PROXIES: 'nonsense' });
    const exit = await web.exited;
    assert.equal(exit.code, 2);
    const output = web.output.join('\n');
    assert.match(output, /WEB_PORT/);
    assert.match(output, /TRUSTED_PROXIES/);
  });
});
