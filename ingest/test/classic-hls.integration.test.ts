/**
 * HLS_LOW_LATENCY=off: the installation gets classic HLS, as before low latency: segments only (no
 * part files, no LL tags), the target duration taken from the first segment, the stream marked as
 * not low latency for the player, and a clean stop ends the playlist.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { parseMediaPlaylist } from '../../common/src/hls/media-playlist.ts';
import { waitFor } from '../../common/testing/processes.ts';
import { createStream, ingestStreams, publish, startStack, viewPlaylist, waitForSegments } from '../../common/testing/stack.ts';

test('HLS_LOW_LATENCY=off: classic HLS playlists, no parts, the player told so', { timeout: 90_000 }, async () => {
  const stack = await startStack({ webReplicas: 1, ingestEnv: { HLS_LOW_LATENCY: 'off' } });
  try {
    const key = await createStream(stack, 'classic');
    const publisher = publish(stack.publishUrl('classic', key), { fps: 15, keyframeSeconds: 1 });
    try {
      const view = await waitForSegments(stack, 'classic', 3);
      const parsed = parseMediaPlaylist(view.text);
      assert.equal(view.targetDuration, 1, 'taken from the first 1 s segment');
      assert.doesNotMatch(view.text, /EXT-X-PART|SERVER-CONTROL|PRELOAD-HINT|PART-INF/);
      assert.match(view.text, /^#EXTM3U\n#EXT-X-VERSION:7\n/);
      assert.ok(parsed.segments.every((s) => Math.abs(s.duration - 1) < 0.1), 'segments of one keyframe interval');
      const files = await readdir(path.dirname(stack.playlistPath('classic')));
      assert.ok(!files.some((f) => /-p\d+\.m4s$/.test(f)), `no part files: ${files.join(' ')}`);
      const status = (await ingestStreams(stack)).find((s) => s.stream === 'classic')!;
      assert.equal(status.lowLatency, false);
      assert.equal(status.playlist.partTarget, null);
      const listed = await waitFor('the stream on /streams.json', async () => {
        const body = (await (await fetch(`${stack.webs[0]!.url}/streams.json`)).json()) as { streams: Array<{ stream: string; lowLatency: boolean }> };
        return body.streams.find((s) => s.stream === 'classic');
      });
      assert.equal(listed.lowLatency, false, 'the player keeps its classic settings');
      // A blocking reload on a classic playlist is a plain request (no CAN-BLOCK-RELOAD).
      const started = Date.now();
      const res = await fetch(`${stack.webs[0]!.url}/live/classic/index.m3u8?_HLS_msn=${parsed.mediaSequence + parsed.segments.length + 1}`);
      assert.equal(res.status, 200);
      assert.ok(Date.now() - started < 1_000, 'answered at once, not held');
    } finally {
      await publisher.stop();
    }
    await waitFor('ENDLIST after a clean stop', async () => viewPlaylist(await stack.readPlaylist('classic')).ended, 10_000);
  } catch (err) {
    (err as Error).message += `\n${stack.diagnostics()}`;
    throw err;
  } finally {
    await stack.stop();
  }
});
