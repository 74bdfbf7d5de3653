import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeTempDir } from '../../common/testing/processes.ts';
import { childBoxes, readBoxHeader } from '../src/fmp4/boxes.ts';
import { BoxSplitter, type TopLevelBox } from '../src/fmp4/box-stream.ts';
import { Fmp4Error } from '../src/fmp4/errors.ts';
import { makeFixtures } from './fmp4-fixtures.ts';
import { Prng } from './support/prng.ts';

function box(type: string, ...body: Buffer[]): Buffer {
  const content = Buffer.concat(body);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + content.length);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, content]);
}

function largeBox(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(16);
  header.writeUInt32BE(1);
  header.write(type, 4, 'latin1');
  header.writeBigUInt64BE(BigInt(16 + body.length), 8);
  return Buffer.concat([header, body]);
}

function split(bytes: Buffer, sizes: () => number, options = {}): TopLevelBox[] {
  const splitter = new BoxSplitter(options);
  const boxes: TopLevelBox[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = Math.max(1, sizes());
    boxes.push(...splitter.push(bytes.subarray(at, at + size)));
    at += size;
  }
  boxes.push(...splitter.end());
  return boxes;
}

function assertFmp4Error(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof Fmp4Error, `expected an Fmp4Error, got ${String(err)}`);
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  });
}

test('box headers: 32- and 64-bit sizes, size 0 only at top level, children must fit their parent', () => {
  const file = Buffer.concat([box('moov', box('trak', box('tkhd', Buffer.alloc(4)))), largeBox('mdat', Buffer.alloc(5)), Buffer.from([0, 0, 0, 0, 0x66, 0x72, 0x65, 0x65, 1, 2, 3])]);
  const moov = readBoxHeader(file, 0, file.length);
  assert.deepEqual(moov, { type: 'moov', start: 0, bodyStart: 8, end: 28 });
  const [trak] = childBoxes(file, moov);
  assert.deepEqual(childBoxes(file, trak!).map((b) => [b.type, b.start, b.end]), [['tkhd', 16, 28]]);
  assert.deepEqual(readBoxHeader(file, 28, file.length), { type: 'mdat', start: 28, bodyStart: 44, end: 49 });
  assert.deepEqual(readBoxHeader(file, 49, file.length, 'file', true), { type: 'free', start: 49, bodyStart: 57, end: 60 });
  assertFmp4Error(() => readBoxHeader(file, 49, file.length), 'ONAIR_FMP4_MALFORMED', /size 0/);

  const child = (size: number) => {
    const outer = box('moov', Buffer.alloc(12));
    outer.writeUInt32BE(size, 8);
    outer.write('trak', 12, 'latin1');
    return outer;
  };
  assertFmp4Error(() => childBoxes(child(13), readBoxHeader(child(13), 0, 20)), 'ONAIR_FMP4_MALFORMED', /'trak' box at 8 in 'moov' box at 0: its 13 bytes run past the end at 20/);
  assertFmp4Error(() => childBoxes(child(4), readBoxHeader(child(4), 0, 20)), 'ONAIR_FMP4_MALFORMED', /smaller than its 8-byte header/);
  assertFmp4Error(() => readBoxHeader(Buffer.from('\0\0\0\x10\x01\x02\x03\x04xxxxxxxx', 'latin1'), 0, 16), 'ONAIR_FMP4_MALFORMED', /type 0x01020304 is not 4 printable/);
  assertFmp4Error(() => readBoxHeader(Buffer.alloc(7), 0, 7), 'ONAIR_FMP4_MALFORMED', /7 stray bytes/);
  const absurd = largeBox('mdat', Buffer.alloc(0));
  absurd.writeBigUInt64BE(2n ** 60n, 8);
  assertFmp4Error(() => readBoxHeader(absurd, 0, 16), 'ONAIR_FMP4_MALFORMED', /absurd/);
  // ffmpeg's udta/meta/ilst holds '©too': a legal type.
  assert.equal(readBoxHeader(box('\xa9too', Buffer.alloc(2)), 0, 10).type, '\xa9too');
});

