/**
 * The public playlists and their files, from the parts a muxer run hands over: window, delete
 * grace, continuation across runs and broadcasts, low-latency tags (checked by an independent
 * parser, hls-parser in strict mode), classic HLS, lockstep renditions, lost writes, crash recovery.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import HLS from 'hls-parser';
import { pino } from 'pino';
import { makeTempDir } from '../../common/testing/processes.ts';
import { parseMediaPlaylist, playlistPosition } from '../../common/src/hls/media-playlist.ts';
import { endAbandonedPlaylists, PASSTHROUGH_OUTPUT, StreamPlaylist, type StreamPlaylistOptions } from '../src/hls/stream-playlist.ts';
import { parseLadderSpec, renditionsFor } from '../src/transcode/ladder.ts';
import { fakeParts, segmentBytes, type FakePart } from './support/fake-parts.ts';

const silent = pino({ level: 'silent' });
HLS.setOptions({ strictMode: true, silent: true });

type Options = Omit<StreamPlaylistOptions, 'stream' | 'dir' | 'renditions' | 'logger'>;
const LL: Options = { windowSegments: 3, deleteGraceSegments: 2, minSegmentSeconds: 1, targetDurationOverride: 0, partSeconds: 1 / 3, partHoldBackParts: 3 };
const CLASSIC: Options = { ...LL, partSeconds: null };

async function open(dir: string, options: Options, extra: Partial<StreamPlaylistOptions> = {}): Promise<StreamPlaylist> {
  return StreamPlaylist.open({ stream: 's', dir, renditions: null, logger: silent, ...options, ...extra });
}

async function feed(playlist: StreamPlaylist, parts: readonly FakePart[], output = PASSTHROUGH_OUTPUT, ended = true): Promise<void> {
  for (const p of parts) playlist.addPart(output, p);
  if (ended) await playlist.runEnded(parts[0]!.run);
  await playlist.flush();
}

const read = async (dir: string): Promise<string> => readFile(path.join(dir, 'index.m3u8'), 'utf8');

test('low latency: parts listed as they come, the open segment and a preload hint; valid for an independent parser', async (t) => {
  const temp = await makeTempDir('playlist');
  t.after(temp.remove);
  const dir = path.join(temp.dir, 'live', 's');
  const written: string[] = [];
  const playlist = await open(dir, LL, { onPlaylistWritten: (file, text) => written.push(`${file}\n${text}`) });
  const parts = fakeParts('runa', 7, 6);
  // The first part alone: listed at once, in the open segment, with the next one hinted.
  await feed(playlist, parts.slice(0, 1), PASSTHROUGH_OUTPUT, false);
  let text = await read(dir);
  assert.match(text, /#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1\.008\n#EXT-X-PART-INF:PART-TARGET=0\.336\n/);
  assert.match(text, /#EXT-X-PART:DURATION=0\.33333,URI="runa-p0\.m4s",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="runa-p1\.m4s"\n$/);
  assert.equal(await readFile(path.join(dir, 'runa-p0.m4s'), 'utf8'), '[runa p0]');
  assert.equal(text.match(/#EXT-X-TARGETDURATION:(\d+)/)![1], '2', 'fixed before the first segment ends');
  assert.deepEqual(playlistPosition(parseMediaPlaylist(text)), { lastMsn: -1, openParts: 1 });
  HLS.parse(text);

  // Everything else: the window slides, the last two complete segments and the open one list parts.
  await feed(playlist, parts.slice(1), PASSTHROUGH_OUTPUT, false);
  text = await read(dir);
  const oracle = HLS.parse(text) as HLS.types.MediaPlaylist;
  assert.equal(oracle.mediaSequenceBase, 3);
  assert.deepEqual(oracle.segments.map((s) => s.uri), ['runa-3.m4s', 'runa-4.m4s', 'runa-5.m4s', '']);
  assert.deepEqual(oracle.segments.map((s) => s.parts.length), [0, 6, 6, 7], 'the open segment (runa-6): its 6 parts so far and the hinted one');
  assert.equal(oracle.partTargetDuration, 0.336);
  assert.equal(oracle.lowLatencyCompatibility?.canBlockReload, true);
  assert.equal(oracle.lowLatencyCompatibility?.partHoldBack, 1.008);
  assert.ok(oracle.segments.every((s) => s.parts.every((p) => p.hint || (p.duration ?? 0) <= 0.336)));
  const mine = parseMediaPlaylist(text);
  assert.deepEqual(playlistPosition(mine), { lastMsn: 5, openParts: 6 });
  assert.equal(mine.preloadHint, 'runa-p42.m4s');
  // Segment files are their parts' bytes; parts stay on disk with their segment.
  assert.equal(await readFile(path.join(dir, 'runa-5.m4s'), 'utf8'), segmentBytes(parts.slice(30, 36)));
  const files = (await readdir(dir)).sort();
  assert.ok(!files.includes('runa-0.m4s') && !files.includes('runa-p0.m4s') && !files.includes('runa-p5.m4s'), 'segment 0 and its parts left the window more than the grace ago');
  assert.ok(files.includes('runa-1.m4s') && files.includes('runa-p6.m4s') && files.includes('runa-p11.m4s') && files.includes('runa-2.m4s'), 'segments 1 and 2 are in the grace: they and their parts stay');
  assert.ok(files.includes('runa-p18.m4s'), 'segment 3 is listed without its parts, which stay downloadable');

  // The run ends (the publisher dropped): nothing to hint, but the open segment stays open, its
  // number reserved, until the next run starts or the broadcast ends.
  await playlist.runEnded('runa');
  text = await read(dir);
  assert.doesNotMatch(text, /PRELOAD-HINT/);
  assert.deepEqual(playlistPosition(parseMediaPlaylist(text)), { lastMsn: 5, openParts: 6 });
  await playlist.end();
  text = await read(dir);
  assert.match(text, /#EXTINF:2\.000000,\nruna-6\.m4s\n#EXT-X-ENDLIST\n$/, 'the end completes it');
  HLS.parse(text);
  assert.ok(written.every((w) => w.startsWith('live/s/index.m3u8\n')));
  assert.equal(written.at(-1), `live/s/index.m3u8\n${text}`, 'the feed saw the last version');
});

test('classic HLS (HLS_LOW_LATENCY=off): segments only, no part files, target duration from the first segment', async (t) => {
  const temp = await makeTempDir('playlist');
  t.after(temp.remove);
  const dir = path.join(temp.dir, 'live', 's');
  const playlist = await open(dir, CLASSIC);
  const parts = fakeParts('runa', 4, 3);
  await feed(playlist, parts.slice(0, 2), PASSTHROUGH_OUTPUT, false);
  assert.ok(!(await readdir(dir)).includes('index.m3u8'), 'nothing listed before the first segment is complete');
  await feed(playlist, parts.slice(2));
  const text = await read(dir);
  assert.doesNotMatch(text, /EXT-X-PART|SERVER-CONTROL|PRELOAD/);
  assert.match(text, /^#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n/);
  assert.deepEqual(parseMediaPlaylist(text).segments.map((s) => [s.uri, s.duration]), [['runa-1.m4s', 1], ['runa-2.m4s', 1], ['runa-3.m4s', 1]]);
  assert.ok(!(await readdir(dir)).some((f) => /-p\d+\.m4s$/.test(f)), 'no part files');
  assert.equal(await readFile(path.join(dir, 'runa-2.m4s'), 'utf8'), segmentBytes(parts.slice(6, 9)));
  HLS.parse(text);
});

test('continues across runs with a discontinuity and a new map; a new broadcast continues the numbering', async (t) => {
  const temp = await makeTempDir('playlist');
  t.after(temp.remove);
  const dir = path.join(temp.dir, 'live', 's');
  const playlist = await open(dir, { ...LL, windowSegments: 6 });
  await feed(playlist, fakeParts('runa', 2, 3));
  // runb: ffmpeg restarted mid-broadcast; its open segment at the end is not completed (killed): the next run closes it.
  const runb = fakeParts('runb', 2, 3);
  await feed(playlist, runb.slice(0, 4), PASSTHROUGH_OUTPUT, false);
  await feed(playlist, fakeParts('runc', 1, 3), PASSTHROUGH_OUTPUT, false);
  let text = await read(dir);
  assert.match(text, /runa-1\.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="runb-init\.mp4"\n#EXT-X-PROGRAM-DATE-TIME:[^\n]+\n(#EXT-X-PART:[^\n]+\n){3}#EXTINF:1\.000000,\nrunb-0\.m4s\n/);
  assert.match(text, /#EXT-X-PART:DURATION=0\.33333,URI="runb-p3\.m4s",INDEPENDENT=YES\n#EXTINF:0\.333333,\nrunb-1\.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="runc-init\.mp4"\n/, 'the killed run\'s last segment ends early');
  assert.equal((text.match(/#EXT-X-TARGETDURATION/g) ?? []).length, 1);
  HLS.parse(text);
  await playlist.runEnded('runc');
  await playlist.end();

  const next = await open(dir, LL);
  await feed(next, fakeParts('rund', 1, 3), PASSTHROUGH_OUTPUT, false);
  text = await read(dir);
  const parsed = parseMediaPlaylist(text);
  assert.equal(parsed.mediaSequence, 5, 'after runa-0, runa-1, runb-0, runb-1 and runc-0');
  assert.equal(parsed.discontinuitySequence, 2, 'after the two discontinuities the ended playlist had');
  assert.ok(parsed.open?.discontinuity, 'the new broadcast starts after a discontinuity');
  assert.equal(parsed.ended, false);
});

test('a write that fails loses the open segment, never the playlist: it resumes at the next segment after a discontinuity', async (t) => {
  const temp = await makeTempDir('playlist');
  t.after(temp.remove);
  const dir = path.join(temp.dir, 'live', 's');
  const errors: string[] = [];
  let lost = 0;
  const playlist = await open(dir, { ...LL, windowSegments: 6 }, { onWriteError: (file) => errors.push(file), onStepLost: () => (lost += 1) });
  const parts = fakeParts('runa', 4, 3);
  await feed(playlist, parts.slice(0, 4), PASSTHROUGH_OUTPUT, false);
  // A directory where part 4 must go: the rename fails (even for root), like a full disk would.
  await mkdir(path.join(dir, 'runa-p4.m4s'));
  await feed(playlist, parts.slice(4), PASSTHROUGH_OUTPUT, true);
  await playlist.end();
  const text = await read(dir);
  const parsed = parseMediaPlaylist(text);
  assert.deepEqual(errors, ['part']);
  assert.equal(lost, 1);
  assert.deepEqual(parsed.segments.map((s) => [s.uri, s.discontinuity]), [['runa-0.m4s', false], ['runa-2.m4s', true], ['runa-3.m4s', false]], 'segment 1 (parts 3-5) is lost, part 5 was not listed on its own');
  for (const segment of parsed.segments) assert.ok((await readdir(dir)).includes(segment.uri), `${segment.uri} exists`);
  for (const s of parsed.segments) for (const p of s.parts) assert.ok((await readdir(dir)).includes(p.uri), `${p.uri} exists`);
  HLS.parse(text);
});

test('renditions in lockstep: a part is listed once every rendition has it; one a rendition lacks is lost for all', async (t) => {
  const temp = await makeTempDir('playlist');
  t.after(temp.remove);
  const dir = path.join(temp.dir, 'live', 's');
  // Leftovers of an earlier passthrough broadcast: its numbering is continued, its files go.
  const earlier = await open(dir, LL);
  await feed(earlier, fakeParts('old', 3, 3));
  await earlier.end();

  const renditions = renditionsFor(parseLadderSpec('360p,240p'), { width: 1280, height: 720, fps: 30, videoCodec: 'avc1.64001f', audioCodec: 'mp4a.40.2', bitrateKbps: 2500 });
  let lost = 0;
  const ladder = await open(dir, { ...LL, windowSegments: 4 }, { renditions, onStepLost: () => (lost += 1) });
  const parts = fakeParts('runa', 3, 3);
  // The source and 360p deliver part 0; nothing is listed until 240p has it too.
  ladder.addPart('source', parts[0]!);
  ladder.addPart('360p', parts[0]!);
  await ladder.flush();
  assert.ok(!(await readdir(dir)).includes('source') || !(await readdir(path.join(dir, 'source'))).includes('index.m3u8'));
  ladder.addPart('240p', parts[0]!);
  // 240p never delivers part 4 (it goes from 3 to 5): part 4's segment is lost everywhere.
  for (const p of parts.slice(1)) for (const r of renditions) if (!(r.name === '240p' && p.part.index === 4)) ladder.addPart(r.name, p);
  await ladder.runEnded('runa');
  await ladder.end();
  assert.equal(lost, 1);
  const texts = await Promise.all(renditions.map((r) => read(path.join(dir, r.name))));
  const views = texts.map(parseMediaPlaylist);
  for (const [i, v] of views.entries()) {
    assert.equal(v.mediaSequence, 3, 'numbering continues the earlier broadcast (3 segments) and starts alike');
    assert.deepEqual(v.segments.map((s) => [s.uri, s.discontinuity, s.parts.length]), [['runa-0.m4s', true, 3], ['runa-2.m4s', true, 3]]);
    assert.ok(v.ended);
    HLS.parse(texts[i]!);
  }
  const master = await read(dir);
  assert.deepEqual(master.split('\n').filter((l) => l && !l.startsWith('#')), ['source/index.m3u8', '360p/index.m3u8', '240p/index.m3u8']);
  assert.ok(!(await readdir(dir)).some((f) => f.startsWith('old-')), "the passthrough broadcast's files were removed");
});

test('renditions report each other while live (EXT-X-RENDITION-REPORT)', async (t) => {
  const temp = await makeTempDir('playlist');
  t.after(temp.remove);
  const dir = path.join(temp.dir, 'live', 's');
  const renditions = renditionsFor(parseLadderSpec('360p'), { width: 1280, height: 720, fps: 30, videoCodec: 'avc1.64001f', audioCodec: 'mp4a.40.2', bitrateKbps: 2500 });
  const ladder = await open(dir, LL, { renditions });
  for (const p of fakeParts('runa', 2, 3)) for (const r of renditions) ladder.addPart(r.name, p);
  await ladder.flush();
  const source = await read(path.join(dir, 'source'));
  assert.match(source, /#EXT-X-RENDITION-REPORT:URI="\.\.\/360p\/index\.m3u8",LAST-MSN=1,LAST-PART=2\n$/);
  assert.deepEqual(playlistPosition(parseMediaPlaylist(source)), { lastMsn: 0, openParts: 3 });
  HLS.parse(source);
});

test('playlists left open by a crash get an ENDLIST at start; an unfinished segment\'s parts go', async (t) => {
  const temp = await makeTempDir('playlist');
  t.after(temp.remove);
  await mkdir(path.join(temp.dir, 'a'), { recursive: true });
  await mkdir(path.join(temp.dir, 'b'), { recursive: true });
  await writeFile(path.join(temp.dir, 'a', 'index.m3u8'), '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nx-0.m4s\n');
  await writeFile(path.join(temp.dir, 'b', 'index.m3u8'), '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nx-0.m4s\n#EXT-X-ENDLIST\n');
  const live = path.join(temp.dir, 'c');
  const playlist = await open(live, LL);
  await feed(playlist, fakeParts('runa', 2, 3).slice(0, 5), PASSTHROUGH_OUTPUT, false);
  assert.deepEqual(await endAbandonedPlaylists(temp.dir, silent), ['a', 'c']);
  assert.ok(parseMediaPlaylist(await readFile(path.join(temp.dir, 'a', 'index.m3u8'), 'utf8')).ended);
  const ended = await read(live);
  const parsed = parseMediaPlaylist(ended);
  assert.ok(parsed.ended);
  assert.deepEqual(parsed.segments.map((s) => s.uri), ['runa-0.m4s']);
  assert.deepEqual(parsed.openParts, []);
  assert.equal(parsed.preloadHint, null);
  HLS.parse(ended);
  // The next broadcast continues after the last complete segment, after a discontinuity (its players were told ENDLIST).
  const next = await open(live, LL);
  await feed(next, fakeParts('runb', 1, 3), PASSTHROUGH_OUTPUT, false);
  const continued = parseMediaPlaylist(await read(live));
  assert.equal(continued.mediaSequence, 1);
  assert.equal(continued.open?.discontinuity, true);
});
