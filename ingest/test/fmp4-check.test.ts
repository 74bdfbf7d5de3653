import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { makeTempDir } from '../../common/testing/processes.ts';
import { checkFmp4 } from './support/fmp4-check.ts';

function box(type: string, body: Buffer | number): Buffer {
  const content = typeof body === 'number' ? Buffer.alloc(body, 1) : body;
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + content.length);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, content]);
}

test('tells complete fMP4 init and media segments from what a full disk leaves behind', async (t) => {
  const temp = await makeTempDir('fmp4');
  t.after(temp.remove);
  const check = async (bytes: Buffer, kind: 'init' | 'segment') => {
    const file = path.join(temp.dir, `f-${Math.random().toString(36).slice(2)}`);
    await writeFile(file, bytes);
    return checkFmp4(file, kind);
  };
  const init = Buffer.concat([box('ftyp', 20), box('moov', 1300)]);
  // As ffmpeg writes them for HLS: styp, two sidx, moof, mdat.
  const segment = Buffer.concat([box('styp', 16), box('sidx', 44), box('sidx', 44), box('moof', 676), box('mdat', 33_000)]);
  assert.deepEqual(await check(init, 'init'), { complete: true });
  assert.deepEqual(await check(segment, 'segment'), { complete: true });

  assert.deepEqual(await check(Buffer.alloc(0), 'segment'), { complete: false, problem: 'empty file' });
  const truncated = await check(segment.subarray(0, 4096), 'segment');
  assert.equal(truncated.complete, false);
  assert.match(truncated.complete ? '' : truncated.problem, /mdat box of 33008 bytes at .* runs past the end \(4096 bytes\): truncated/);
  const cutAtBox = await check(segment.subarray(0, segment.length - 33_008), 'segment');
  assert.deepEqual(cutAtBox, { complete: false, problem: 'no mdat box' });
  assert.equal((await check(Buffer.concat([segment, Buffer.alloc(3)]), 'segment')).complete, false, 'stray bytes after the last box');
  assert.equal((await check(Buffer.alloc(4096), 'segment')).complete, false, 'zeros (a hole) are not boxes');
  assert.equal((await check(segment, 'init')).complete, false, 'a media segment is not an init segment');
  assert.equal((await checkFmp4(path.join(temp.dir, 'missing'), 'init')).complete, false);

  // A 64-bit box size (size field 1, then the real size) is understood.
  const large = Buffer.alloc(16);
  large.writeUInt32BE(1);
  large.write('mdat', 4, 'latin1');
  large.writeBigUInt64BE(16n + 100n, 8);
  assert.deepEqual(await check(Buffer.concat([box('moof', 50), large, Buffer.alloc(100)]), 'segment'), { complete: true });
});
