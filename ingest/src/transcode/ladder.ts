/**
 * The quality ladder: which renditions a stream gets, how ffmpeg makes each one, and the master
 * playlist that lets hls.js choose between them. Pure functions, no I/O: shared by live broadcasts
 * (ingest/src/transcode/ladder-run.ts) and on-demand uploads.
 *
 * A ladder is a list of rungs by height ("720p,480p,360p"). The source always stays the top
 * rendition, passed through untouched (copy); rungs at or above the source height are skipped, so
 * nothing is ever upscaled. Transcoded renditions are H.264 (libx264) with their keyframes forced
 * where the source has them (live) or at a fixed interval (files): every rendition is then cut into
 * segments at the same times, which is what lets a player switch between them at any boundary.
 */

export {
  formatLadderSpec,
  isRenditionName,
  LadderSpecError,
  parseLadderSpec,
  RENDITION_NAME_PATTERN,
  RENDITION_PRESETS,
  SOURCE_RENDITION,
  type RenditionSpec,
} from '../../../common/src/ladder-spec.ts';
import type { RenditionSpec } from '../../../common/src/ladder-spec.ts';
import { RENDITION_PRESETS, SOURCE_RENDITION } from '../../../common/src/ladder-spec.ts';

/** What is known of the source when the renditions are chosen. */
export interface SourceInfo {
  width: number;
  height: number;
  /** Frames per second, when known (FRAME-RATE in the master playlist). */
  fps: number | null;
  /** RFC 6381 codec of the source video, e.g. `avc1.64001f` (null: not H.264 / unknown). */
  videoCodec: string | null;
  /** RFC 6381 codec of the source audio, e.g. `mp4a.40.2`; null when there is no audio. */
  audioCodec: string | null;
  /** Source bitrate in kbit/s (video + audio) when known: the source rendition's BANDWIDTH. */
  bitrateKbps: number | null;
}

export interface Rendition {
  name: string;
  /** copy: the source's own video (passthrough); transcode: scaled and encoded with libx264. */
  video: 'copy' | 'transcode';
  /** copy: the source's audio as is (it is AAC, or this is the source rendition); aac: encoded; none: no audio. */
  audio: 'copy' | 'aac' | 'none';
  width: number;
  height: number;
  fps: number | null;
  /** Peak bitrate to announce (bit/s, EXT-X-STREAM-INF BANDWIDTH). */
  bandwidth: number;
  /** RFC 6381 codecs, e.g. `avc1.4d401f,mp4a.40.2`; null when the source's are unknown. */
  codecs: string | null;
  /** The rung it came from (null for the source). */
  spec: RenditionSpec | null;
}

export interface RenditionOptions {
  /** Keep the source as the top rendition, passed through (default true). */
  includeSource?: boolean;
}

const AAC_LC = 'mp4a.40.2';

/** x264's main profile with constraint_set1 (`4d40`) at the rung's level. */
export function transcodedVideoCodec(spec: RenditionSpec): string {
  return `avc1.4d40${spec.level.toString(16).padStart(2, '0')}`;
}

/** Even width keeping the source's aspect ratio (H.264 4:2:0 needs even sizes). */
export function scaledWidth(source: { width: number; height: number }, height: number): number {
  if (source.width <= 0 || source.height <= 0) return Math.round((height * 16) / 9 / 2) * 2;
  return Math.max(2, Math.round((source.width * height) / source.height / 2) * 2);
}

function isAac(codec: string | null): boolean {
  return codec !== null && codec.startsWith('mp4a.40.');
}

/**
 * The renditions for one source, highest first: the source (copy) and every rung strictly below
 * the source height. A source of unknown height (0) gets only itself: nothing can be chosen safely.
 */
export function renditionsFor(ladder: readonly RenditionSpec[], source: SourceInfo, options: RenditionOptions = {}): Rendition[] {
  const out: Rendition[] = [];
  const audioCodecs = source.audioCodec;
  if (options.includeSource ?? true) {
    const bandwidth = Math.round((source.bitrateKbps ?? estimateSourceKbps(source)) * 1000 * 1.1);
    out.push({
      name: SOURCE_RENDITION,
      video: 'copy',
      audio: source.audioCodec ? 'copy' : 'none',
      width: source.width,
      height: source.height,
      fps: source.fps,
      bandwidth,
      codecs: source.videoCodec ? [source.videoCodec, ...(audioCodecs ? [audioCodecs] : [])].join(',') : null,
      spec: null,
    });
  }
  if (source.height <= 0) return out;
  const rungs = [...ladder].filter((r) => r.height < source.height).sort((a, b) => b.height - a.height);
  for (const spec of rungs) {
    const audio: Rendition['audio'] = source.audioCodec === null ? 'none' : isAac(source.audioCodec) ? 'copy' : 'aac';
    const audioKbps = audio === 'none' ? 0 : spec.audioKbps;
    out.push({
      name: spec.name,
      video: 'transcode',
      audio,
      width: scaledWidth(source, spec.height),
      height: spec.height,
      fps: source.fps,
      bandwidth: Math.round((maxrateKbps(spec) + audioKbps) * 1000),
      codecs: [transcodedVideoCodec(spec), ...(audio === 'none' ? [] : [audio === 'copy' ? source.audioCodec! : AAC_LC])].join(','),
      spec,
    });
  }
  return out;
}

