/**
 * Recording with real parts: ffmpeg publishes over RTMP, drops, reconnects, stops; the broadcast's
 * archive is one session with a complete VOD playlist whose every segment is a valid fragment.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { archivedSessions, firstBox, probeSegment, readArchive } from '../../common/testing/archive.ts';
import { sleep, waitFor } from '../../common/testing/processes.ts';
import { createStream, ingestStreams, publish, startStack, waitForSegments, type Stack } from '../../common/testing/stack.ts';

let stack: Stack;
before(async () => {
  stack = await startStack({ ingestEnv: { PUBLISH_IDLE_TIMEOUT_MS: '2000', RECONNECT_GRACE_MS: '10000', HLS_WINDOW_SEGMENTS: '3', HLS_DELETE_GRACE_SEGMENTS: '1' } });
});
after(async () => {
  await stack?.stop();
});

test('a broadcast with a reconnect is archived as one complete VOD session with a thumbnail', async () => {
  try {
    const key = await createStream(stack, 'rec');
    const url = stack.publishUrl('rec', key);
    // First connection: ~8 s of media, then the connection drops (SIGKILL: no deleteStream).
    const first = publish(url);
    const firstStart = Date.now();
    await waitForSegments(stack, 'rec', 2, 30_000);
    await sleep(Math.max(0, 8000 - (Date.now() - firstStart)));
    first.kill('SIGKILL');
    await first.exited;
    const firstSeconds = (Date.now() - firstStart) / 1000;
    await waitFor('ingest to notice the drop', async () => (await ingestStreams(stack)).find((s) => s.stream === 'rec' && s.state === 'reconnecting'), 10_000, 100);

    // The publisher comes back within the grace: same broadcast, same session. ~6 s more, clean stop.
    const second = publish(url);
    const secondStart = Date.now();
    await waitFor('the publisher back live', async () => (await ingestStreams(stack)).find((s) => s.stream === 'rec' && s.state === 'live'), 15_000, 100);
    await sleep(Math.max(0, 6000 - (Date.now() - secondStart)));
    await second.stop();
    const secondSeconds = (Date.now() - secondStart) / 1000;

    const sessions = await waitFor('the archive to end', async () => {
      const list = await archivedSessions(stack.mediaDir, 'rec');
      if (list.length !== 1) return undefined;
      const archive = await readArchive(stack.mediaDir, 'rec', list[0]!).catch(() => null);
      return archive?.playlist.ended && archive.info.ended ? list : undefined;
    }, 30_000, 200);
    assert.equal(sessions.length, 1, 'one session for the broadcast with its reconnect');
    const { dir, playlist, info } = await readArchive(stack.mediaDir, 'rec', sessions[0]!);

    assert.equal(playlist.type, 'EVENT');
    assert.equal(playlist.ended, true);
    assert.equal(playlist.targetDuration, 2, "the live playlist's (low latency: fixed at 2 s before the first 1 s segment ended)");
    assert.equal(playlist.discontinuities, 1, 'one DISCONTINUITY: the reconnect');
    assert.equal(playlist.maps, 2, 'a new EXT-X-MAP with the new run');
    const joinAt = playlist.segments.findIndex((s) => s.discontinuity);
    assert.notEqual(playlist.segments[joinAt]!.init, playlist.segments[joinAt - 1]!.init);

    // Every segment is there and is a valid fragment (styp/moof first; ffprobe reads it with its init).
    const files = new Set(await readdir(dir));
    let probed = 0;
    for (const segment of playlist.segments) {
      assert.ok(files.has(segment.uri), `${segment.uri} archived`);
      assert.ok(['styp', 'moof'].includes(await firstBox(path.join(dir, segment.uri))), `${segment.uri} is an fMP4 fragment`);
      const probe = await probeSegment(path.join(dir, segment.init), path.join(dir, segment.uri));
      assert.deepEqual(probe.codecs, ['aac', 'h264'], segment.uri);
      probed++;
    }
    assert.ok(![...files].some((f) => f.startsWith('.') || f.endsWith('.tmp')), 'no temp files left');
    // The live window (3 segments + 1 grace) deleted the early segments; the archive still has them.
    const liveFiles = new Set(await readdir(path.dirname(stack.playlistPath('rec'))));
    assert.ok(!liveFiles.has(playlist.segments[0]!.uri), 'the live folder no longer has the first segment');

    // Duration ≈ what was published (minus the connection set-up and what the drop lost).
    const published = firstSeconds + secondSeconds;
    console.log(`# archive: ${playlist.segments.length} segments (${probed} ffprobe-valid), ${playlist.totalSeconds.toFixed(2)} s recorded of ${published.toFixed(2)} s published (${firstSeconds.toFixed(1)} + ${secondSeconds.toFixed(1)}), discontinuities ${playlist.discontinuities}`);
    assert.ok(playlist.totalSeconds > published - 5, `recorded ${playlist.totalSeconds} s of ${published} s`);
    assert.ok(playlist.totalSeconds < published + 1, `recorded ${playlist.totalSeconds} s of ${published} s`);

    assert.equal(info.stream, 'rec');
    assert.equal(info.session, sessions[0]);
    assert.equal(info.segments, playlist.segments.length);
    assert.ok(Math.abs(info.durationSeconds - playlist.totalSeconds) < 0.01);
    assert.ok(Date.parse(info.ended!) > Date.parse(info.started));
    assert.equal(info.thumbnail, 'thumbnail.jpg');
    const jpeg = await readFile(path.join(dir, 'thumbnail.jpg'));
    assert.deepEqual([...jpeg.subarray(0, 2)], [0xff, 0xd8], 'a JPEG');
    console.log(`# session ${info.session}: ${info.durationSeconds} s, thumbnail ${jpeg.length} bytes`);
  } catch (err) {
    (err as Error).message += `\n${stack.diagnostics()}`;
    throw err;
  }
});
