/**
 * UPLOAD_LADDER: an upload transcoded to the quality ladder (ingest/src/transcode/ladder.ts) in one
 * ffmpeg: a top rendition at the source's own size (an uploaded file's codec is arbitrary, so
 * nothing is copied), every rung below it, keyframes at the same fixed interval in all of them
 * (players switch at any segment boundary), one media playlist per rendition in <name>/ and a
 * master playlist index.m3u8 written once ffmpeg has finished.
 */
import path from 'node:path';
import { renderMasterPlaylist, renditionPlaylistUri } from '../../../common/src/hls/master-playlist.ts';
import { UPLOAD_PLAYLIST } from '../../../common/src/upload-layout.ts';
import {
  isRenditionName,
  ladderFilterGraph,
  RENDITION_PRESETS,
  renditionOutputArgs,
  renditionsFor,
  scaledWidth,
  transcodedVideoCodec,
  type Rendition,
  type RenditionSpec,
} from '../transcode/ladder.ts';

export interface LadderTranscode {
  args: string[];
  /** Rendition names, highest first (their folders under the output folder). */
  renditions: string[];
  /** The master playlist, to be written as index.m3u8 once ffmpeg succeeded. */
  masterPlaylist: string;
}

const AAC_LC = 'mp4a.40.2';

/** The rendition at the source's own size: the rung settings (bitrate, level) of the nearest preset at or above it. */
function topRendition(width: number, height: number, fps: number | null, hasAudio: boolean): Rendition | null {
  const evenHeight = Math.max(2, Math.floor(height / 2) * 2);
  const name = `${evenHeight}p`;
  if (!isRenditionName(name)) return null;
  const above = [...RENDITION_PRESETS].filter((p) => p.height >= evenHeight).sort((a, b) => a.height - b.height)[0] ?? RENDITION_PRESETS[0]!;
  const spec: RenditionSpec = { ...above, name, height: evenHeight };
  return {
    name,
    video: 'transcode',
    audio: hasAudio ? 'aac' : 'none',
    width: scaledWidth({ width, height }, evenHeight),
    height: evenHeight,
    fps,
    bandwidth: Math.round((spec.videoKbps * 1.1 + (hasAudio ? spec.audioKbps : 0)) * 1000),
    codecs: [transcodedVideoCodec(spec), ...(hasAudio ? [AAC_LC] : [])].join(','),
    spec,
  };
}

/** ffmpeg arguments and master playlist for `ladder` (null: the source size is unknown or no rendition fits; transcode without the ladder). */
export function ladderTranscode(
  ladder: readonly RenditionSpec[],
  source: { file: string; width: number | null; height: number | null; hasAudio: boolean },
  outDir: string,
  segmentSeconds: number,
): LadderTranscode | null {
  if (!source.width || !source.height) return null;
  const top = topRendition(source.width, source.height, null, source.hasAudio);
  if (top === null) return null;
  // Audio is always re-encoded (the source's codec is whatever was uploaded): an audio codec that is not AAC says so.
  const rungs = renditionsFor(ladder.filter((r) => r.height < top.height), { width: source.width, height: source.height, fps: null, videoCodec: null, audioCodec: source.hasAudio ? 'unknown' : null, bitrateKbps: null }, { includeSource: false });
  const renditions = [top, ...rungs];
  const graph = ladderFilterGraph(renditions)!;
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y', '-progress', 'pipe:1', '-nostats', '-i', source.file, '-filter_complex', graph];
  for (const r of renditions) {
    const dir = path.join(outDir, r.name);
    args.push(
      ...renditionOutputArgs(r, { keyframes: { kind: 'interval', seconds: segmentSeconds }, latency: 'file' }),
      ...(r.audio === 'none' ? [] : ['-ar', '48000']),
      '-sn', '-dn', '-map_metadata', '-1',
      '-f', 'hls', '-hls_time', String(segmentSeconds), '-hls_playlist_type', 'vod',
      '-hls_segment_type', 'fmp4', '-hls_fmp4_init_filename', 'init.mp4',
      '-hls_segment_filename', path.join(dir, 'seg-%05d.m4s'), '-hls_flags', 'independent_segments',
      path.join(dir, UPLOAD_PLAYLIST),
    );
  }
  return {
    args,
    renditions: renditions.map((r) => r.name),
    masterPlaylist: renderMasterPlaylist(renditions.map((r) => ({ ...r, uri: renditionPlaylistUri(r) }))),
  };
}
