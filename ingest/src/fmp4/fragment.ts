/**
 * One movie fragment (moof + its mdat) → samples. Handles the whole tfhd/trun vocabulary of
 * ISO/IEC 14496-12 §8.8 (several trafs and truns, base-data-offset or default-base-is-moof or the
 * implicit "after the previous traf's data", trex fallbacks, trun v1 signed composition offsets),
 * not just the subset ffmpeg writes. Every sample's bytes must lie inside the mdat; samples carry a
 * subarray of it, never a copy.
 */
import { BoxCursor, fourcc, readBoxInto, requireBody } from './boxes.ts';
import { malformed } from './errors.ts';
import type { TrackDefaults } from './init-segment.ts';

export interface Sample {
  /** track_ID. */
  track: number;
  /** Decode time in the track's timescale (tfdt + the durations before it). */
  dts: number;
  duration: number;
  size: number;
  /** ISO BMFF sample_flags as written (or defaulted). */
  flags: number;
  /** pts − dts in track ticks; negative only with trun version 1. */
  compositionOffset: number;
  /** Not sample_is_non_sync_sample (flags bit 16). */
  keyframe: boolean;
  /** The sample's bytes: a subarray of the mdat. */
  data: Buffer;
}

/** One traf, summarised. */
export interface TrackFragmentInfo {
  track: number;
  baseMediaDecodeTime: number;
  sampleDescriptionIndex: number;
  sampleCount: number;
}

export interface Fragment {
  /** mfhd sequence_number. */
  sequenceNumber: number;
  /**
   * All samples of the fragment, flat, traf by traf and run by run as the moof lists them: within
   * one track they are in decode order; across tracks, filter by `track`.
   */
  samples: Sample[];
  trafs: TrackFragmentInfo[];
}

export interface FragmentContext {
  /** trex defaults of every track the init segment declares, by track_ID. */
  defaults: ReadonlyMap<number, TrackDefaults>;
  /**
   * Decode time at which each track's next fragment starts. Read when a traf has no tfdt, and
   * updated by parseFragment for every traf it reads.
   */
  nextDecodeTime: Map<number, number>;
}

export interface FragmentBytes {
  moof: Buffer;
  /** Stream position of the moof's first byte: absolute data offsets (base-data-offset) count from the stream's start. */
  moofOffset: number;
  mdat: Buffer;
  mdatOffset: number;
}

/** A fragment declaring more samples than this is refused (a bit-flipped sample_count must not allocate millions of objects). */
export const MAX_SAMPLES_PER_FRAGMENT = 1 << 17;

// tfhd flags
const BASE_DATA_OFFSET = 0x000001;
const SAMPLE_DESCRIPTION_INDEX = 0x000002;
const DEFAULT_DURATION = 0x000008;
const DEFAULT_SIZE = 0x000010;
const DEFAULT_FLAGS = 0x000020;
const DURATION_IS_EMPTY = 0x010000;
const DEFAULT_BASE_IS_MOOF = 0x020000;
// trun flags
const DATA_OFFSET = 0x000001;
const FIRST_SAMPLE_FLAGS = 0x000004;
const SAMPLE_DURATION = 0x000100;
const SAMPLE_SIZE = 0x000200;
const SAMPLE_FLAGS = 0x000400;
const SAMPLE_CTO = 0x000800;

const NON_SYNC = 0x00010000;

const MOOF = fourcc('moof');
const MDAT = fourcc('mdat');
const MFHD = fourcc('mfhd');
const TRAF = fourcc('traf');
const TFHD = fourcc('tfhd');
const TFDT = fourcc('tfdt');
const TRUN = fourcc('trun');

/** Where the samples' bytes may be: the mdat's payload, in stream positions, and the buffer holding it. */
interface MdatView {
  mdat: Buffer;
  mdatOffset: number;
  dataStart: number;
  dataEnd: number;
}

/**
 * Parses one moof and the mdat holding its samples' bytes. Throws an Fmp4Error
 * (ONAIR_FMP4_MALFORMED) on anything inconsistent; `context.nextDecodeTime` may then be partly
 * updated (a reader stops at its first error anyway).
 */
