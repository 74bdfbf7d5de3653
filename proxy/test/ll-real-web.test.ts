/**
 * The proxy's caches in front of real web processes (web/src/main.ts), plain playlist and segment
 * behaviour only: web's blocking-reload logic is being rewritten separately, so directive requests
 * are covered against the fake replica in ll-hls.test.ts. What this adds: the herd of viewers with
 * their own CMCD and tokens reaches a real replica as one request without them, and a replica
 * killed with SIGKILL is not seen by viewers.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeFileAtomic } from '../../common/src/atomic-file.ts';
import { streamDir } from '../../common/src/media-layout.ts';
import { signPlaybackToken } from '../../common/src/playback-token.ts';
import { freePort, makeTempDir, sleep, startService, waitFor, waitForHttpOk, type ManagedProcess } from '../../common/testing/processes.ts';
import { client, startInProcessProxy, waitForHealthy, type InProcessProxy } from './in-process.ts';

const SECRET = 'll-real-web-playback-secret';
const SEGMENT = Buffer.alloc(96 * 1024, 7);

function playlist(): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-TARGETDURATION:2', '#EXT-X-MEDIA-SEQUENCE:0', '#EXT-X-MAP:URI="rw-init.mp4"'];
  for (let i = 0; i < 3; i++) lines.push('#EXTINF:2.000000,', `rw-${i}.m4s`);
  return `${lines.join('\n')}\n`;
}

interface Web {
  proc: ManagedProcess;
  url: string;
}

async function startWeb(mediaDir: string, name: string): Promise<Web> {
  const port = await freePort();
  const proc = startService('web', { WEB_PORT: String(port), WEB_HOST: '127.0.0.1', MEDIA_DIR: mediaDir, INSTANCE: name, MEDIA_CACHE_MB: '16' }, name);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttpOk(`${url}/readyz`);
  } catch (err) {
    proc.kill();
    throw new Error(`${String(err)}\n${proc.tail()}`);
  }
  return { proc, url };
}

function webRecords(web: Web, filePath: string): Array<Record<string, unknown>> {
  return web.proc
    .jsonLogs()
    .filter((l) => l.msg === 'access')
    .map((l) => l.access as Record<string, unknown>)
    .filter((r) => r.path === filePath);
}

describe('proxy caches in front of real web replicas (plain playlists and segments)', () => {
  let media: Awaited<ReturnType<typeof makeTempDir>>;
  let webs: Web[] = [];
  let proxy: InProcessProxy;
  const http = client();

  before(async () => {
    media = await makeTempDir('proxy-real-web');
    const dir = streamDir(media.dir, 'demo');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'rw-init.mp4'), Buffer.alloc(700, 1));
    for (let i = 0; i < 3; i++) await writeFile(path.join(dir, `rw-${i}.m4s`), SEGMENT);
    await writeFileAtomic(path.join(dir, 'index.m3u8'), Buffer.from(playlist()));
    webs = await Promise.all([startWeb(media.dir, 'web-a'), startWeb(media.dir, 'web-b')]);
    // The longest playlist hold, so that 40 requests on a loaded machine still fall within one.
    proxy = await startInProcessProxy({ BACKENDS: webs.map((w) => w.url).join(','), PLAYBACK_TOKEN_SECRET: SECRET, PLAYLIST_CACHE_MS: '500' });
    for (const web of webs) await waitForHealthy(proxy, web.url);
  });

  after(async () => {
    http.close();
    await proxy?.stop();
    await Promise.all(webs.map((w) => w.proc.stop()));
    await media?.remove();
  });

  test('40 viewers with their own CMCD session and token: one request to a replica, without either', async () => {
    const expiry = Math.floor(Date.now() / 1000) + 3600;
    const query = (i: number): string => `CMCD=${encodeURIComponent(`sid="v-${i}",bl=900`)}&token=${signPlaybackToken(SECRET, 'demo', expiry + i)}`;
    const playlists = await Promise.all(Array.from({ length: 40 }, (_, i) => http.get(`${proxy.url}/live/demo/index.m3u8?${query(i)}`)));
    assert.ok(playlists.every((r) => r.status === 200 && r.body === playlist()));
    const segments = await Promise.all(Array.from({ length: 40 }, (_, i) => http.get(`${proxy.url}/live/demo/rw-1.m4s?${query(i)}`)));
    assert.ok(segments.every((r) => r.status === 200 && r.body.length === SEGMENT.length));

    const playlistFills = await proxy.metric('onair_proxy_playlist_cache_requests_total', { outcome: 'fill', directives: 'no' });
    console.log(`# 40 concurrent playlist requests: ${playlistFills} upstream request(s) to real web`);
    assert.ok(playlistFills <= 2, `40 viewers, ${playlistFills} fills (one per PLAYLIST_CACHE_MS at most)`);
    for (const [file, fills] of [['/live/demo/index.m3u8', playlistFills], ['/live/demo/rw-1.m4s', 1]] as const) {
      await waitFor(`web's records of ${file}`, () => webs.reduce((n, w) => n + webRecords(w, file).length, 0) >= fills, 5_000, 20);
      const records = webs.flatMap((w) => webRecords(w, file));
      assert.equal(records.length, fills, `${file}: one upstream request per fill`);
      assert.ok(records.every((r) => r.session_id === null), `${file}: the fills carried no CMCD`);
    }
    const proxyRecords = proxy.records.filter((r) => r.path === '/live/demo/index.m3u8');
    assert.equal(proxyRecords.length, 40, 'but 40 access records at the proxy, each with its session');
    assert.equal(new Set(proxyRecords.map((r) => r.session_id)).size, 40);
  });

  test('a replica killed with SIGKILL: viewers keep getting playlists and segments', async () => {
    const [victim, survivor] = webs as [Web, Web];
    victim.proc.kill('SIGKILL');
    const t = signPlaybackToken(SECRET, 'demo', Math.floor(Date.now() / 1000) + 3600);
    // Range requests are relayed (never cached): each one goes to a replica.
    const ranged = [];
    for (let i = 0; i < 10; i++) ranged.push(await http.get(`${proxy.url}/live/demo/rw-${i % 3}.m4s?token=${t}`, { range: 'bytes=0-99' }));
    assert.deepEqual(ranged.map((a) => a.status), Array<number>(10).fill(206));
    await sleep(550); // past PLAYLIST_CACHE_MS: a new fill
    const fresh = await Promise.all(Array.from({ length: 5 }, () => http.get(`${proxy.url}/live/demo/index.m3u8?token=${t}`)));
    assert.deepEqual(fresh.map((a) => a.status), [200, 200, 200, 200, 200]);
    assert.ok(fresh.some((a) => a.headers['x-cache'] === 'MISS'));
    await waitFor('the dead replica out of rotation', () => proxy.backend(victim.url).state !== 'healthy', 5_000, 20);
    assert.equal(proxy.backend(survivor.url).state, 'healthy');
  });
});
