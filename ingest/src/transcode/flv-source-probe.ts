/**
 * What a publisher sends, read from the first FLV tags of the in-process tap: the H.264 decoder
 * configuration (codec string and the picture size from its SPS) and the AAC configuration.
 * The ladder needs the source height before ffmpeg starts (never upscale), and the RTMP
 * metadata (onMetaData width/height) is optional and not always true, so the SPS decides.
 */
import type { SourceInfo } from './ladder.ts';

export interface FlvSourceFacts {
  width: number;
  height: number;
  videoCodec: string | null;
  audioCodec: string | null;
  /** An audio tag was seen (any codec). */
  hasAudio: boolean;
  /** A video tag was seen (any codec). */
  hasVideo: boolean;
}

/** Reads an unsigned Exp-Golomb-coded SPS (H.264 §7.3.2.1.1) after removing emulation prevention bytes. */
class BitReader {
  private pos = 0;
  constructor(private readonly bytes: Uint8Array) {}
  bit(): number {
    const byte = this.bytes[this.pos >> 3];
    if (byte === undefined) throw new Error('SPS ended early');
    const b = (byte >> (7 - (this.pos & 7))) & 1;
    this.pos += 1;
    return b;
  }
  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.bit();
    return v;
  }
  ue(): number {
    let zeros = 0;
    while (this.bit() === 0) {
      zeros += 1;
      if (zeros > 31) throw new Error('bad Exp-Golomb code');
    }
    return 2 ** zeros - 1 + this.bits(zeros);
  }
  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : -(k / 2);
  }
}

function unescapeRbsp(nal: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < nal.length; i++) {
    if (i >= 2 && nal[i] === 3 && nal[i - 1] === 0 && nal[i - 2] === 0) continue;
    out.push(nal[i]!);
  }
  return Uint8Array.from(out);
}

function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

/** Width and height (after cropping) of an H.264 SPS NAL unit (with its 1-byte NAL header). */
export function spsPictureSize(spsNal: Uint8Array): { width: number; height: number } {
  const r = new BitReader(unescapeRbsp(spsNal.subarray(1)));
  const profile = r.bits(8);
  r.bits(16); // constraint flags + level
  r.ue(); // seq_parameter_set_id
  let chromaFormat = 1;
  if ([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].includes(profile)) {
    chromaFormat = r.ue();
    if (chromaFormat === 3) r.bit(); // separate_colour_plane_flag
    r.ue(); // bit_depth_luma
    r.ue(); // bit_depth_chroma
    r.bit(); // qpprime_y_zero_transform_bypass
    if (r.bit()) for (let i = 0; i < (chromaFormat === 3 ? 12 : 8); i++) if (r.bit()) skipScalingList(r, i < 6 ? 16 : 64);
  }
  r.ue(); // log2_max_frame_num
  const pocType = r.ue();
  if (pocType === 0) r.ue();
  else if (pocType === 1) {
    r.bit();
    r.se();
    r.se();
    const n = r.ue();
    for (let i = 0; i < n; i++) r.se();
  }
  r.ue(); // max_num_ref_frames
  r.bit(); // gaps_in_frame_num_allowed
  const widthMbs = r.ue() + 1;
  const heightMapUnits = r.ue() + 1;
  const frameMbsOnly = r.bit();
  if (!frameMbsOnly) r.bit(); // mb_adaptive_frame_field
  r.bit(); // direct_8x8_inference
  let crop = { left: 0, right: 0, top: 0, bottom: 0 };
  if (r.bit()) crop = { left: r.ue(), right: r.ue(), top: r.ue(), bottom: r.ue() };
  const cropUnitX = chromaFormat === 1 || chromaFormat === 2 ? 2 : 1;
  const cropUnitY = (chromaFormat === 1 ? 2 : 1) * (2 - frameMbsOnly);
  return {
    width: widthMbs * 16 - (crop.left + crop.right) * cropUnitX,
    height: heightMapUnits * 16 * (2 - frameMbsOnly) - (crop.top + crop.bottom) * cropUnitY,
  };
}

