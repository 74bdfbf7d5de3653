import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeTempDir } from '../../common/testing/processes.ts';
import { Fmp4Error } from '../src/fmp4/errors.ts';
import { parseFragment, type FragmentContext } from '../src/fmp4/fragment.ts';
import { parseInitSegment, type TrackDefaults } from '../src/fmp4/init-segment.ts';
import { Fmp4Reader } from '../src/fmp4/reader.ts';
import { box, fullBox, makeFixtures, md5, probePackets, probeStreams, readChunks, readWithMp4box, samplesOf, u32, u64, type FixtureName, type Remuxed } from './fmp4-fixtures.ts';

const VARIANTS: FixtureName[] = ['av30', 'av30-bframes', 'av25', 'video-only', 'audio-only'];

let fixtures: Promise<Map<FixtureName, Remuxed>> | undefined;
let cleanup: (() => Promise<void>) | undefined;
function realOutput(): Promise<Map<FixtureName, Remuxed>> {
  fixtures ??= makeTempDir('fmp4-reader').then((temp) => {
    cleanup = temp.remove;
    return makeFixtures(temp.dir, VARIANTS);
  });
  return fixtures;
}
test.after(() => cleanup?.());

test('init segment: the tracks of ffmpeg output, as ffprobe and mp4box.js see them; bytes are ftyp + moov as written', async () => {
  const outputs = await realOutput();
  for (const name of VARIANTS) {
    const { bytes, chunks, file } = outputs.get(name)!;
    const { init, errors } = readChunks(chunks);
    assert.deepEqual(errors, [], name);
    assert.ok(init, name);
    const ftypSize = bytes.readUInt32BE(0);
    const moovSize = bytes.readUInt32BE(ftypSize);
    assert.equal(bytes.toString('latin1', 4, 8) + bytes.toString('latin1', ftypSize + 4, ftypSize + 8), 'ftypmoov');
    assert.ok(init.bytes.equals(bytes.subarray(0, ftypSize + moovSize)), `${name}: init bytes are ftyp + moov`);

    const probed = await probeStreams(file);
    const oracle = readWithMp4box(init.bytes);
    const expected = probed.map((s) => ({
      id: s.trackId,
      kind: s.codecType,
      timescale: s.timescale,
      codec: s.codecTag,
      codecs: oracle.tracks.find((t) => t.id === s.trackId)?.codec,
      ...(s.codecType === 'video' ? { width: s.width, height: s.height } : { channels: s.channels, sampleRate: s.sampleRate }),
    }));
    const got = init.tracks.map((t) => ({
      id: t.id,
      kind: t.kind,
      timescale: t.timescale,
      codec: t.codec,
      codecs: t.codecs,
      ...(t.kind === 'video' ? { width: t.width, height: t.height } : { channels: t.channels, sampleRate: t.sampleRate }),
    }));
    assert.deepEqual(got, expected, name);
    // ffmpeg leaves every default to the tfhd: the trex says only "sample description 1".
    for (const track of init.tracks) assert.deepEqual(track.defaults, { sampleDescriptionIndex: 1, duration: 0, size: 0, flags: 0 });
  }
  const av = outputs.get('av30')!;
  assert.deepEqual(
    readChunks(av.chunks).init!.tracks.map((t) => [t.id, t.kind, t.timescale, t.codec, t.codecs]),
    [
      [1, 'video', 16000, 'avc1', 'avc1.64000d'],
      [2, 'audio', 48000, 'mp4a', 'mp4a.40.2'],
    ],
  );
});