test('the splitter finds the same boxes in ffmpeg output whatever the chunking, copying only boxes that span chunks', async (t) => {
  const temp = await makeTempDir('fmp4-boxes');
  t.after(temp.remove);
  const { bytes, chunks } = (await makeFixtures(temp.dir, ['av30'], 3)).get('av30')!;
  const whole = split(bytes, () => bytes.length);
  assert.deepEqual(whole.slice(0, 4).map((b) => b.type), ['ftyp', 'moov', 'moof', 'mdat']);
  assert.equal(whole.reduce((sum, b) => sum + b.bytes.length, 0), bytes.length);
  for (const b of whole) {
    assert.equal(b.bytes.buffer, bytes.buffer, 'a box inside one chunk is a subarray of it');
    assert.equal(b.bytes.byteOffset, bytes.byteOffset + b.offset);
  }
  const expected = whole.map((b) => ({ type: b.type, offset: b.offset, headerSize: b.headerSize, bytes: b.bytes }));
  const same = (boxes: TopLevelBox[], what: string) =>
    assert.deepEqual(boxes.map((b) => ({ type: b.type, offset: b.offset, headerSize: b.headerSize, bytes: b.bytes })), expected, what);

  // The chunks as the pipe delivered them, then seeded random chunkings: tiny, mixed, byte by byte.
  const splitter = new BoxSplitter();
  same([...chunks.flatMap((chunk) => splitter.push(chunk)), ...splitter.end()], 'pipe chunks');
  for (const seed of [1, 2, 3, 4, 5]) {
    const prng = new Prng(seed);
    const max = prng.pick([7, 64, 1500, 9000, 70_000]);
    same(split(bytes, () => prng.int(1, max)), `seed ${seed}, chunks up to ${max} bytes`);
  }
  same(split(bytes, () => 1), 'byte by byte');

  // The real stream cut inside its last box: every box but that one, no error until end().
  const cutAt = bytes.length - Math.min(100, whole[whole.length - 1]!.bytes.length - 1);
  const cut = new BoxSplitter();
  const got: TopLevelBox[] = [];
  for (let at = 0; at < cutAt; at += 4096) cut.push(bytes.subarray(at, Math.min(at + 4096, cutAt)), got);
  same([...got, whole[whole.length - 1]!], 'all but the cut box');
  assertFmp4Error(() => cut.end(), 'ONAIR_FMP4_TRUNCATED', /stream ended \d+ bytes into a 'mdat' box/);

  const spanning = split(bytes, () => 1000);
  const copied = spanning.filter((b) => b.bytes.buffer !== bytes.buffer);
  assert.ok(copied.length > 0 && copied.every((b) => Math.floor(b.offset / 1000) !== Math.floor((b.offset + b.bytes.length - 1) / 1000)), 'only boxes that span chunks are copied');
});

test('a truncated tail is held back without error until end(), which says what was cut', async () => {
  const stream = Buffer.concat([box('ftyp', Buffer.alloc(12)), box('moof', Buffer.alloc(40)), box('mdat', Buffer.alloc(300))]);
  for (const cut of [1, 5, 100, 307]) {
    const splitter = new BoxSplitter();
    const boxes = splitter.push(stream.subarray(0, stream.length - cut));
    assert.deepEqual(boxes.map((b) => b.type), ['ftyp', 'moof']);
    assert.equal(splitter.bufferedBytes, 308 - cut);
    assertFmp4Error(() => splitter.end(), 'ONAIR_FMP4_TRUNCATED', cut === 307 ? /1 bytes of a box header at 68/ : new RegExp(`stream ended ${308 - cut} bytes into a 'mdat' box of 308 bytes at 68`));
  }
  // Cut inside a 64-bit header: the size is not known yet.
  const splitter = new BoxSplitter();
  assert.deepEqual(splitter.push(largeBox('mdat', Buffer.alloc(10)).subarray(0, 12)), []);
  assertFmp4Error(() => splitter.end(), 'ONAIR_FMP4_TRUNCATED', /12 bytes of a box header/);
  // Exactly at a box boundary: nothing pending, no error.
  const clean = new BoxSplitter();
  assert.equal(clean.push(stream.subarray(0, 68)).length, 2);
  assert.deepEqual(clean.end(), []);
});

