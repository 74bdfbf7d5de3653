/**
 * RFC 6381 codec strings (the HLS CODECS attribute) for the sample entries ingest meets: H.264
 * ('avc1.64001f', from avcC) and AAC ('mp4a.40.2', from esds). The AAC AudioSpecificConfig also
 * gives the real channel count: ffmpeg's ISO-mode mp4a entry always says 2 channels (measured with
 * ffmpeg 5.1 on a mono input), as the spec's template value.
 */
import { childBoxes, type BoxHeader } from './boxes.ts';
import { Fmp4Error } from './errors.ts';

export interface CodecDetails {
  /** RFC 6381 string, when the entry is one we know how to describe. */
  codecs?: string;
  /** Channel count from the AudioSpecificConfig (AAC only; 0 = defined in the bitstream, left out). */
  channels?: number;
}

/** VisualSampleEntry and AudioSampleEntry bodies before their child boxes (ISO/IEC 14496-12 §12.1.3, §12.2.3). */
const VISUAL_ENTRY_FIELDS = 78;
const AUDIO_ENTRY_FIELDS = 28;

export function describeCodec(buf: Buffer, entry: BoxHeader): CodecDetails {
  // Sample entries are parsed best-effort: a codec string is a description, not needed to read samples.
  try {
    if (entry.type === 'avc1' || entry.type === 'avc3') {
      const avcC = childBoxes(buf, entry, VISUAL_ENTRY_FIELDS).find((box) => box.type === 'avcC');
      // avcC: configurationVersion, AVCProfileIndication, profile_compatibility, AVCLevelIndication.
      if (!avcC || avcC.end - avcC.bodyStart < 4) return {};
      return { codecs: `${entry.type}.${buf.toString('hex', avcC.bodyStart + 1, avcC.bodyStart + 4)}` };
    }
    if (entry.type === 'mp4a') {
      const esds = childBoxes(buf, entry, AUDIO_ENTRY_FIELDS).find((box) => box.type === 'esds');
      return esds ? describeEsds(buf, esds.bodyStart + 4, esds.end) : {};
    }
  } catch (err) {
    // A malformed entry just has no description (anything else is a bug, and not ours to hide).
    if (!(err instanceof Fmp4Error)) throw err;
  }
  return {};
}

/** Walks ES_Descriptor (tag 3) → DecoderConfigDescriptor (4) → DecoderSpecificInfo (5), ISO/IEC 14496-1 §7.2.6. */
function describeEsds(buf: Buffer, start: number, end: number): CodecDetails {
  const es = readDescriptor(buf, start, end);
  if (!es || es.tag !== 3 || es.bodyEnd - es.body < 3) return {};
  const esFlags = buf[es.body + 2]!;
  let at = es.body + 3;
  if (esFlags & 0x80) at += 2; // dependsOn_ES_ID
  if (esFlags & 0x40) at += 1 + (buf[at] ?? 0); // URL
  if (esFlags & 0x20) at += 2; // OCR_ES_Id
  const config = readDescriptor(buf, at, es.bodyEnd);
  if (!config || config.tag !== 4 || config.bodyEnd - config.body < 13) return {};
  const objectType = buf[config.body]!;
  const objectHex = objectType.toString(16).padStart(2, '0');
  const info = readDescriptor(buf, config.body + 13, config.bodyEnd);
  if (objectType !== 0x40 || !info || info.tag !== 5 || info.bodyEnd - info.body < 2) return { codecs: `mp4a.${objectHex}` };
  // AudioSpecificConfig: audioObjectType (5 bits, 31 = escape to 6 more), samplingFrequencyIndex (4, 15 = 24-bit rate follows), channelConfiguration (4).
  const bits = new BitReader(buf, info.body, info.bodyEnd);
  let audioObjectType = bits.read(5);
  if (audioObjectType === 31) audioObjectType = 32 + bits.read(6);
  if (bits.read(4) === 15) bits.read(24);
  const channelConfiguration = bits.read(4);
  const details: CodecDetails = { codecs: `mp4a.40.${audioObjectType}` };
  // Configurations 1–6 are that many channels; 7 is 7.1 (8 channels); others are not a plain count.
  if (channelConfiguration >= 1 && channelConfiguration <= 6) details.channels = channelConfiguration;
  else if (channelConfiguration === 7) details.channels = 8;
  return details;
}

interface Descriptor {
  tag: number;
  body: number;
  bodyEnd: number;
}

/** A descriptor's tag and expandable size (7 bits per byte, high bit = more), within [at, end). */
function readDescriptor(buf: Buffer, at: number, end: number): Descriptor | undefined {
  if (at >= end) return undefined;
  const tag = buf[at++]!;
  let size = 0;
  for (let i = 0; i < 4; i++) {
    if (at >= end) return undefined;
    const byte = buf[at++]!;
    size = size * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) break;
  }
  if (at + size > end) return undefined;
  return { tag, body: at, bodyEnd: at + size };
}

class BitReader {
  private bit = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly start: number,
    private readonly end: number,
  ) {}

  /** The next `count` bits, MSB first; past the end reads zeros. */
  read(count: number): number {
    let value = 0;
    for (let i = 0; i < count; i++) {
      const at = this.start + (this.bit >> 3);
      const byte = at < this.end ? this.buf[at]! : 0;
      value = value * 2 + ((byte >> (7 - (this.bit & 7))) & 1);
      this.bit++;
    }
    return value;
  }
}