test('fragments: per track the samples are ffprobe\'s packets (count, order, dts, pts, sizes, bytes, keyframes), with continuous decode times', async () => {
  const outputs = await realOutput();
  for (const name of VARIANTS) {
    const { chunks, file } = outputs.get(name)!;
    const { init, fragments, samples, errors } = readChunks(chunks);
    assert.deepEqual(errors, [], name);
    const [streams, packets] = await Promise.all([probeStreams(file), probePackets(file)]);
    assert.equal(init!.tracks.length, name === 'video-only' || name === 'audio-only' ? 1 : 2, name);
    for (const stream of streams) {
      const track = init!.tracks.find((t) => t.id === stream.trackId)!;
      const got = samplesOf(samples, track.id);
      const want = packets.filter((p) => p.stream === stream.index);
      const what = `${name} track ${track.id} (${track.kind})`;
      assert.equal(got.length, stream.packets, `${what}: ffprobe -count_packets`);
      assert.equal(got.length, want.length);
      assert.deepEqual(
        got.map((s) => ({ dts: s.dts, pts: s.dts + s.compositionOffset, size: s.size, keyframe: s.keyframe, md5: md5(s.data) })),
        want.map((p) => ({ dts: p.dts, pts: p.pts, size: p.size, keyframe: p.keyframe, md5: p.md5 })),
        what,
      );
      got.forEach((s, i) => {
        assert.equal(s.data.length, s.size);
        if (i > 0) assert.equal(s.dts, got[i - 1]!.dts + got[i - 1]!.duration, `${what}: sample ${i} starts where ${i - 1} ends`);
        if (track.kind === 'video') assert.equal(s.keyframe, i % 60 === 0, `${what}: sample ${i} keyframe (-g 60)`);
      });
      assert.equal(got[0]!.dts, 0, `${what} starts at 0`);
      if (name === 'av30-bframes' && track.kind === 'video') assert.ok(got.some((s) => s.compositionOffset > 0), 'B-frames give composition offsets');
      if (name !== 'av30-bframes') assert.ok(got.every((s) => s.compositionOffset === 0), `${what}: no composition offsets without B-frames`);
    }
    // What ingest's part cutter relies on: -frag_duration 1 gives at most one sample per track per fragment.
    for (const fragment of fragments) {
      const tracks = fragment.samples.map((s) => s.track);
      assert.equal(new Set(tracks).size, tracks.length, `${name}: fragment ${fragment.sequenceNumber} has one sample per track`);
    }
    assert.deepEqual(fragments.map((f) => f.sequenceNumber), fragments.map((_, i) => i + 1), `${name}: mfhd sequence numbers`);
  }
});

// --- Cases ffmpeg does not write, made by hand. ---

test('init segment: version 1 tkhd and mdhd, a handler that is neither video nor audio, trex defaults, broken moovs', () => {
  const trak = (id: number, handler: string, version: number, timescale: number, entry: Buffer, extra: Buffer[] = []) =>
    box(
      'trak',
      fullBox('tkhd', version, 3, version === 1 ? Buffer.concat([u64(0), u64(0), u32(id, 0), u64(0)]) : u32(0, 0, id, 0, 0)),
      box(
        'mdia',
        fullBox('mdhd', version, 0, version === 1 ? Buffer.concat([u64(0), u64(0), u32(timescale), u64(0)]) : u32(0, 0, timescale, 0)),
        fullBox('hdlr', 0, 0, u32(0), Buffer.from(handler, 'latin1'), u32(0, 0, 0)),
        box('minf', box('stbl', fullBox('stsd', 0, 0, u32(1), entry))),
        ...extra,
      ),
    );
  const avc1Body = Buffer.alloc(78);
  avc1Body.writeUInt16BE(1920, 24);
  avc1Body.writeUInt16BE(1080, 26);
  const ftyp = box('ftyp', Buffer.from('isom\0\0\x02\0', 'latin1'));
  const moov = box('moov', trak(1, 'vide', 1, 90000, box('avc1', avc1Body)), trak(3, 'text', 0, 1000, box('wvtt', Buffer.alloc(8))), box('mvex', fullBox('trex', 0, 0, u32(3, 2, 1000, 50, 0x01010000))));
  const init = parseInitSegment(Buffer.concat([ftyp, moov]));
  assert.deepEqual(init.tracks, [
    { id: 1, kind: 'video', handler: 'vide', timescale: 90000, codec: 'avc1', width: 1920, height: 1080, defaults: { sampleDescriptionIndex: 1, duration: 0, size: 0, flags: 0 } },
    { id: 3, kind: 'other', handler: 'text', timescale: 1000, codec: 'wvtt', defaults: { sampleDescriptionIndex: 2, duration: 1000, size: 50, flags: 0x01010000 } },
  ]);
  const bad = (bytes: Buffer, message: RegExp) => assert.throws(() => parseInitSegment(bytes), (err: unknown) => err instanceof Fmp4Error && err.code === 'ONAIR_FMP4_MALFORMED' && message.test(err.message));
  bad(ftyp, /no moov box/);
  bad(Buffer.concat([ftyp, moov, moov]), /a second 'moov' box/);
  bad(box('moov', trak(1, 'vide', 0, 1, box('avc1')), trak(1, 'soun', 0, 1, box('mp4a'))), /two tracks with the same track_ID/);
  bad(box('moov', trak(1, 'vide', 0, 0, box('avc1'))), /track 1: mdhd timescale is 0/);
  bad(box('moov', box('trak', fullBox('tkhd', 0, 0, u32(0, 0, 1, 0, 0)))), /'trak' box at 8 has no 'mdia' box/);
  bad(box('moov', trak(1, 'vide', 0, 1, Buffer.alloc(0))), /track 1: stsd has no sample entry/);
  bad(box('moov', box('trak', fullBox('tkhd', 1, 0, u32(0)))), /'tkhd' box at 16: body of 8 bytes, need 24/);
});