test('garbage, undersized and oversize declarations are typed errors, found before any allocation', () => {
  // An FLV where fMP4 was expected: its header is no box.
  assertFmp4Error(() => new BoxSplitter().push(Buffer.from('FLV\x01\x05\0\0\0\x09', 'latin1')), 'ONAIR_FMP4_MALFORMED', /no box at stream byte 0: type 0x05000000/);
  // Text happens to have a printable type (' is '), but a 1.95 GB size.
  assertFmp4Error(() => new BoxSplitter().push(Buffer.from('this is not an mp4 file')), 'ONAIR_FMP4_TOO_LARGE', /' is ' box at stream byte 0 declares 1952999795 bytes/);
  assertFmp4Error(() => new BoxSplitter().push(Buffer.alloc(4096)), 'ONAIR_FMP4_MALFORMED', /type 0x00000000/);
  const small = box('free', Buffer.alloc(0));
  small.writeUInt32BE(7);
  assertFmp4Error(() => new BoxSplitter().push(small), 'ONAIR_FMP4_MALFORMED', /size 7 is smaller/);
  const small64 = largeBox('mdat', Buffer.alloc(0));
  small64.writeBigUInt64BE(15n, 8);
  assertFmp4Error(() => new BoxSplitter().push(small64), 'ONAIR_FMP4_MALFORMED', /size 15 is smaller than its 16-byte header/);

  // 17 MiB declared in a 32-bit size, and 2^62 in a 64-bit one: refused at the header, over the default 16 MiB.
  const huge = Buffer.from('\x01\x10\x00\x00mdat', 'latin1');
  assertFmp4Error(() => new BoxSplitter().push(huge), 'ONAIR_FMP4_TOO_LARGE', /'mdat' box at stream byte 0 declares 17825792 bytes, over the 16777216-byte limit/);
  const huge64 = largeBox('mdat', Buffer.alloc(0));
  huge64.writeBigUInt64BE(2n ** 62n, 8);
  const splitter = new BoxSplitter();
  assert.deepEqual(splitter.push(huge64.subarray(0, 10)), [], 'the 64-bit size is not complete yet');
  assertFmp4Error(() => splitter.push(huge64.subarray(10)), 'ONAIR_FMP4_TOO_LARGE', /declares 4611686018427387904 bytes/);
  assertFmp4Error(() => splitter.push(Buffer.alloc(8)), 'ONAIR_FMP4_TOO_LARGE', /4611686018427387904/, );
  // The limit is configurable; a later box in the same chunk is judged too.
  const limited = new BoxSplitter({ maxBoxSize: 100 });
  assertFmp4Error(() => limited.push(Buffer.concat([box('free', Buffer.alloc(50)), box('mdat', Buffer.alloc(101))])), 'ONAIR_FMP4_TOO_LARGE', /at stream byte 58 declares 109 bytes, over the 100-byte limit/);

  // Garbage after good boxes is found at its stream position, even when the chunk boundary cuts the header.
  const good = box('ftyp', Buffer.alloc(12));
  const s = new BoxSplitter();
  assert.equal(s.push(Buffer.concat([good, Buffer.from('\0\0\0')])).length, 1);
  assertFmp4Error(() => s.push(Buffer.from('\x20\0\0\0\0\0')), 'ONAIR_FMP4_MALFORMED', /no box at stream byte 20/);
});

test('a size-0 box runs to the end of the stream (bounded by the limit)', () => {
  const head = box('moof', Buffer.alloc(8));
  const open = Buffer.from('\0\0\0\0mdatabcdef', 'latin1');
  const splitter = new BoxSplitter();
  assert.deepEqual(splitter.push(Buffer.concat([head, open.subarray(0, 3)])).map((b) => b.type), ['moof']);
  assert.deepEqual(splitter.push(open.subarray(3)), []);
  assert.deepEqual(splitter.push(Buffer.from('ghi')), []);
  const [last] = splitter.end();
  assert.deepEqual({ type: last!.type, offset: last!.offset, text: last!.bytes.toString('latin1', 8) }, { type: 'mdat', offset: 16, text: 'abcdefghi' });
  const bounded = new BoxSplitter({ maxBoxSize: 20 });
  bounded.push(open);
  assertFmp4Error(() => bounded.push(Buffer.alloc(10)), 'ONAIR_FMP4_TOO_LARGE', /runs to the end of the stream/);
});
