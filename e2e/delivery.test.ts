/**
 * The live path through every tier: ffmpeg → RTMP → ingest → files → three web replicas → proxy.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { sleep, waitFor } from '../common/testing/processes.ts';
import { createStream, publish, startStack, viewPlaylist, type Stack } from '../common/testing/stack.ts';
import type { ManagedProcess } from '../common/testing/processes.ts';

function rawGet(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let data = '';
    socket.on('data', (d) => (data += d.toString('latin1')));
    socket.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
  });
}

describe('delivery through the proxy', () => {
  let stack: Stack;
  let publisher: ManagedProcess;
  before(async () => {
    stack = await startStack({ webReplicas: 3, proxy: true });
    const key = await createStream(stack, 'main');
    publisher = publish(stack.publishUrl('main', key));
  });
  after(async () => {
    await publisher?.stop();
    await stack?.stop();
  });

  test('the playlist and its segments arrive through the proxy with the contract headers', async () => {
    const started = Date.now();
    const playlist = await waitFor('a playlist with a segment through the proxy', async () => {
      const res = await fetch(`${stack.proxyUrl}/live/main/index.m3u8`);
      if (res.status !== 200) return undefined;
      const text = await res.text();
      return viewPlaylist(text).segments.length > 0 ? { res, text } : undefined;
    }, 20_000, 50);
    const firstPlaylistMs = Date.now() - started;
    assert.equal(playlist.res.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    assert.match(playlist.res.headers.get('cache-control') ?? '', /no-cache|max-age=0/);
    assert.ok(playlist.res.headers.get('x-request-id'));
    const view = viewPlaylist(playlist.text);
    const init = /#EXT-X-MAP:URI="([^"]+)"/.exec(view.text)![1]!;
    const initRes = await fetch(`${stack.proxyUrl}/live/main/${init}`);
    assert.equal(initRes.status, 200);
    assert.equal(initRes.headers.get('content-type'), 'video/mp4');
    const segment = await fetch(`${stack.proxyUrl}/live/main/${view.segments[0]}`);
    assert.equal(segment.status, 200);
    assert.equal(segment.headers.get('content-type'), 'video/iso.segment');
    assert.equal(segment.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    const body = Buffer.from(await segment.arrayBuffer());
    assert.equal(body.subarray(4, 8).toString('latin1'), 'styp', 'an fMP4 media segment');
    console.log(`# first playlist with a segment through the proxy: ${firstPlaylistMs} ms after the publisher started (+ stack start)`);
  });

  test('traversal, temp files and malformed paths are refused through the proxy', async () => {
    const port = Number(new URL(stack.proxyUrl!).port);
    for (const path of ['/live/../../etc/passwd', '/live/main/..%2f..%2f..%2fetc%2fpasswd', '/live/main/%2e%2e/%2e%2e/etc/passwd', '/live/main/index.m3u8.tmp', '/live/main/.index.m3u8.1234.tmp', '/live/main/../../../ingest/live.json', '/live/Main/index.m3u8', '/live/main/sub/x.m4s']) {
      const status = await rawGet(port, path);
      assert.ok(status === 400 || status === 404, `${path} → ${status}`);
    }
    assert.equal((await fetch(`${stack.proxyUrl}/live/nothing-here/index.m3u8`)).status, 404);
  });

  test('a web replica killed during steady fetching causes zero failed requests', async () => {
    // Eight player-like loops: fetch the playlist, then its newest segment, as hls.js does.
    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const loop = async (): Promise<void> => {
      while (running) {
        try {
          const res = await fetch(`${stack.proxyUrl}/live/main/index.m3u8`);
          const text = await res.text();
          if (res.status !== 200) throw new Error(`playlist ${res.status}: ${text.slice(0, 80)}`);
          const newest = viewPlaylist(text).segments.at(-1)!;
          const seg = await fetch(`${stack.proxyUrl}/live/main/${newest}`);
          const bytes = (await seg.arrayBuffer()).byteLength;
          if (seg.status !== 200 || bytes === 0) throw new Error(`segment ${seg.status}`);
          ok += 2;
        } catch (err) {
          failures.push((err as Error).message);
        }
        await sleep(50);
      }
    };
    const loops = Array.from({ length: 8 }, loop);
    await sleep(1500);
    const victim = stack.webs[1]!;
    victim.process.kill('SIGKILL');
    await sleep(4000);
    running = false;
    await Promise.all(loops);
    assert.deepEqual(failures, [], `failed requests after killing ${victim.process.name}`);
    assert.ok(ok > 50, `requests served: ${ok}`);
    const backends = await (await fetch(`${stack.proxyUrl}/admin/backends`, { headers: { authorization: `Bearer ${stack.opsToken}` } })).json();
    const killed = (backends as { backends: Array<{ url: string; state: string }> }).backends.find((b) => b.url.includes(String(victim.port)));
    assert.notEqual(killed?.state, 'healthy', 'the dead replica left the rotation');
    console.log(`# replica killed mid-fetching: ${ok} requests ok, ${failures.length} failed`);
  });
});