function estimateSourceKbps(source: SourceInfo): number {
  // Unknown input bitrate: assume a generous figure for the height so players do not pick it on a slow link.
  const preset = RENDITION_PRESETS.find((p) => p.height <= source.height) ?? RENDITION_PRESETS[0]!;
  return preset.videoKbps * 1.5 + 128;
}

function maxrateKbps(spec: RenditionSpec): number {
  return Math.round(spec.videoKbps * 1.1);
}

/** Where the transcoded renditions' keyframes go. */
export type KeyframePlacement =
  /** Where the source has them (live: the copied source rendition is cut at these, so all align). */
  | { kind: 'source' }
  /** Every `seconds` (files without a copied rendition). */
  | { kind: 'interval'; seconds: number };

export interface EncodeOptions {
  keyframes: KeyframePlacement;
  /** `live`: x264 zerolatency (no look-ahead, no B-frames: no added delay). `file`: better compression. */
  latency: 'live' | 'file';
  /** x264 preset, `veryfast` by default. */
  preset?: string;
  /** Encoder threads per rendition (0 = x264 chooses). */
  threads?: number;
}

/**
 * ffmpeg `-filter_complex` graph scaling the input video once per transcoded rendition. Outputs
 * are labelled `[v<name>]` (see videoLabel). Returns null when no rendition needs it.
 */
export function ladderFilterGraph(renditions: readonly Rendition[], inputVideo = '0:v'): string | null {
  const scaled = renditions.filter((r) => r.video === 'transcode');
  if (scaled.length === 0) return null;
  const split = scaled.length === 1 ? `[${inputVideo}]null[s0]` : `[${inputVideo}]split=${scaled.length}${scaled.map((_, i) => `[s${i}]`).join('')}`;
  const chains = scaled.map((r, i) => `[s${i}]scale=${r.width}:${r.height}:flags=bicubic,format=yuv420p[${videoLabel(r)}]`);
  return [split, ...chains].join(';');
}

export function videoLabel(rendition: Rendition): string {
  return `v${rendition.name}`;
}

/**
 * ffmpeg output options for one rendition: stream mapping and codecs, up to (not including) the
 * muxer options (`-f hls …`) and the output path, which the caller adds. Needs ladderFilterGraph's
 * graph for transcoded renditions. `inputIndex` is the ffmpeg input that carries the source.
 */
export function renditionOutputArgs(rendition: Rendition, options: EncodeOptions, inputIndex = 0): string[] {
  const args: string[] = [];
  if (rendition.video === 'copy') {
    args.push('-map', `${inputIndex}:v:0?`, '-c:v', 'copy');
  } else {
    const spec = rendition.spec!;
    const gop = options.keyframes.kind === 'source' ? ['-force_key_frames', 'source'] : ['-force_key_frames', `expr:gte(t,n_forced*${options.keyframes.seconds})`];
    const level = `${Math.floor(spec.level / 10)}.${spec.level % 10}`;
    args.push(
      '-map', `[${videoLabel(rendition)}]`,
      '-c:v', 'libx264',
      '-preset', options.preset ?? 'veryfast',
      ...(options.latency === 'live' ? ['-tune', 'zerolatency'] : []),
      '-profile:v', 'main', '-level:v', level,
      '-b:v', `${spec.videoKbps}k`, '-maxrate', `${maxrateKbps(spec)}k`, '-bufsize', `${spec.videoKbps * 2}k`,
      // Keyframes only where asked: no scene-cut or interval keyframes that would cut extra segments.
      ...gop, '-sc_threshold', '0', '-g', '100000', '-keyint_min', '1',
      // Same timestamps as the source: no frames dropped or duplicated, so cuts land on the same times.
      '-fps_mode', 'passthrough',
      ...(options.threads !== undefined ? ['-threads', String(options.threads)] : []),
    );
  }
  if (rendition.audio === 'none') return args;
  args.push('-map', `${inputIndex}:a:0?`);
  if (rendition.audio === 'copy') args.push('-c:a', 'copy');
  else args.push('-c:a', 'aac', '-b:a', `${rendition.spec?.audioKbps ?? 128}k`, '-ac', '2');
  return args;
}
