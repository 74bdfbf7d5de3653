import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { UPLOAD_INFO_FILE, uploadDir, type UploadInfo } from '../../common/src/upload-layout.ts';
import { makeTempDir } from '../../common/testing/processes.ts';
import { Uploads } from '../src/uploads.ts';

async function publishUpload(mediaDir: string, id: string, title: string): Promise<void> {
  const info: UploadInfo = {
    id,
    title,
    originalName: 'clip.mp4',
    created: '2026-11-22T07:00:00.000Z',
    published: '2026-11-22T07:00:05.000Z',
    durationSeconds: 4,
    status: 'ready',
    width: 320,
    height: 240,
    renditions: [],
    thumbnail: null,
  };
  await mkdir(uploadDir(mediaDir, id), { recursive: true });
  await writeFile(path.join(uploadDir(mediaDir, id), UPLOAD_INFO_FILE), JSON.stringify(info));
}

test('an upload published after the listing was cached is found at once (the uploader is sent to its page on "ready")', async (t) => {
  const temp = await makeTempDir('uploads-listing');
  t.after(temp.remove);
  const uploads = new Uploads(temp.dir, pino({ level: 'silent' }), 60_000);
  assert.deepEqual(await uploads.list(), [], 'nothing yet (and now cached for a minute)');

  await publishUpload(temp.dir, '20261122-070000-abcdef', 'Town hall');
  const found = await uploads.find('20261122-070000-abcdef');
  assert.equal(found?.title, 'Town hall');
  assert.equal(found?.page, '/ondemand/20261122-070000-abcdef');
  assert.deepEqual(await uploads.list(), [], 'the listing itself may stay behind for its TTL');
  assert.equal(await uploads.find('20261122-070000-zzzzzz'), null, 'an unknown upload is not found');
});