export function parseFragment(context: FragmentContext, input: FragmentBytes): Fragment {
  const { moof, moofOffset, mdat, mdatOffset } = input;
  const moofBox = readBoxInto(new BoxCursor(), moof, 0, moof.length, 'moof buffer');
  if (moofBox.code !== MOOF || moofBox.end !== moof.length) throw malformed(`expected one moof box, got '${moofBox.type}' of ${moofBox.end} in ${moof.length} bytes`);
  const mdatBox = readBoxInto(new BoxCursor(), mdat, 0, mdat.length, 'mdat buffer', true);
  if (mdatBox.code !== MDAT || mdatBox.end !== mdat.length) throw malformed(`expected one mdat box, got '${mdatBox.type}' of ${mdatBox.end} in ${mdat.length} bytes`);
  // Every sample must lie in the mdat payload: stream positions [dataStart, dataEnd).
  const view: MdatView = { mdat, mdatOffset, dataStart: mdatOffset + mdatBox.bodyStart, dataEnd: mdatOffset + mdatBox.end };

  let sequenceNumber: number | undefined;
  const samples: Sample[] = [];
  const trafs: TrackFragmentInfo[] = [];
  // Without base-data-offset or default-base-is-moof, a traf's data starts where the previous traf's ends (the first: at the moof).
  let implicitBase = moofOffset;
  const child = new BoxCursor();
  for (let at = moofBox.bodyStart; at < moofBox.end; at = child.end) {
    readBoxInto(child, moof, at, moofBox.end, 'moof');
    if (child.code === MFHD) {
      requireBody(child, 8);
      sequenceNumber = moof.readUInt32BE(child.bodyStart + 4);
    } else if (child.code === TRAF) {
      implicitBase = readTraf(context, moof, child, moofOffset, implicitBase, view, samples, trafs);
    }
  }
  if (sequenceNumber === undefined) throw malformed(`moof at stream byte ${moofOffset} has no mfhd`);
  return { sequenceNumber, samples, trafs };
}

