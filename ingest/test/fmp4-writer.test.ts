import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { makeTempDir } from '../../common/testing/processes.ts';
import type { Sample } from '../src/fmp4/fragment.ts';
import type { InitSegment } from '../src/fmp4/init-segment.ts';
import { writeFragment, type PartTrack } from '../src/fmp4/part-writer.ts';
import { box, fullBox, makeFixtures, probeStreams, readChunks, readWithMp4box, run, samplesOf, u32, u64, type FixtureName, type Remuxed } from './fmp4-fixtures.ts';

/**
 * Groups of 10 frames of the leading track (video, else audio), and every other track's samples by
 * decode time: a sample goes to the group whose leading sample starts at or before it.
 */
function regroup(init: InitSegment, samples: readonly Sample[], perGroup = 10): PartTrack[][] {
  const lead = init.tracks.find((t) => t.kind === 'video') ?? init.tracks[0]!;
  const timescale = new Map(init.tracks.map((t) => [t.id, t.timescale]));
  const starts = samplesOf(samples, lead.id).filter((_, i) => i % perGroup === 0).map((s) => s.dts / lead.timescale);
  const groups = starts.map(() => new Map(init.tracks.map((t) => [t.id, [] as Sample[]])));
  for (const sample of samples) {
    const time = sample.dts / timescale.get(sample.track)!;
    let g = 0;
    while (g + 1 < starts.length && starts[g + 1]! <= time) g++;
    groups[g]!.get(sample.track)!.push(sample);
  }
  return groups.map((group) => [...group].map(([id, list]) => ({ id, baseMediaDecodeTime: list[0]?.dts ?? 0, samples: list })));
}

const fields = (s: Sample) => ({ track: s.track, dts: s.dts, duration: s.duration, size: s.size, flags: s.flags, compositionOffset: s.compositionOffset, keyframe: s.keyframe });

function assertSameSamples(got: readonly Sample[], want: readonly Sample[], what: string): void {
  assert.equal(got.length, want.length, `${what}: sample count`);
  // Compare per track: the writer orders trafs by track within a part, ffmpeg interleaves by time.
  const tracks = [...new Set(want.map((s) => s.track))];
  for (const track of tracks) {
    const a = samplesOf(got, track);
    const b = samplesOf(want, track);
    assert.deepEqual(a.map(fields), b.map(fields), `${what}: track ${track}`);
    a.forEach((s, i) => assert.ok(s.data.equals(b[i]!.data), `${what}: track ${track} sample ${i} bytes`));
  }
}

/** The oracle's view of the same samples: mp4box.js reports cts (= dts + offset) and is_sync. */
function assertOracleAgrees(bytes: Buffer, want: readonly Sample[], what: string): void {
  const oracle = readWithMp4box(bytes);
  assert.deepEqual(oracle.errors, [], what);
  for (const track of [...new Set(want.map((s) => s.track))]) {
    const got = oracle.samples.filter((s) => s.track === track);
    const expected = samplesOf(want, track);
    assert.deepEqual(
      got.map((s) => ({ dts: s.dts, cts: s.cts, duration: s.duration, size: s.size, sync: s.sync })),
      expected.map((s) => ({ dts: s.dts, cts: s.dts + s.compositionOffset, duration: s.duration, size: s.size, sync: s.keyframe })),
      `${what}: mp4box.js track ${track}`,
    );
    got.forEach((s, i) => assert.ok(s.data.equals(expected[i]!.data), `${what}: mp4box.js track ${track} sample ${i} bytes`));
  }
}