const TRACK = 1;
function context(defaults: Partial<TrackDefaults> = {}, tracks = [TRACK]): FragmentContext {
  return { defaults: new Map(tracks.map((id) => [id, { sampleDescriptionIndex: 1, duration: 0, size: 0, flags: 0, ...defaults }])), nextDecodeTime: new Map() };
}
const mfhd = (n: number) => fullBox('mfhd', 0, 0, u32(n));
function mdatOf(...payloads: Buffer[]): Buffer {
  return box('mdat', ...payloads);
}
function parse(ctx: FragmentContext, moof: Buffer, mdat: Buffer, moofOffset = 0, gap = 0) {
  return parseFragment(ctx, { moof, moofOffset, mdat, mdatOffset: moofOffset + moof.length + gap });
}
const rows = (samples: ReturnType<typeof parse>['samples']) => samples.map((s) => [s.track, s.dts, s.duration, s.size, s.flags, s.compositionOffset, s.keyframe, s.data.toString('latin1')]);

test('tfhd and trun: several truns, implicit and explicit data offsets, defaults from tfhd then trex, first-sample-flags', () => {
  const payload = Buffer.from('AAAABBCCCDDDDD', 'latin1');
  // Two runs: the first has a data offset and first-sample-flags; the second has no data offset, so its data follows the first's.
  const traf = (dataOffset: number) =>
    box(
      'traf',
      fullBox('tfhd', 0, 0x020000 | 0x000008 | 0x000020, u32(TRACK, 100, 0x01010000)), // default-base-is-moof, default duration and flags
      fullBox('tfdt', 1, 0, u64(2 ** 40)),
      fullBox('trun', 0, 0x000001 | 0x000004 | 0x000200, u32(2, dataOffset, 0x02000000, 4, 2)),
      fullBox('trun', 0, 0x000100 | 0x000200 | 0x000400, u32(2, 50, 3, 0x02000000, 60, 5, 0x01010000)),
    );
  const probe = box('moof', mfhd(7), traf(0));
  const moof = box('moof', mfhd(7), traf(probe.length + 8));
  const fragment = parse(context({ size: 999 }), moof, mdatOf(payload), 5000);
  assert.equal(fragment.sequenceNumber, 7);
  assert.deepEqual(rows(fragment.samples), [
    [1, 2 ** 40, 100, 4, 0x02000000, 0, true, 'AAAA'],
    [1, 2 ** 40 + 100, 100, 2, 0x01010000, 0, false, 'BB'],
    [1, 2 ** 40 + 200, 50, 3, 0x02000000, 0, true, 'CCC'],
    [1, 2 ** 40 + 250, 60, 5, 0x01010000, 0, false, 'DDDDD'],
  ]);
  assert.deepEqual(fragment.trafs, [{ track: 1, baseMediaDecodeTime: 2 ** 40, sampleDescriptionIndex: 1, sampleCount: 4 }]);
  // Samples are views into the mdat, not copies.
  const mdat = mdatOf(payload);
  const again = parse(context(), moof, mdat, 5000);
  assert.equal(again.samples[0]!.data.buffer, mdat.buffer);
});

