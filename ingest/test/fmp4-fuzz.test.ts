import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeTempDir } from '../../common/testing/processes.ts';
import { Fmp4Error } from '../src/fmp4/errors.ts';
import type { Sample } from '../src/fmp4/fragment.ts';
import { writeFragment, type PartTrack } from '../src/fmp4/part-writer.ts';
import { Fmp4Reader } from '../src/fmp4/reader.ts';
import { makeFixtures, readChunks, type FixtureName, type Remuxed } from './fmp4-fixtures.ts';
import { Prng } from './support/prng.ts';

let fixtures: Promise<Map<FixtureName, Remuxed>> | undefined;
let cleanup: (() => Promise<void>) | undefined;
function realOutput(): Promise<Map<FixtureName, Remuxed>> {
  fixtures ??= makeTempDir('fmp4-fuzz').then((temp) => {
    cleanup = temp.remove;
    return makeFixtures(temp.dir, ['av30', 'av30-bframes'], 2);
  });
  return fixtures;
}
test.after(() => cleanup?.());

/** Every box header in the stream (top level, and inside moov/trak/…/moof/traf), to aim mutations at. */
function boxHeaders(bytes: Buffer): Array<{ at: number; size: number; type: string }> {
  const containers = new Set(['moov', 'trak', 'mdia', 'minf', 'stbl', 'mvex', 'moof', 'traf', 'dinf', 'edts']);
  const found: Array<{ at: number; size: number; type: string }> = [];
  const walk = (start: number, end: number) => {
    for (let at = start; at + 8 <= end; ) {
      const size = bytes.readUInt32BE(at);
      const type = bytes.toString('latin1', at + 4, at + 8);
      if (size < 8 || at + size > end) return;
      found.push({ at, size, type });
      if (containers.has(type)) walk(at + 8, at + size);
      if (type === 'stsd') walk(at + 16, at + size);
      at += size;
    }
  };
  walk(0, bytes.length);
  return found;
}

const EXTREMES = [0, 1, 2, 7, 8, 9, 16, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

/** One seeded mutation of the stream: flipped bits, rewritten sizes, fields or types, cuts, insertions, deletions, duplications. */
function mutate(source: Buffer, headers: ReturnType<typeof boxHeaders>, prng: Prng): { bytes: Buffer; how: string } {
  const bytes = Buffer.from(source);
  const word = () => (prng.next() < 0.6 ? prng.pick(EXTREMES) : prng.int(0, 0xffffffff));
  const kind = prng.int(0, 8);
  switch (kind) {
    case 0: {
      const flips = prng.int(1, 8);
      for (let i = 0; i < flips; i++) {
        const at = prng.int(0, bytes.length - 1);
        bytes[at]! ^= 1 << prng.int(0, 7);
      }
      return { bytes, how: `${flips} bit flips` };
    }
    case 1: {
      const header = prng.pick(headers);
      const size = prng.pick([word(), header.size - 1, header.size + 1, header.size * 2, 1]);
      bytes.writeUInt32BE(size >>> 0, header.at);
      return { bytes, how: `'${header.type}' at ${header.at} size ${header.size} → ${size}` };
    }
    case 2: {
      // A field inside a moof or moov: counts, flags, offsets, timescales, track ids.
      const header = prng.pick(headers.filter((h) => ['tfhd', 'trun', 'tfdt', 'mfhd', 'trex', 'mdhd', 'tkhd', 'stsd', 'hdlr'].includes(h.type)));
      const at = header.at + 8 + 4 * prng.int(0, Math.max(0, Math.floor((header.size - 12) / 4)));
      const value = word();
      bytes.writeUInt32BE(value >>> 0, at);
      return { bytes, how: `word at ${at} in '${header.type}' → ${value}` };
    }
    case 3: {
      const header = prng.pick(headers);
      bytes.writeUInt32BE(prng.int(0, 0xffffffff), header.at + 4);
      return { bytes, how: `type of '${header.type}' at ${header.at}` };
    }
    case 4: {
      const cut = prng.int(0, bytes.length - 1);
      return { bytes: bytes.subarray(0, cut), how: `cut at ${cut}` };
    }
    case 5: {
      const at = prng.int(0, bytes.length);
      const junk = prng.bytes(prng.int(1, 32));
      return { bytes: Buffer.concat([bytes.subarray(0, at), junk, bytes.subarray(at)]), how: `${junk.length} bytes inserted at ${at}` };
    }
    case 6: {
      const at = prng.int(0, bytes.length - 1);
      const length = prng.int(1, 400);
      return { bytes: Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + length)]), how: `${length} bytes deleted at ${at}` };
    }
    case 7: {
      const from = prng.int(0, bytes.length - 1);
      const length = prng.int(1, 2000);
      const at = prng.int(0, bytes.length);
      return { bytes: Buffer.concat([bytes.subarray(0, at), bytes.subarray(from, from + length), bytes.subarray(at)]), how: `${length} bytes from ${from} copied to ${at}` };
    }
    default: {
      // The moof/trun flags byte: turn optional fields on and off.
      const header = prng.pick(headers.filter((h) => h.type === 'trun' || h.type === 'tfhd' || h.type === 'tfdt'));
      bytes[header.at + 8 + prng.int(0, 3)] = prng.int(0, 255);
      return { bytes, how: `version/flags of '${header.type}' at ${header.at}` };
    }
  }
}

