/** The renditions of a ladder kept in lockstep on disk; crash recovery of a ladder's playlists. */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { makeTempDir } from '../../common/testing/processes.ts';
import { LadderPlaylist } from '../src/hls/ladder-playlist.ts';
import { parseMediaPlaylist } from '../src/hls/media-playlist.ts';
import { endAbandonedPlaylists, StreamPlaylist } from '../src/hls/stream-playlist.ts';
import { parseLadderSpec, renditionsFor } from '../src/transcode/ladder.ts';
import { fakeRun } from './support/fake-muxer-run.ts';

const silent = pino({ level: 'silent' });
const renditions = renditionsFor(parseLadderSpec('360p,240p'), { width: 1280, height: 720, fps: 30, videoCodec: 'avc1.64001f', audioCodec: 'mp4a.40.2', bitrateKbps: 2500 });
const base = { stream: 's', windowSegments: 4, deleteGraceSegments: 1, minSegmentSeconds: 1, targetDurationOverride: 0, logger: silent };

async function runOf(workDir: string, run: string, count: number) {
  const out = new Map<string, Awaited<ReturnType<typeof fakeRun>>>();
  for (const r of renditions) out.set(r.name, (await fakeRun(path.join(workDir, r.name), run, count)).map((s) => ({ ...s, rendition: r.name })));
  return out;
}

async function read(dir: string, rendition: string) {
  return parseMediaPlaylist(await readFile(path.join(dir, rendition, 'index.m3u8'), 'utf8'));
}

test('segments are published only when every rendition has them; a segment one lacks is dropped from all', async (t) => {
  const temp = await makeTempDir('ladder-playlist');
  t.after(temp.remove);
  const dir = path.join(temp.dir, 'live', 's');
  // Leftovers of an earlier passthrough broadcast: its numbering is continued, its files go.
  await mkdir(dir, { recursive: true });
  const earlier = await StreamPlaylist.open({ ...base, dir });
  for (const seg of await fakeRun(path.join(temp.dir, 'w0'), 'old', 3)) await earlier.addSegment(seg);
  await earlier.end();

  let dropped = 0;
  const ladder = await LadderPlaylist.open({ ...base, dir, renditions, onSegmentDropped: () => (dropped += 1) });
  const run = await runOf(path.join(temp.dir, 'w1'), 'runa', 5);
  // Renditions deliver at their own pace; 240p lost segment 2 (incomplete file: never handed over).
  for (const i of [0, 1]) await ladder.addSegment(run.get('source')![i]!);
  assert.equal(ladder.segmentsPublished, 0, 'nothing before every rendition has segment 0');
  assert.ok(!(await readdir(dir)).includes('index.m3u8') || !(await readFile(path.join(dir, 'index.m3u8'), 'utf8')).includes('STREAM-INF'));
  for (const i of [0, 1]) await ladder.addSegment(run.get('360p')![i]!);
  for (const i of [0, 1]) await ladder.addSegment(run.get('240p')![i]!);
  assert.equal(ladder.segmentsPublished, 2);
  for (const i of [2, 3, 4]) {
    await ladder.addSegment(run.get('source')![i]!);
    await ladder.addSegment(run.get('360p')![i]!);
    if (i !== 2) await ladder.addSegment({ ...run.get('240p')![i]!, afterGap: i === 3 });
  }
  await ladder.end();
  assert.equal(dropped, 1);
  const views = await Promise.all(renditions.map((r) => read(dir, r.name)));
  for (const v of views) {
    assert.equal(v.mediaSequence, 3 + 0, 'numbering continues the earlier broadcast (3 segments) and starts alike');
    assert.deepEqual(v.segments.map((s) => s.uri.replace(/\.m4s$/, '')), ['runa-0', 'runa-1', 'runa-3', 'runa-4']);
    assert.deepEqual(v.segments.map((s) => s.discontinuity), [true, false, true, false], 'a break after the earlier broadcast and at the dropped segment');
    assert.ok(v.ended);
  }
  const master = await readFile(path.join(dir, 'index.m3u8'), 'utf8');
  assert.deepEqual(master.split('\n').filter((l) => l && !l.startsWith('#')), ['source/index.m3u8', '360p/index.m3u8', '240p/index.m3u8']);
  assert.ok(!(await readdir(dir)).some((f) => f.startsWith('old-')), 'the passthrough broadcast\'s files were removed');
  // A dropped segment's file in the renditions that had it never reached the public folder.
  assert.ok(!(await readdir(path.join(dir, 'source'))).includes('runa-2.m4s'));

  // After a crash: the master is left alone, each rendition's open playlist gets its ENDLIST.
  for (const r of renditions) {
    const file = path.join(dir, r.name, 'index.m3u8');
    await writeFile(file, (await readFile(file, 'utf8')).replace('#EXT-X-ENDLIST\n', ''));
  }
  assert.deepEqual(await endAbandonedPlaylists(path.join(temp.dir, 'live'), silent), ['s']);
  assert.equal(await readFile(path.join(dir, 'index.m3u8'), 'utf8'), master);
  for (const r of renditions) assert.ok((await read(dir, r.name)).ended);
});