/** Reads one traf, appending its samples; returns where its data ends (the next traf's implicit base). */
function readTraf(
  context: FragmentContext,
  moof: Buffer,
  traf: BoxCursor,
  moofOffset: number,
  implicitBase: number,
  view: MdatView,
  samples: Sample[],
  trafs: TrackFragmentInfo[],
): number {
  // First pass: the tfhd (first child, by the spec) and the tfdt, wherever it is; the truns come in the second.
  const box = new BoxCursor();
  readBoxInto(box, moof, traf.bodyStart, traf.end, 'traf');
  if (box.code !== TFHD) throw malformed(`traf at ${traf.start} in moof at stream byte ${moofOffset} does not start with a tfhd`);
  requireBody(box, 8);
  const tfhdFlags = moof.readUIntBE(box.bodyStart + 1, 3);
  const track = moof.readUInt32BE(box.bodyStart + 4);
  const trex = context.defaults.get(track);
  if (!trex) throw malformed(`traf for track ${track}, which the init segment does not declare`);
  requireBody(
    box,
    8 +
      (tfhdFlags & BASE_DATA_OFFSET ? 8 : 0) +
      (tfhdFlags & SAMPLE_DESCRIPTION_INDEX ? 4 : 0) +
      (tfhdFlags & DEFAULT_DURATION ? 4 : 0) +
      (tfhdFlags & DEFAULT_SIZE ? 4 : 0) +
      (tfhdFlags & DEFAULT_FLAGS ? 4 : 0),
  );
  let at = box.bodyStart + 8;
  let base: number;
  if (tfhdFlags & BASE_DATA_OFFSET) {
    base = readUint64(moof, at, 'base_data_offset');
    at += 8;
  } else {
    base = tfhdFlags & DEFAULT_BASE_IS_MOOF ? moofOffset : implicitBase;
  }
  let sampleDescriptionIndex = trex.sampleDescriptionIndex;
  if (tfhdFlags & SAMPLE_DESCRIPTION_INDEX) {
    sampleDescriptionIndex = moof.readUInt32BE(at);
    at += 4;
  }
  let defaultDuration = trex.duration;
  if (tfhdFlags & DEFAULT_DURATION) {
    defaultDuration = moof.readUInt32BE(at);
    at += 4;
  }
  let defaultSize = trex.size;
  if (tfhdFlags & DEFAULT_SIZE) {
    defaultSize = moof.readUInt32BE(at);
    at += 4;
  }
  let defaultFlags = trex.flags;
  if (tfhdFlags & DEFAULT_FLAGS) defaultFlags = moof.readUInt32BE(at);

  let baseMediaDecodeTime = context.nextDecodeTime.get(track) ?? 0;
  const runsFrom = box.end;
  for (let next = box.end; next < traf.end; next = box.end) {
    readBoxInto(box, moof, next, traf.end, 'traf');
    if (box.code !== TFDT) continue;
    requireBody(box, 8);
    if (moof[box.bodyStart] === 1) {
      requireBody(box, 12);
      baseMediaDecodeTime = readUint64(moof, box.bodyStart + 4, 'baseMediaDecodeTime');
    } else {
      baseMediaDecodeTime = moof.readUInt32BE(box.bodyStart + 4);
    }
    break;
  }

  const firstSample = samples.length;
  let dts = baseMediaDecodeTime;
  let dataPos = base; // where the next run's data starts when it has no data_offset
  const { mdat, mdatOffset, dataStart, dataEnd } = view;
  for (let next = runsFrom; next < traf.end; next = box.end) {
    readBoxInto(box, moof, next, traf.end, 'traf');
    if (box.code !== TRUN) continue;
    const trun = box;
    requireBody(trun, 8);
    const version = moof[trun.bodyStart]!;
    const flags = moof.readUIntBE(trun.bodyStart + 1, 3);
    const count = moof.readUInt32BE(trun.bodyStart + 4);
    if (tfhdFlags & DURATION_IS_EMPTY && count > 0) throw malformed(`traf for track ${track} is duration-is-empty but its trun has ${count} samples`);
    let p = trun.bodyStart + 8;
    // A run without data_offset continues after the previous run (the first: at the base).
    if (flags & DATA_OFFSET) {
      requireBody(trun, 12);
      dataPos = base + moof.readInt32BE(p);
      p += 4;
    }
    let firstFlags = -1;
    if (flags & FIRST_SAMPLE_FLAGS) {
      requireBody(trun, p - trun.bodyStart + 4);
      firstFlags = moof.readUInt32BE(p);
      p += 4;
    }
    const hasDuration = (flags & SAMPLE_DURATION) !== 0;
    const hasSize = (flags & SAMPLE_SIZE) !== 0;
    const hasFlags = (flags & SAMPLE_FLAGS) !== 0;
    const hasCto = (flags & SAMPLE_CTO) !== 0;
    const record = 4 * (Number(hasDuration) + Number(hasSize) + Number(hasFlags) + Number(hasCto));
    if (count * record > trun.end - p) throw malformed(`trun of track ${track} declares ${count} samples of ${record} bytes in ${trun.end - p} bytes`);
    if (samples.length + count > MAX_SAMPLES_PER_FRAGMENT) throw malformed(`fragment at stream byte ${moofOffset} declares over ${MAX_SAMPLES_PER_FRAGMENT} samples`);
    const signedCto = version !== 0;
    for (let i = 0; i < count; i++) {
      let duration = defaultDuration;
      let size = defaultSize;
      let sampleFlags = i === 0 && firstFlags >= 0 ? firstFlags : defaultFlags;
      let compositionOffset = 0;
      if (hasDuration) {
        duration = moof.readUInt32BE(p);
        p += 4;
      }
      if (hasSize) {
        size = moof.readUInt32BE(p);
        p += 4;
      }
      if (hasFlags) {
        sampleFlags = moof.readUInt32BE(p);
        p += 4;
      }
      if (hasCto) {
        compositionOffset = signedCto ? moof.readInt32BE(p) : moof.readUInt32BE(p);
        p += 4;
      }
      if (dataPos < dataStart || dataPos + size > dataEnd) {
        throw malformed(`sample ${i} of track ${track} (${size} bytes at stream byte ${dataPos}) lies outside the mdat (stream bytes ${dataStart}–${dataEnd})`);
      }
      const from = dataPos - mdatOffset;
      samples.push({
        track,
        dts,
        duration,
        size,
        flags: sampleFlags,
        compositionOffset,
        keyframe: (sampleFlags & NON_SYNC) === 0,
        data: mdat.subarray(from, from + size),
      });
      dts += duration;
      dataPos += size;
    }
  }
  // An empty-duration traf stands for a gap of the default duration with no samples.
  if (tfhdFlags & DURATION_IS_EMPTY) dts += defaultDuration;
  context.nextDecodeTime.set(track, dts);
  trafs.push({ track, baseMediaDecodeTime, sampleDescriptionIndex, sampleCount: samples.length - firstSample });
  return dataPos;
}

function readUint64(buf: Buffer, at: number, what: string): number {
  const high = buf.readUInt32BE(at);
  if (high > 0x1fffff) throw malformed(`${what} ${buf.readBigUInt64BE(at)} is past 2^53`);
  return high * 0x1_0000_0000 + buf.readUInt32BE(at + 4);
}