test('base-data-offset (absolute), the implicit base of a second traf, trex fallbacks, no tfdt, sample-description-index', () => {
  const ctx = context({ duration: 10, size: 2, flags: 0x01010000, sampleDescriptionIndex: 3 }, [1, 2]);
  ctx.nextDecodeTime.set(2, 777);
  // traf 1: base-data-offset = absolute stream position of the mdat payload; traf 2: no base flags, so
  // its data starts where traf 1's ends. Neither run has a data offset. Track 2 has no tfdt.
  const moofOffset = 1000;
  const moofLength = 8 + 16 + (8 + 28 + 16 + 16) + (8 + 16 + 20);
  const moof = box(
    'moof',
    mfhd(1),
    box('traf', fullBox('tfhd', 0, 0x000001 | 0x000002, u32(1), u64(moofOffset + moofLength + 8), u32(5)), fullBox('tfdt', 0, 0, u32(40)), fullBox('trun', 0, 0, u32(2))),
    box('traf', fullBox('tfhd', 0, 0, u32(2)), fullBox('trun', 0, 0x000004, u32(1, 0))),
  );
  assert.equal(moof.length, moofLength);
  const fragment = parse(ctx, moof, mdatOf(Buffer.from('aabbcc', 'latin1')), moofOffset);
  assert.deepEqual(rows(fragment.samples), [
    [1, 40, 10, 2, 0x01010000, 0, false, 'aa'],
    [1, 50, 10, 2, 0x01010000, 0, false, 'bb'],
    [2, 777, 10, 2, 0, 0, true, 'cc'],
  ]);
  assert.deepEqual(fragment.trafs.map((t) => [t.track, t.baseMediaDecodeTime, t.sampleDescriptionIndex]), [[1, 40, 5], [2, 777, 3]]);
  assert.deepEqual([...ctx.nextDecodeTime], [[2, 787], [1, 60]]);
});

test('trun version 1 composition offsets are signed, version 0 unsigned; duration-is-empty advances time without samples', () => {
  const trun = (version: number, ctos: number[]) =>
    fullBox('trun', version, 0x000001 | 0x000800, u32(ctos.length, 0), ...ctos.map((c) => u32(c >>> 0)));
  const make = (version: number, ctos: number[]) => {
    const probe = box('moof', mfhd(1), box('traf', fullBox('tfhd', 0, 0x020000, u32(TRACK)), trun(version, ctos)));
    // Patch the data offset now that the moof's size is known: samples start at the mdat payload.
    probe.writeInt32BE(probe.length + 8, probe.length - 4 * ctos.length - 4);
    return probe;
  };
  const ctx = () => context({ duration: 1, size: 1 });
  assert.deepEqual(parse(ctx(), make(1, [-2, 3]), mdatOf(Buffer.from('xy'))).samples.map((s) => s.compositionOffset), [-2, 3]);
  assert.deepEqual(parse(ctx(), make(0, [0xfffffffe, 3]), mdatOf(Buffer.from('xy'))).samples.map((s) => s.compositionOffset), [0xfffffffe, 3]);

  const empty = context({ duration: 90 });
  const moof = box('moof', mfhd(1), box('traf', fullBox('tfhd', 0, 0x010000 | 0x000008, u32(TRACK, 30)), fullBox('tfdt', 0, 0, u32(600))));
  assert.deepEqual(parse(empty, moof, mdatOf()).samples, []);
  assert.equal(empty.nextDecodeTime.get(TRACK), 630);
  const contradiction = box('moof', mfhd(1), box('traf', fullBox('tfhd', 0, 0x010000, u32(TRACK)), fullBox('trun', 0, 0, u32(1))));
  assert.throws(() => parse(empty, contradiction, mdatOf(Buffer.alloc(1))), /duration-is-empty but its trun has 1 samples/);
});

