import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { makeTempDir } from '../../common/testing/processes.ts';
import { formatDuration, renderRecordingPage, renderRecordingsPage } from '../src/pages.ts';
import { Recordings } from '../src/recordings.ts';

test('recordings are listed newest first from session.json, with URLs; unusable folders are skipped', async (t) => {
  const temp = await makeTempDir('recordings');
  t.after(temp.remove);
  const write = async (stream: string, session: string, info: unknown) => {
    const dir = path.join(temp.dir, 'archive', stream, session);
    await mkdir(dir, { recursive: true });
    if (info !== undefined) await writeFile(path.join(dir, 'session.json'), typeof info === 'string' ? info : JSON.stringify(info));
  };
  const base = { durationSeconds: 61.5, segments: 62, thumbnail: 'thumbnail.jpg' };
  await write('a', '20261120-100000-aaaaaa', { ...base, stream: 'a', session: '20261120-100000-aaaaaa', started: '2026-11-20T10:00:00.000Z', ended: '2026-11-20T10:01:02.000Z' });
  await write('b', '20261121-100000-bbbbbb', { ...base, stream: 'b', session: '20261121-100000-bbbbbb', started: '2026-11-21T10:00:00.000Z', ended: null, thumbnail: null });
  await write('a', '20261122-100000-cccccc', { ...base, segments: 0, started: '2026-11-22T10:00:00.000Z', ended: null }); // nothing to play yet
  await write('a', '20261122-110000-dddddd', '{"broken'); // half-written by hand: ingest writes atomically
  await write('a', '20261122-120000-eeeeee', undefined); // no session.json yet
  await write('a', 'not-a-session', base);
  await write('A', '20261122-130000-ffffff', base);
  const recordings = new Recordings(temp.dir, pino({ level: 'silent' }), 0);
  const all = await recordings.list();
  assert.deepEqual(all.map((r) => `${r.stream}/${r.session}`), ['b/20261121-100000-bbbbbb', 'a/20261120-100000-aaaaaa']);
  assert.deepEqual(all[1], {
    stream: 'a', session: '20261120-100000-aaaaaa', started: '2026-11-20T10:00:00.000Z', ended: '2026-11-20T10:01:02.000Z', live: false,
    durationSeconds: 61.5, segments: 62, page: '/vod/a/20261120-100000-aaaaaa',
    playlist: '/archive/a/20261120-100000-aaaaaa/index.m3u8', thumbnail: '/archive/a/20261120-100000-aaaaaa/thumbnail.jpg',
  });
  assert.equal(all[0]!.live, true);
  assert.equal(all[0]!.thumbnail, null);
  assert.deepEqual((await recordings.list('a')).map((r) => r.session), ['20261120-100000-aaaaaa']);
  assert.equal(await recordings.find('a', '20261121-100000-bbbbbb'), null);

  const listPage = renderRecordingsPage('a', await recordings.list('a'));
  assert.ok(listPage.includes('href="/vod/a/20261120-100000-aaaaaa"') && listPage.includes('1:02') && listPage.includes('thumbnail.jpg'));
  const player = renderRecordingPage(all[0]!);
  assert.ok(player.includes('data-mode="vod"') && player.includes('data-playlist="/archive/b/20261121-100000-bbbbbb/index.m3u8"'));
  assert.match(player, /id="to-live" class="action" href="\/watch\/b">/, '"back to live" shown while recording');
  assert.match(renderRecordingPage(all[1]!), /id="to-live"[^>]* hidden>/);
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatDuration(59.6), '1:00');
});