/** Codec string and picture size from an AVCDecoderConfigurationRecord (ISO 14496-15). */
export function parseAvcConfig(record: Uint8Array): { codec: string; width: number; height: number } | null {
  if (record.length < 8 || record[0] !== 1) return null;
  const hex = (b: number) => b.toString(16).padStart(2, '0');
  const codec = `avc1.${hex(record[1]!)}${hex(record[2]!)}${hex(record[3]!)}`;
  const spsCount = record[5]! & 0x1f;
  if (spsCount < 1) return null;
  const length = (record[6]! << 8) | record[7]!;
  if (record.length < 8 + length) return null;
  try {
    return { codec, ...spsPictureSize(record.subarray(8, 8 + length)) };
  } catch {
    return null;
  }
}

/**
 * Feeds on the tap's FLV (one tag per chunk, or the FLV header) until both sequence headers it
 * expects were seen; `done` then says what the source is.
 */
export class FlvSourceProbe {
  readonly facts: FlvSourceFacts = { width: 0, height: 0, videoCodec: null, audioCodec: null, hasAudio: false, hasVideo: false };
  private videoConfigSeen = false;
  private audioConfigSeen = false;
  private mediaTags = 0;

  /** Returns true once the probe knows enough (both configs, or enough tags to stop waiting). */
  push(chunk: Buffer): boolean {
    if (chunk.length >= 11 && (chunk[0] === 8 || chunk[0] === 9)) {
      const size = (chunk[1]! << 16) | (chunk[2]! << 8) | chunk[3]!;
      const body = chunk.subarray(11, 11 + size);
      if (chunk[0] === 9) this.video(body);
      else this.audio(body);
    }
    return this.done;
  }

  get done(): boolean {
    // Audio may be absent altogether: a few dozen media tags without it settle the question.
    return (this.videoConfigSeen && (this.audioConfigSeen || this.mediaTags > 60)) || this.mediaTags > 300;
  }

  private video(body: Buffer): void {
    if (body.length < 1) return;
    this.facts.hasVideo = true;
    this.mediaTags += 1;
    const codecId = body[0]! & 0x0f;
    if (codecId !== 7 || body.length < 5 || body[1] !== 0 || this.videoConfigSeen) return; // AVC sequence header only
    const config = parseAvcConfig(body.subarray(5));
    this.videoConfigSeen = true;
    if (!config) return;
    this.facts.videoCodec = config.codec;
    this.facts.width = config.width;
    this.facts.height = config.height;
  }

  private audio(body: Buffer): void {
    if (body.length < 1) return;
    this.facts.hasAudio = true;
    this.mediaTags += 1;
    const format = body[0]! >> 4;
    if (this.audioConfigSeen) return;
    if (format !== 10) {
      // Not AAC: transcoded renditions encode it to AAC. MP3 has a codec string; others stay unnamed.
      this.audioConfigSeen = true;
      this.facts.audioCodec = format === 2 ? 'mp4a.6b' : 'other';
      return;
    }
    if (body.length < 3 || body[1] !== 0) return; // wait for the AAC sequence header
    const objectType = body[2]! >> 3;
    this.facts.audioCodec = `mp4a.40.${objectType}`;
    this.audioConfigSeen = true;
  }
}

/** SourceInfo for renditionsFor from the probe and the publisher's reported frame rate/bitrate. */
export function sourceInfoFrom(facts: FlvSourceFacts, extra: { fps: number | null; bitrateKbps: number | null }): SourceInfo {
  return {
    width: facts.width,
    height: facts.height,
    fps: extra.fps && extra.fps > 0 ? extra.fps : null,
    videoCodec: facts.videoCodec,
    // Audio in a codec without an RFC 6381 name is left out of the ladder (the source keeps it).
    audioCodec: facts.hasAudio ? (facts.audioCodec === 'other' ? null : facts.audioCodec ?? 'mp4a.40.2') : null,
    bitrateKbps: extra.bitrateKbps && extra.bitrateKbps > 0 ? extra.bitrateKbps : null,
  };
}