test('fragments whose samples would lie outside the mdat, or that lie about their structure, are refused', () => {
  const ctx = context({ duration: 1, size: 4 });
  const moofWith = (trun: Buffer, tfhd = fullBox('tfhd', 0, 0x020000, u32(TRACK))) => box('moof', mfhd(1), box('traf', tfhd, trun));
  const bad = (moof: Buffer, mdat: Buffer, message: RegExp, gap = 0) =>
    assert.throws(() => parse(ctx, moof, mdat, 0, gap), (err: unknown) => err instanceof Fmp4Error && err.code === 'ONAIR_FMP4_MALFORMED' && message.test(err.message));
  const size = (trunBody: number) => 8 + 16 + 8 + 16 + trunBody; // moof, mfhd, traf, tfhd, trun
  // Data offset 0 = the moof's first byte: inside the moof, not the mdat.
  bad(moofWith(fullBox('trun', 0, 1, u32(1, 0))), mdatOf(Buffer.alloc(4)), /sample 0 of track 1 \(4 bytes at stream byte 0\) lies outside the mdat \(stream bytes 76–80\)/);
  // Runs past the mdat's end by one byte; a negative offset.
  bad(moofWith(fullBox('trun', 0, 1, u32(1, size(20) + 8 + 1))), mdatOf(Buffer.alloc(4)), /lies outside the mdat/);
  bad(moofWith(fullBox('trun', 0, 1, u32(1, -8))), mdatOf(Buffer.alloc(4)), /lies outside the mdat/);
  // Something between moof and mdat shifts the mdat: offsets that ignore it miss.
  bad(moofWith(fullBox('trun', 0, 1, u32(1, size(20) + 8))), mdatOf(Buffer.alloc(4)), /lies outside the mdat/, 16);
  // More samples than the trun has room for; an unknown track; a traf without tfhd; no mfhd.
  bad(moofWith(fullBox('trun', 0, 0x100, u32(1000, 0))), mdatOf(), /declares 1000 samples of 4 bytes in 4 bytes/);
  bad(moofWith(fullBox('trun', 0, 0, u32(0)), fullBox('tfhd', 0, 0, u32(9))), mdatOf(), /traf for track 9, which the init segment does not declare/);
  bad(box('moof', mfhd(1), box('traf', fullBox('trun', 0, 0, u32(0)))), mdatOf(), /does not start with a tfhd/);
  bad(box('moof', box('free')), mdatOf(), /has no mfhd/);
  // Flags promise fields the box does not have.
  bad(moofWith(fullBox('trun', 0, 0x5, u32(0, 0))), mdatOf(), /'trun' box at 48: body of 12 bytes, need 16/);
  bad(moofWith(fullBox('trun', 0, 0, u32(0)), fullBox('tfhd', 0, 0x3f, u32(TRACK))), mdatOf(), /'tfhd' box at 32: body of 8 bytes, need 32/);
  // A sample count that would allocate millions of objects, even with no per-sample fields.
  bad(moofWith(fullBox('trun', 0, 0, u32(4_000_000))), mdatOf(), /declares over 131072 samples/);
  // The buffers must be one moof and one mdat.
  assert.throws(() => parse(ctx, box('moov'), mdatOf()), /expected one moof box, got 'moov'/);
  assert.throws(() => parse(ctx, box('moof', mfhd(1)), box('free')), /expected one mdat box/);
});

