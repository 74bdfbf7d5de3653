import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { makeTempDir } from '../../common/testing/processes.ts';
import { archiveSessionDir } from '../../common/src/media-layout.ts';
import { applyRetention, endAbandonedArchives } from '../src/archive/archive-maintenance.ts';
import { SessionArchive } from '../src/archive/session-archive.ts';
import { newSessionId } from '../src/broadcast/broadcast.ts';
import { parseMediaPlaylist } from '../../common/src/hls/media-playlist.ts';
import { StreamPlaylist } from '../src/hls/stream-playlist.ts';

import { publishSegments } from './support/fake-parts.ts';

const silent = pino({ level: 'silent' });

test('session ids sort by start time and are accepted by the layout', () => {
  const id = newSessionId(new Date('2026-11-22T04:12:00.123Z'));
  assert.match(id, /^20261122-041200-[0-9a-f]{6}$/);
  assert.ok(archiveSessionDir('/m', 'demo', id).endsWith(`archive/demo/${id}`));
  assert.throws(() => archiveSessionDir('/m', 'demo', '../x'));
});

test('the archive keeps every segment of a broadcast across runs, as an EVENT playlist that ends as a VOD', async (t) => {
  const temp = await makeTempDir('archive');
  t.after(temp.remove);
  const mediaDir = path.join(temp.dir, 'media');
  const liveDir = path.join(mediaDir, 'live', 's');
  // A previous broadcast left a playlist: the live one continues after a discontinuity, the archive starts clean.
  await mkdir(liveDir, { recursive: true });
  await writeFile(path.join(liveDir, 'index.m3u8'), '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:5\n#EXTINF:1.0,\nold-1.m4s\n#EXT-X-ENDLIST\n');
  const errors: string[] = [];
  const archive = new SessionArchive({ mediaDir, stream: 's', session: '20261122-041200-abcdef', startedAt: new Date('2026-11-22T04:12:00Z'), logger: silent, ffmpegPath: null, onError: (op) => errors.push(op) });
  const playlist = await StreamPlaylist.open({ stream: 's', dir: liveDir, windowSegments: 3, deleteGraceSegments: 1, minSegmentSeconds: 1, targetDurationOverride: 0, partSeconds: null, partHoldBackParts: 3, renditions: null, logger: silent, archive });
  await publishSegments(playlist, 'runa', 6);
  await archive.flush();
  let text = await readFile(path.join(archive.dir, 'index.m3u8'), 'utf8');
  assert.match(text, /#EXT-X-PLAYLIST-TYPE:EVENT/);
  assert.doesNotMatch(text, /#EXT-X-ENDLIST/);
  assert.doesNotMatch(text, /#EXT-X-DISCONTINUITY\n/, 'no break before the first archived segment');
  // The live window deleted runa-0..1; the archive's hard links keep them.
  assert.ok(!(await readdir(liveDir)).includes('runa-0.m4s'));
  assert.equal(await readFile(path.join(archive.dir, 'runa-0.m4s'), 'utf8'), '[runa p0]');
  assert.equal((await stat(path.join(archive.dir, 'runa-5.m4s'))).ino, (await stat(path.join(liveDir, 'runa-5.m4s'))).ino, 'hard link, not a copy');

  // Reconnect: a new run with its own init.
  await publishSegments(playlist, 'runb', 3, 1.5);
  await playlist.end();
  await archive.end();
  text = await readFile(path.join(archive.dir, 'index.m3u8'), 'utf8');
  const parsed = parseMediaPlaylist(text);
  assert.equal(parsed.ended, true);
  assert.equal(parsed.mediaSequence, 0);
  assert.equal(parsed.targetDuration, 1, 'fixed: the live playlist target');
  assert.deepEqual(parsed.segments.map((s) => s.uri), [...[0, 1, 2, 3, 4, 5].map((i) => `runa-${i}.m4s`), 'runb-0.m4s', 'runb-1.m4s', 'runb-2.m4s']);
  assert.deepEqual(parsed.segments.map((s) => s.discontinuity), [false, false, false, false, false, false, true, false, false]);
  assert.equal(text.match(/#EXT-X-MAP:URI="runb-init.mp4"/g)?.length, 1);
  const files = await readdir(archive.dir);
  for (const s of parsed.segments) assert.ok(files.includes(s.uri), s.uri);
  assert.ok(files.includes('runa-init.mp4') && files.includes('runb-init.mp4'));
  assert.ok(!files.some((f) => f.endsWith('.tmp')));
  const info = JSON.parse(await readFile(path.join(archive.dir, 'session.json'), 'utf8'));
  assert.deepEqual({ ...info, ended: typeof info.ended }, { stream: 's', session: '20261122-041200-abcdef', started: '2026-11-22T04:12:00.000Z', ended: 'string', durationSeconds: 10.5, segments: 9, thumbnail: null });
  assert.deepEqual(errors, []);
});

test('archive failures are counted and logged, never thrown into the live playlist', async (t) => {
  const temp = await makeTempDir('archive-fail');
  t.after(temp.remove);
  const mediaDir = path.join(temp.dir, 'media');
  const liveDir = path.join(mediaDir, 'live', 's');
  const errors: string[] = [];
  const archive = new SessionArchive({ mediaDir, stream: 's', session: '20261122-041200-abcdef', startedAt: new Date(), logger: silent, ffmpegPath: null, onError: (op) => errors.push(op) });
  // The archive folder cannot be created: a file is in the way.
  await mkdir(path.join(mediaDir, 'archive', 's'), { recursive: true });
  await writeFile(path.join(mediaDir, 'archive', 's', '20261122-041200-abcdef'), 'in the way');
  const playlist = await StreamPlaylist.open({ stream: 's', dir: liveDir, windowSegments: 3, deleteGraceSegments: 1, minSegmentSeconds: 1, targetDurationOverride: 0, partSeconds: null, partHoldBackParts: 3, renditions: null, logger: silent, archive });
  await publishSegments(playlist, 'runa', 4);
  await archive.flush();
  assert.equal(parseMediaPlaylist(await readFile(path.join(liveDir, 'index.m3u8'), 'utf8')).segments.length, 3, 'live playlist unaffected');
  assert.ok(errors.length >= 4, `errors counted: ${errors.join(',')}`);
  // Once the obstacle is gone, a segment whose live file vanished leaves a hole with a discontinuity.
  await rm(path.join(mediaDir, 'archive', 's', '20261122-041200-abcdef'));
  await publishSegments(playlist, 'runa', 1, 1, 4);
  archive.segmentPublished({ uri: 'gone.m4s', duration: 1, initUri: 'runa-init.mp4', discontinuity: false, programDateTime: null }, liveDir, 1);
  await publishSegments(playlist, 'runa', 1, 1, 5);
  await archive.end();
  const parsed = parseMediaPlaylist(await readFile(path.join(archive.dir, 'index.m3u8'), 'utf8'));
  assert.deepEqual(parsed.segments.map((s) => [s.uri, s.discontinuity]), [['runa-4.m4s', false], ['runa-5.m4s', true]]);
  assert.ok(errors.includes('segment'));
});

test('crash recovery closes open recordings; retention deletes old and oversized ended ones, never live ones', async (t) => {
  const temp = await makeTempDir('archive-retention');
  t.after(temp.remove);
  const mediaDir = temp.dir;
  const make = async (session: string, ended: string | null, bytes: number, closed = ended !== null) => {
    const dir = archiveSessionDir(mediaDir, 's', session);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'a-0.m4s'), Buffer.alloc(bytes));
    await writeFile(path.join(dir, 'index.m3u8'), `#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\na-0.m4s\n${closed ? '#EXT-X-ENDLIST\n' : ''}`);
    await writeFile(path.join(dir, 'session.json'), JSON.stringify({ stream: 's', session, started: '2026-01-01T00:00:00Z', ended, durationSeconds: 1, segments: 1, thumbnail: null }));
    return dir;
  };
  const now = Date.parse('2026-11-22T12:00:00Z');
  await make('20261101-000000-aaaaaa', '2026-11-01T01:00:00Z', 1000); // 3 weeks old
  await make('20261121-000000-bbbbbb', '2026-11-21T01:00:00Z', 3000);
  const crashed = await make('20261122-000000-cccccc', null, 3000);
  await utimes(path.join(crashed, 'index.m3u8'), new Date('2026-11-22T01:00:00Z'), new Date('2026-11-22T01:00:00Z'));
  await make('20261122-110000-dddddd', null, 3000); // being recorded now
  const liveNow = new Set(['s/20261122-110000-dddddd']);

  // At start nothing is recorded yet: the open ones were cut by a crash.
  assert.deepEqual(await endAbandonedArchives(mediaDir, silent), ['s/20261122-000000-cccccc', 's/20261122-110000-dddddd']);
  const info = JSON.parse(await readFile(path.join(crashed, 'session.json'), 'utf8'));
  assert.equal(info.ended, '2026-11-22T01:00:00.000Z');
  assert.match(await readFile(path.join(crashed, 'index.m3u8'), 'utf8'), /#EXT-X-ENDLIST\n$/);
  // Pretend the last one is live again (a recording in progress has no end time).
  await make('20261122-110000-dddddd', null, 3000);

  const reasons: string[] = [];
  const deleted = await applyRetention({ mediaDir, maxAgeHours: 24 * 7, maxBytes: 7000, recording: () => liveNow, logger: silent, onDeleted: (r) => reasons.push(r), now: () => now });
  assert.deepEqual(deleted.map((d) => d.session), ['20261101-000000-aaaaaa', '20261121-000000-bbbbbb']);
  assert.deepEqual(reasons, ['age', 'size']);
  assert.deepEqual((await readdir(path.join(mediaDir, 'archive', 's'))).sort(), ['20261122-000000-cccccc', '20261122-110000-dddddd']);
  // Even over the cap, the live recording stays.
  await applyRetention({ mediaDir, maxAgeHours: 0, maxBytes: 1, recording: () => liveNow, logger: silent, now: () => now });
  assert.deepEqual(await readdir(path.join(mediaDir, 'archive', 's')), ['20261122-110000-dddddd']);
});