test('2 000 seeded mutations of real ffmpeg output: push and end never throw or hang, errors are typed, samples stay inside their box', async (t) => {
  const { bytes: full } = (await realOutput()).get('av30-bframes')!;
  // The init segment and the first 40 fragments (about 1.3 s of media).
  const headers = boxHeaders(full);
  const cutAt = headers.filter((h) => h.type === 'mdat')[39]!;
  const source = full.subarray(0, cutAt.at + cutAt.size);
  const sourceHeaders = headers.filter((h) => h.at + h.size <= source.length);

  const seed = Number(process.env.FMP4_FUZZ_SEED ?? 20261204);
  const prng = new Prng(seed);
  const outcomes = new Map<string, number>();
  const started = performance.now();
  const iterations = 2000;
  for (let i = 0; i < iterations; i++) {
    const { bytes, how } = mutate(source, sourceHeaders, prng);
    const errors: unknown[] = [];
    let samples = 0;
    const reader = new Fmp4Reader({
      onInit: () => undefined,
      onFragment: (fragment) => {
        for (const s of fragment.samples) {
          samples++;
          assert.equal(s.data.length, s.size, `seed ${seed} #${i} (${how}): sample bytes = its size`);
          assert.ok(s.data.byteOffset >= fragment.mdat.byteOffset && s.data.byteOffset + s.size <= fragment.mdat.byteOffset + fragment.mdat.length, 'inside its mdat');
        }
      },
      onError: (error) => errors.push(error),
    });
    try {
      for (let at = 0; at < bytes.length; ) {
        const size = prng.int(1, prng.pick([16, 3000, 70_000]));
        reader.push(bytes.subarray(at, at + size));
        at += size;
      }
      reader.end();
    } catch (err) {
      assert.fail(`seed ${seed} #${i} (${how}): push/end threw ${String(err)}`);
    }
    assert.ok(errors.length <= 1, `seed ${seed} #${i} (${how}): one error at most`);
    const error = errors[0];
    if (error !== undefined) {
      assert.ok(error instanceof Fmp4Error, `seed ${seed} #${i} (${how}): ${String(error)}`);
      assert.notEqual(error.code, 'ONAIR_FMP4_INTERNAL', `seed ${seed} #${i} (${how}): ${error.message}`);
    }
    const outcome = error instanceof Fmp4Error ? error.code : samples > 0 ? 'read' : 'no samples';
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  const elapsed = performance.now() - started;
  t.diagnostic(`seed ${seed}: ${iterations} mutations in ${elapsed.toFixed(0)} ms: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  assert.ok(elapsed < 5000, `${elapsed} ms`);
  assert.ok((outcomes.get('ONAIR_FMP4_MALFORMED') ?? 0) > 100, 'the mutations do hit the checks');
});

test('random bytes, and random bytes after a good init segment, are typed errors', async () => {
  const { bytes } = (await realOutput()).get('av30')!;
  const initEnd = bytes.readUInt32BE(0) + bytes.readUInt32BE(bytes.readUInt32BE(0));
  const prng = new Prng(7);
  for (let i = 0; i < 200; i++) {
    const junk = prng.bytes(prng.int(1, 5000));
    const { errors, fragments } = readChunks(i % 2 ? [junk] : [bytes.subarray(0, initEnd), junk]);
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof Fmp4Error && errors[0].code !== 'ONAIR_FMP4_INTERNAL', errors[0]?.message);
    assert.equal(fragments.length, 0);
  }
});

/** Parts of 10 leading frames, the other tracks' samples by arrival: enough for a benchmark. */
function partsOf(samples: readonly Sample[], leadTrack: number): PartTrack[][] {
  const parts: PartTrack[][] = [];
  let open = new Map<number, Sample[]>();
  let leading = 0;
  const close = () => parts.push([...open].map(([id, list]) => ({ id, baseMediaDecodeTime: list[0]!.dts, samples: list })));
  for (const sample of samples) {
    if (sample.track === leadTrack && leading++ % 10 === 0 && open.size) {
      close();
      open = new Map();
    }
    const list = open.get(sample.track);
    if (list) list.push(sample);
    else open.set(sample.track, [sample]);
  }
  close();
  return parts;
}

test('benchmark: parsing and writing throughput (printed, not asserted)', async (t) => {
  const { bytes } = (await realOutput()).get('av30')!;
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 65536) chunks.push(bytes.subarray(at, at + 65536));
  const budget = 400; // ms per measurement: this machine is shared

  let parsed = 0;
  let parsedSamples = 0;
  let samples: Sample[] = [];
  let start = performance.now();
  while (performance.now() - start < budget) {
    const result = readChunks(chunks);
    parsed += bytes.length;
    parsedSamples += result.samples.length;
    samples = result.samples;
  }
  const parseMs = performance.now() - start;

  const lead = samples[0]!.track;
  let written = 0;
  let parts = 0;
  start = performance.now();
  while (performance.now() - start < budget) {
    for (const [i, tracks] of partsOf(samples, lead).entries()) {
      written += writeFragment(i + 1, tracks).length;
      parts++;
    }
  }
  const writeMs = performance.now() - start;
  const mbps = (n: number, ms: number) => (n / 1e6 / (ms / 1000)).toFixed(0);
  t.diagnostic(`parse: ${mbps(parsed, parseMs)} MB/s (${((parsedSamples / parseMs) * 1000 / 1e6).toFixed(2)} M samples/s), 64 KiB chunks of ffmpeg output`);
  t.diagnostic(`write: ${mbps(written, writeMs)} MB/s (${((parts / writeMs) * 1000).toFixed(0)} parts/s of 10 frames + audio)`);
  t.diagnostic(`for scale: one 400 kb/s rendition is 0.05 MB/s`);
});
