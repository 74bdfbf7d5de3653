/**
 * Serialises samples as one movie fragment: a moof followed by one mdat, the shape of an LL-HLS
 * part (and, concatenated, of a segment). Everything a player needs is explicit in each trun
 * (duration, size, flags and composition offset per sample), so the fragment does not depend on
 * the init segment's trex defaults, and default-base-is-moof makes it relocatable: its data
 * offsets count from its own moof, wherever the bytes end up (part file or segment file).
 */
import { fourcc } from './boxes.ts';

export interface PartSample {
  duration: number;
  /** If given, must equal data.length (a parsed Sample can be passed as it is). */
  size?: number;
  flags: number;
  compositionOffset: number;
  data: Buffer;
}

export interface PartTrack {
  /** track_ID, as in the init segment. */
  id: number;
  /** Decode time of the first sample, in the track's timescale (tfdt version 1: 64 bits). */
  baseMediaDecodeTime: number;
  /** In decode order. A track with no samples still gets a traf (with an empty trun). */
  samples: readonly PartSample[];
}

const MFHD_SIZE = 16;
const TFHD_SIZE = 16; // header, version/flags, track_ID: no optional fields
const TFDT_SIZE = 20; // version 1: 64-bit baseMediaDecodeTime
const TRUN_FIXED = 20; // header, version/flags, sample_count, data_offset
const TRUN_RECORD = 16; // duration, size, flags, composition offset
const TRAF_FIXED = 8 + TFHD_SIZE + TFDT_SIZE + TRUN_FIXED;

const TFHD_DEFAULT_BASE_IS_MOOF = 0x020000;
// data-offset, sample duration, size, flags and composition-time-offset present.
const TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800;

const UINT32_MAX = 0xffff_ffff;
const INT32_MAX = 0x7fff_ffff;

const MOOF = fourcc('moof');
const MFHD = fourcc('mfhd');
const TRAF = fourcc('traf');
const TFHD = fourcc('tfhd');
const TFDT = fourcc('tfdt');
const TRUN = fourcc('trun');
const MDAT = fourcc('mdat');

function checkUint32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > UINT32_MAX) throw new RangeError(`${what} ${value} is not a 32-bit unsigned integer`);
}

/** Writes `tracks` as one moof + mdat, in one buffer. Throws RangeError on values the boxes cannot hold. */
export function writeFragment(sequenceNumber: number, tracks: readonly PartTrack[]): Buffer {
  checkUint32(sequenceNumber, 'sequence number');
  // Pass 1: validate and size everything, so the output is allocated once.
  let moofSize = 8 + MFHD_SIZE;
  let payload = 0;
  const signed: boolean[] = [];
  for (const track of tracks) {
    checkUint32(track.id, 'track id');
    if (track.id === 0) throw new RangeError('track id 0 is reserved');
    const bmdt = track.baseMediaDecodeTime;
    if (!Number.isSafeInteger(bmdt) || bmdt < 0) throw new RangeError(`track ${track.id}: baseMediaDecodeTime ${bmdt} is not a non-negative safe integer`);
    let negative = false;
    let large = false;
    for (const sample of track.samples) {
      checkUint32(sample.duration, `track ${track.id}: sample duration`);
      checkUint32(sample.flags, `track ${track.id}: sample flags`);
      if (sample.size !== undefined && sample.size !== sample.data.length) throw new RangeError(`track ${track.id}: sample size ${sample.size} but ${sample.data.length} bytes of data`);
      const cto = sample.compositionOffset;
      if (!Number.isInteger(cto) || cto < -0x8000_0000 || cto > UINT32_MAX) throw new RangeError(`track ${track.id}: composition offset ${cto} does not fit 32 bits`);
      if (cto < 0) negative = true;
      else if (cto > INT32_MAX) large = true;
      payload += sample.data.length;
    }
    // trun version 1 makes composition offsets signed: needed for a negative one, impossible with one ≥ 2^31.
    if (negative && large) throw new RangeError(`track ${track.id}: composition offsets need both version 1 (negative) and version 0 (≥ 2^31)`);
    signed.push(negative);
    moofSize += TRAF_FIXED + TRUN_RECORD * track.samples.length;
  }
  // data_offset is a signed 32-bit count from the moof's first byte; a part is far smaller than 2 GiB anyway.
  const mdatSize = 8 + payload;
  if (moofSize + mdatSize > INT32_MAX) throw new RangeError(`fragment of ${moofSize + mdatSize} bytes is too large for 32-bit data offsets`);

  // Pass 2: write. allocUnsafe is safe here because every byte below is written.
  const out = Buffer.allocUnsafe(moofSize + mdatSize);
  let at = 0;
  at = out.writeUInt32BE(moofSize, at);
  at = out.writeUInt32BE(MOOF, at);
  at = out.writeUInt32BE(MFHD_SIZE, at);
  at = out.writeUInt32BE(MFHD, at);
  at = out.writeUInt32BE(0, at); // version 0, flags 0
  at = out.writeUInt32BE(sequenceNumber, at);

  let dataOffset = moofSize + 8; // from the moof's first byte (default-base-is-moof)
  for (let t = 0; t < tracks.length; t++) {
    const track = tracks[t]!;
    const count = track.samples.length;
    at = out.writeUInt32BE(TRAF_FIXED + TRUN_RECORD * count, at);
    at = out.writeUInt32BE(TRAF, at);

    at = out.writeUInt32BE(TFHD_SIZE, at);
    at = out.writeUInt32BE(TFHD, at);
    at = out.writeUInt32BE(TFHD_DEFAULT_BASE_IS_MOOF, at); // version 0
    at = out.writeUInt32BE(track.id, at);

    at = out.writeUInt32BE(TFDT_SIZE, at);
    at = out.writeUInt32BE(TFDT, at);
    at = out.writeUInt32BE(0x0100_0000, at); // version 1, flags 0
    at = out.writeUInt32BE(Math.floor(track.baseMediaDecodeTime / 0x1_0000_0000), at);
    at = out.writeUInt32BE(track.baseMediaDecodeTime % 0x1_0000_0000, at);

    const isSigned = signed[t]!;
    at = out.writeUInt32BE(TRUN_FIXED + TRUN_RECORD * count, at);
    at = out.writeUInt32BE(TRUN, at);
    at = out.writeUInt32BE(((isSigned ? 1 : 0) << 24) | TRUN_FLAGS, at);
    at = out.writeUInt32BE(count, at);
    at = out.writeInt32BE(dataOffset, at);
    for (const sample of track.samples) {
      at = out.writeUInt32BE(sample.duration, at);
      at = out.writeUInt32BE(sample.data.length, at);
      at = out.writeUInt32BE(sample.flags, at);
      at = isSigned ? out.writeInt32BE(sample.compositionOffset, at) : out.writeUInt32BE(sample.compositionOffset, at);
      dataOffset += sample.data.length;
    }
  }

  at = out.writeUInt32BE(mdatSize, at);
  at = out.writeUInt32BE(MDAT, at);
  for (const track of tracks) {
    for (const sample of track.samples) at += sample.data.copy(out, at);
  }
  return out;
}