async function assertDecodes(file: string, original: string, what: string): Promise<void> {
  const decoded = await run('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-']);
  assert.deepEqual({ code: decoded.code, stderr: decoded.stderr }, { code: 0, stderr: '' }, `${what}: ffmpeg decodes it without a word`);
  const [got, want] = await Promise.all([probeStreams(file, true), probeStreams(original, true)]);
  assert.equal(got.length, want.length);
  got.forEach((stream, i) => {
    const base = want[i]!;
    assert.equal(stream.frames, base.frames, `${what}: stream ${i} decoded frames`);
    assert.equal(stream.packets, base.packets, `${what}: stream ${i} packets`);
    const frame = stream.codecType === 'video' ? 1 / 30 : 1024 / 48000;
    assert.ok(Math.abs(stream.duration - base.duration) <= frame, `${what}: stream ${i} lasts ${stream.duration} s, the original ${base.duration} s`);
  });
}

const VARIANTS: FixtureName[] = ['av30', 'av30-bframes', 'video-only', 'audio-only'];

let fixtures: Promise<{ dir: string; outputs: Map<FixtureName, Remuxed> }> | undefined;
let cleanup: (() => Promise<void>) | undefined;
function realOutput(): Promise<{ dir: string; outputs: Map<FixtureName, Remuxed> }> {
  fixtures ??= makeTempDir('fmp4-writer').then(async (temp) => {
    cleanup = temp.remove;
    return { dir: temp.dir, outputs: await makeFixtures(temp.dir, VARIANTS) };
  });
  return fixtures;
}
test.after(() => cleanup?.());

test('ffmpeg output regrouped into parts of 10 frames: decodes like the original; our parser and mp4box.js read back the same samples', async () => {
  const { dir, outputs } = await realOutput();
  await Promise.all(
    VARIANTS.map(async (name) => {
      const original = outputs.get(name)!;
      const { init, samples, errors } = readChunks(original.chunks);
      assert.deepEqual(errors, []);
      const groups = regroup(init!, samples);
      const parts = groups.map((tracks, i) => writeFragment(i + 1, tracks));
      assert.equal(parts.length, Math.ceil(samplesOf(samples, init!.tracks.find((t) => t.kind === 'video')?.id ?? 1).length / 10));
      const bytes = Buffer.concat([init!.bytes, ...parts]);
      const file = path.join(dir, `${name}-parts.mp4`);
      await writeFile(file, bytes);

      // Each part is exactly one moof + one mdat and reads back alone (after the init).
      parts.forEach((part, i) => {
        const { fragments, errors: partErrors } = readChunks([init!.bytes, part]);
        assert.deepEqual(partErrors, []);
        assert.equal(fragments.length, 1);
        assert.equal(fragments[0]!.moof.length + fragments[0]!.mdat.length, part.length, `${name} part ${i}: moof + mdat and nothing else`);
        assert.equal(fragments[0]!.sequenceNumber, i + 1);
      });
      const reread = readChunks([bytes]);
      assert.deepEqual(reread.errors, []);
      assertSameSamples(reread.samples, samples, `${name} re-read`);
      assertOracleAgrees(bytes, samples, name);
      await assertDecodes(file, original.file, name);
    }),
  );
});

test('negative composition offsets are written with trun version 1 and survive the round trip', async () => {
  const { dir, outputs } = await realOutput();
  const original = outputs.get('av30-bframes')!;
  const { init, samples } = readChunks(original.chunks);
  // As with -movflags negative_cts_offsets: shift video pts so the first frame's pts equals its dts.
  const video = init!.tracks.find((t) => t.kind === 'video')!.id;
  const shift = samplesOf(samples, video)[0]!.compositionOffset;
  const shifted = samples.map((s) => (s.track === video ? { ...s, compositionOffset: s.compositionOffset - shift } : s));
  assert.ok(shifted.some((s) => s.compositionOffset < 0));
  const parts = regroup(init!, shifted).map((tracks, i) => writeFragment(i + 1, tracks));
  const bytes = Buffer.concat([init!.bytes, ...parts]);

  // The video trun of a part is version 1 exactly when one of its offsets is negative; audio's stays 0.
  const reread = readChunks([bytes]);
  assert.deepEqual(reread.errors, []);
  for (const fragment of reread.fragments) {
    const versions = trunVersions(fragment.moof);
    const negative = fragment.samples.some((s) => s.track === video && s.compositionOffset < 0);
    assert.deepEqual(versions, [negative ? 1 : 0, 0]);
  }
  assertSameSamples(reread.samples, shifted, 'negative offsets re-read');
  assertOracleAgrees(bytes, shifted, 'negative offsets');
  const file = path.join(dir, 'negative.mp4');
  await writeFile(file, bytes);
  await assertDecodes(file, original.file, 'negative offsets');
});