test('the reader: init once, then fragments; out-of-order or cut-off streams are reported once, never thrown', async () => {
  const { bytes } = (await realOutput()).get('av30')!;
  const ftypEnd = bytes.readUInt32BE(0);
  const initEnd = ftypEnd + bytes.readUInt32BE(ftypEnd);
  const moofEnd = initEnd + bytes.readUInt32BE(initEnd);
  const fragmentEnd = moofEnd + bytes.readUInt32BE(moofEnd);
  const init = bytes.subarray(0, initEnd);
  const moof = bytes.subarray(initEnd, moofEnd);
  const mdat = bytes.subarray(moofEnd, fragmentEnd);
  const codes = (...chunks: Buffer[]) => readChunks(chunks).errors.map((e) => `${e.code}: ${e.message}`);

  assert.deepEqual(codes(init, moof, mdat), []);
  assert.deepEqual(codes(moof, mdat), [`ONAIR_FMP4_MALFORMED: 'moof' box before the init segment (in the 'moof' box at stream byte 0)`]);
  assert.deepEqual(codes(init, mdat), [`ONAIR_FMP4_MALFORMED: mdat without a moof (in the 'mdat' box at stream byte ${initEnd})`]);
  assert.deepEqual(codes(init, moof, moof, mdat), [`ONAIR_FMP4_MALFORMED: moof at stream byte ${initEnd} has no mdat (in the 'moof' box at stream byte ${moofEnd})`]);
  assert.deepEqual(codes(init, moof), [`ONAIR_FMP4_TRUNCATED: stream ended after the moof at stream byte ${initEnd}, before its mdat`]);
  assert.deepEqual(codes(init, moof, mdat.subarray(0, 100)), [`ONAIR_FMP4_TRUNCATED: stream ended 100 bytes into a 'mdat' box of ${mdat.length} bytes at ${moofEnd}`]);
  assert.deepEqual(codes(), ['ONAIR_FMP4_TRUNCATED: stream ended before the init segment (ftyp + moov)']);
  assert.deepEqual(codes(init, moof, mdat, init), [`ONAIR_FMP4_MALFORMED: a second init segment ('ftyp') in the stream (in the 'ftyp' box at stream byte ${fragmentEnd})`]);
  // Other top-level boxes are skipped, as ISO BMFF readers should.
  const free = box('free', Buffer.alloc(3));
  const skipped = readChunks([free, init, free, moof, mdat, box('prft', Buffer.alloc(12)), moof, mdat]);
  assert.deepEqual(skipped.errors, []);
  assert.deepEqual(skipped.fragments.map((f) => f.moofOffset), [initEnd + 2 * free.length, fragmentEnd + 2 * free.length + 20]);
  // …but not between a moof and its mdat, where it moves the data that ffmpeg's moof-relative offsets point at.
  assert.match(codes(init, moof, free, mdat)[0]!, /sample 0 of track 1 \(4601 bytes at stream byte \d+\) lies outside the mdat/);
  assert.ok(skipped.init!.bytes.equals(init), 'free before the moov is not part of the init bytes');

  // One error, then silence; onSample gets the same samples as onFragment, in order.
  const seen: string[] = [];
  const reader = new Fmp4Reader({
    onInit: () => seen.push('init'),
    onFragment: (f) => seen.push(`fragment ${f.samples.length}`),
    onSample: (s) => seen.push(`sample ${s.track}`),
    onError: (e) => seen.push(e.code),
  });
  reader.push(Buffer.concat([init, moof, mdat, Buffer.from([0, 0, 0, 9, 0, 1, 2, 3])]));
  reader.push(Buffer.concat([moof, mdat]));
  reader.end();
  assert.deepEqual(seen, ['init', 'fragment 2', 'sample 1', 'sample 2', 'ONAIR_FMP4_MALFORMED']);
  assert.equal(reader.error?.code, 'ONAIR_FMP4_MALFORMED');

  // A handler's own exception is the caller's: it propagates.
  const throwing = new Fmp4Reader({ onInit: () => { throw new Error('handler bug'); }, onError: () => assert.fail('not a stream error') });
  assert.throws(() => throwing.push(init), /handler bug/);
});
