import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { makeTempDir } from '../../common/testing/processes.ts';
import { parseMediaPlaylist } from '../src/hls/media-playlist.ts';
import { endAbandonedPlaylists, StreamPlaylist } from '../src/hls/stream-playlist.ts';

import { fakeRun } from './support/fake-muxer-run.ts';

const silent = pino({ level: 'silent' });

test('slides a window, deletes only after the grace, continues across runs with a discontinuity', async (t) => {
  const temp = await makeTempDir('playlist');
  t.after(temp.remove);
  const dir = path.join(temp.dir, 'live', 's');
  const playlist = await StreamPlaylist.open({ stream: 's', dir, windowSegments: 3, deleteGraceSegments: 2, minSegmentSeconds: 1, targetDurationOverride: 0, logger: silent });
  for (const seg of await fakeRun(path.join(temp.dir, 'w1'), 'runa', 6)) await playlist.addSegment(seg);
  let parsed = parseMediaPlaylist(await readFile(path.join(dir, 'index.m3u8'), 'utf8'));
  assert.deepEqual(parsed.segments.map((s) => s.uri), ['runa-3.m4s', 'runa-4.m4s', 'runa-5.m4s']);
  assert.equal(parsed.mediaSequence, 3);
  assert.equal(parsed.targetDuration, 1);
  // Segments 1 and 2 left the playlist most recently: kept (grace 2); segment 0 is gone.
  let files = (await readdir(dir)).sort();
  assert.deepEqual(files, ['index.m3u8', 'runa-1.m4s', 'runa-2.m4s', 'runa-3.m4s', 'runa-4.m4s', 'runa-5.m4s', 'runa-init.mp4']);
  assert.equal(await readFile(path.join(dir, 'runa-4.m4s'), 'utf8'), 'segment runa 4');

  // A second run (publisher reconnected / ffmpeg restarted) with a longer GOP: target stays 1.
  for (const seg of await fakeRun(path.join(temp.dir, 'w2'), 'runb', 5, 1)) await playlist.addSegment(seg);
  parsed = parseMediaPlaylist(await readFile(path.join(dir, 'index.m3u8'), 'utf8'));
  assert.deepEqual(parsed.segments.map((s) => s.uri), ['runb-2.m4s', 'runb-3.m4s', 'runb-4.m4s']);
  assert.equal(parsed.mediaSequence, 8);
  assert.equal(parsed.discontinuitySequence, 1, 'the discontinuity before runb-0 slid out');
  files = (await readdir(dir)).sort();
  assert.ok(!files.includes('runa-5.m4s'));
  assert.ok(!files.includes('runa-init.mp4'), 'init of a run nothing on disk references any more is deleted');
  assert.ok(files.includes('runb-init.mp4'));

  await playlist.end();
  const ended = await readFile(path.join(dir, 'index.m3u8'), 'utf8');
  assert.ok(ended.trimEnd().endsWith('#EXT-X-ENDLIST'));

  // A new broadcast continues the numbering and starts after a discontinuity.
  const next = await StreamPlaylist.open({ stream: 's', dir, windowSegments: 3, deleteGraceSegments: 2, minSegmentSeconds: 1, targetDurationOverride: 0, logger: silent });
  for (const seg of await fakeRun(path.join(temp.dir, 'w3'), 'runc', 1, 2)) await next.addSegment(seg);
  const text = await readFile(path.join(dir, 'index.m3u8'), 'utf8');
  parsed = parseMediaPlaylist(text);
  assert.equal(parsed.mediaSequence, 11);
  assert.equal(parsed.discontinuitySequence, 1);
  assert.equal(parsed.targetDuration, 2, 'a new broadcast chooses its own target duration');
  assert.equal(parsed.segments[0]!.discontinuity, true);
  assert.equal(parsed.ended, false);
});

test('a run whose first segment is in the window gets its own EXT-X-MAP after the discontinuity', async (t) => {
  const temp = await makeTempDir('playlist');
  t.after(temp.remove);
  const dir = path.join(temp.dir, 'live', 's');
  const playlist = await StreamPlaylist.open({ stream: 's', dir, windowSegments: 6, deleteGraceSegments: 1, minSegmentSeconds: 1, targetDurationOverride: 0, logger: silent });
  for (const seg of await fakeRun(path.join(temp.dir, 'w1'), 'runa', 2)) await playlist.addSegment(seg);
  for (const seg of await fakeRun(path.join(temp.dir, 'w2'), 'runb', 2)) await playlist.addSegment(seg);
  const text = await readFile(path.join(dir, 'index.m3u8'), 'utf8');
  assert.match(text, /runa-1\.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="runb-init\.mp4"\n#EXTINF:1\.000000,\nrunb-0\.m4s/);
  assert.equal((text.match(/#EXT-X-TARGETDURATION/g) ?? []).length, 1);
});

test('playlists left open by a crash get an ENDLIST at start', async (t) => {
  const temp = await makeTempDir('playlist');
  t.after(temp.remove);
  await mkdir(path.join(temp.dir, 'a'), { recursive: true });
  await mkdir(path.join(temp.dir, 'b'), { recursive: true });
  await writeFile(path.join(temp.dir, 'a', 'index.m3u8'), '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nx-0.m4s\n');
  await writeFile(path.join(temp.dir, 'b', 'index.m3u8'), '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nx-0.m4s\n#EXT-X-ENDLIST\n');
  assert.deepEqual(await endAbandonedPlaylists(temp.dir, silent), ['a']);
  assert.ok(parseMediaPlaylist(await readFile(path.join(temp.dir, 'a', 'index.m3u8'), 'utf8')).ended);
});