function trunVersions(moof: Buffer): number[] {
  const versions: number[] = [];
  for (let at = moof.indexOf('trun'); at >= 0; at = moof.indexOf('trun', at + 4)) versions.push(moof[at + 4]!);
  return versions;
}

test('the exact bytes of a small fragment, an empty track, and values the boxes cannot hold', () => {
  const a = Buffer.from('AAA');
  const b = Buffer.from('BB');
  const c = Buffer.from('C');
  const written = writeFragment(9, [
    { id: 1, baseMediaDecodeTime: 2 ** 33 + 5, samples: [{ duration: 512, flags: 0x02000000, compositionOffset: 1024, data: a }, { duration: 512, size: 2, flags: 0x01010000, compositionOffset: 0, data: b }] },
    { id: 2, baseMediaDecodeTime: 7, samples: [{ duration: 1024, flags: 0x02000000, compositionOffset: -3, data: c }] },
    { id: 3, baseMediaDecodeTime: 0, samples: [] },
  ]);
  const moofSize = 8 + 16 + (8 + 16 + 20 + 20 + 32) + (8 + 16 + 20 + 20 + 16) + (8 + 16 + 20 + 20);
  const traf = (id: number, bmdt: number, version: number, dataOffset: number, records: number[][]) =>
    box('traf', fullBox('tfhd', 0, 0x020000, u32(id)), fullBox('tfdt', 1, 0, u64(bmdt)), fullBox('trun', version, 0xf01, u32(records.length, dataOffset), ...records.map((r) => u32(...r))));
  const expected = Buffer.concat([
    box(
      'moof',
      fullBox('mfhd', 0, 0, u32(9)),
      traf(1, 2 ** 33 + 5, 0, moofSize + 8, [[512, 3, 0x02000000, 1024], [512, 2, 0x01010000, 0]]),
      traf(2, 7, 1, moofSize + 8 + 5, [[1024, 1, 0x02000000, -3]]),
      traf(3, 0, 0, moofSize + 8 + 6, []),
    ),
    box('mdat', a, b, c),
  ]);
  assert.equal(written.toString('hex'), expected.toString('hex'));

  const track = (sample: Partial<{ duration: number; size: number; flags: number; compositionOffset: number }>) => [{ id: 1, baseMediaDecodeTime: 0, samples: [{ duration: 1, flags: 0, compositionOffset: 0, data: a, ...sample }] }];
  assert.throws(() => writeFragment(1, track({ size: 4 })), /sample size 4 but 3 bytes of data/);
  assert.throws(() => writeFragment(1, track({ duration: -1 })), RangeError);
  assert.throws(() => writeFragment(1, track({ duration: 2 ** 32 })), RangeError);
  assert.throws(() => writeFragment(1, track({ compositionOffset: 0.5 })), RangeError);
  assert.throws(() => writeFragment(2 ** 32, []), /sequence number/);
  assert.throws(() => writeFragment(1, [{ id: 0, baseMediaDecodeTime: 0, samples: [] }]), /track id 0/);
  assert.throws(() => writeFragment(1, [{ id: 1, baseMediaDecodeTime: -1, samples: [] }]), /baseMediaDecodeTime/);
  assert.throws(
    () => writeFragment(1, [{ id: 1, baseMediaDecodeTime: 0, samples: [{ duration: 1, flags: 0, compositionOffset: -1, data: a }, { duration: 1, flags: 0, compositionOffset: 2 ** 31, data: a }] }]),
    /need both version 1/,
  );
});
