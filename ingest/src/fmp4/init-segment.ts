/**
 * The init segment (ftyp + moov) of a fragmented MP4: what ingest needs to know about each track
 * to read its fragments (timescale, trex defaults) and to describe the rendition (codec, size).
 * The bytes are kept exactly as the muxer wrote them: they become the EXT-X-MAP file as they are.
 */
import { childBoxes, findChild, fullBoxHeader, readBoxHeader, requireBody, requireChild, type BoxHeader } from './boxes.ts';
import { describeCodec } from './codec-string.ts';
import { malformed } from './errors.ts';

/** Per-track fallbacks for fields a fragment's tfhd/trun leave out (the moov's mvex/trex). */
export interface TrackDefaults {
  sampleDescriptionIndex: number;
  duration: number;
  size: number;
  flags: number;
}

export interface TrackInfo {
  id: number;
  /** From the handler: 'vide' → video, 'soun' → audio, anything else → other. */
  kind: 'video' | 'audio' | 'other';
  /** The hdlr handler_type as written, e.g. 'vide'. */
  handler: string;
  /** Ticks per second of the track's media timeline (mdhd): the unit of every dts and duration. */
  timescale: number;
  /** The first sample entry's type: 'avc1', 'hev1', 'mp4a', 'Opus'… */
  codec: string;
  /** RFC 6381 codec string for the HLS CODECS attribute ('avc1.64001f', 'mp4a.40.2'), for H.264 and AAC. */
  codecs?: string;
  /** Coded size from the visual sample entry (video only). */
  width?: number;
  height?: number;
  /** Audio only: from the AAC AudioSpecificConfig when there is one, else the audio sample entry (where ffmpeg always writes 2). */
  channels?: number;
  sampleRate?: number;
  defaults: TrackDefaults;
}

export interface InitSegment {
  /** The init segment's bytes: ftyp + moov as given. */
  bytes: Buffer;
  tracks: TrackInfo[];
}

const NO_DEFAULTS: TrackDefaults = { sampleDescriptionIndex: 1, duration: 0, size: 0, flags: 0 };

/**
 * Parses an init segment: the top-level boxes in `bytes` must include one moov (a leading ftyp is
 * usual; other top-level boxes are skipped).
 */
export function parseInitSegment(bytes: Buffer): InitSegment {
  let moov: BoxHeader | undefined;
  for (let offset = 0; offset < bytes.length; ) {
    const box = readBoxHeader(bytes, offset, bytes.length, 'init segment', true);
    if (box.type === 'moov') {
      if (moov) throw malformed(`init segment has a second 'moov' box at ${box.start}`);
      moov = box;
    }
    offset = box.end;
  }
  if (!moov) throw malformed('init segment has no moov box');
  const moovBox = moov;
  const defaults = readTrexDefaults(bytes, moovBox);
  const tracks = childBoxes(bytes, moovBox)
    .filter((box) => box.type === 'trak')
    .map((trak) => readTrack(bytes, trak, defaults));
  const ids = new Set(tracks.map((track) => track.id));
  if (ids.size !== tracks.length) throw malformed('init segment has two tracks with the same track_ID');
  return { bytes, tracks };
}

function readTrexDefaults(buf: Buffer, moov: BoxHeader): Map<number, TrackDefaults> {
  const defaults = new Map<number, TrackDefaults>();
  const mvex = findChild(buf, moov, 'mvex');
  if (!mvex) return defaults; // not a fragmented file: tfhd must then carry everything
  for (const trex of childBoxes(buf, mvex)) {
    if (trex.type !== 'trex') continue;
    requireBody(trex, 24);
    const at = trex.bodyStart + 4;
    defaults.set(buf.readUInt32BE(at), {
      sampleDescriptionIndex: buf.readUInt32BE(at + 4),
      duration: buf.readUInt32BE(at + 8),
      size: buf.readUInt32BE(at + 12),
      flags: buf.readUInt32BE(at + 16),
    });
  }
  return defaults;
}

function readTrack(buf: Buffer, trak: BoxHeader, defaults: Map<number, TrackDefaults>): TrackInfo {
  const tkhd = requireChild(buf, trak, 'tkhd');
  // tkhd: version 1 has 64-bit creation/modification times before the track_ID.
  const { version: tkhdVersion } = fullBoxHeader(buf, tkhd, 4);
  requireBody(tkhd, tkhdVersion === 1 ? 24 : 16);
  const id = buf.readUInt32BE(tkhd.bodyStart + (tkhdVersion === 1 ? 20 : 12));
  if (id === 0) throw malformed(`'tkhd' box at ${tkhd.start}: track_ID 0 is reserved`);

  const mdia = requireChild(buf, trak, 'mdia');
  const mdhd = requireChild(buf, mdia, 'mdhd');
  const { version: mdhdVersion } = fullBoxHeader(buf, mdhd, 4);
  requireBody(mdhd, mdhdVersion === 1 ? 24 : 16);
  const timescale = buf.readUInt32BE(mdhd.bodyStart + (mdhdVersion === 1 ? 20 : 12));
  if (timescale === 0) throw malformed(`track ${id}: mdhd timescale is 0`);

  const hdlr = requireChild(buf, mdia, 'hdlr');
  requireBody(hdlr, 12);
  const handler = buf.toString('latin1', hdlr.bodyStart + 8, hdlr.bodyStart + 12);
  const kind = handler === 'vide' ? 'video' : handler === 'soun' ? 'audio' : 'other';

  const stbl = requireChild(buf, requireChild(buf, mdia, 'minf'), 'stbl');
  const stsd = requireChild(buf, stbl, 'stsd');
  requireBody(stsd, 8);
  const entry = childBoxes(buf, stsd, 8)[0];
  if (!entry) throw malformed(`track ${id}: stsd has no sample entry`);

  const track: TrackInfo = { id, kind, handler, timescale, codec: entry.type, defaults: defaults.get(id) ?? { ...NO_DEFAULTS } };
  const details = describeCodec(buf, entry);
  if (details.codecs) track.codecs = details.codecs;
  // Both sample entries start with 6 reserved bytes and a data_reference_index (8 bytes).
  const body = entry.bodyStart;
  if (kind === 'video' && entry.end - body >= 28) {
    // VisualSampleEntry: pre_defined/reserved (16 bytes), then width and height (16 bits each).
    track.width = buf.readUInt16BE(body + 24);
    track.height = buf.readUInt16BE(body + 26);
  } else if (kind === 'audio' && entry.end - body >= 28) {
    // AudioSampleEntry: reserved (8 bytes), channelcount, samplesize, pre_defined, reserved, samplerate (16.16).
    track.channels = details.channels ?? buf.readUInt16BE(body + 16);
    track.sampleRate = buf.readUInt32BE(body + 24) >>> 16;
  }
  return track;
}
