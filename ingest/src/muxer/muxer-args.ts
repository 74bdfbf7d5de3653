/**
 * ffmpeg command lines of a live broadcast. Input: the publisher's FLV on stdin (the in-process
 * tap). Output: fragmented MP4 on a pipe per rendition (fd 3, 4, …), one fragment per sample, which
 * ingest cuts into HLS parts and segments itself (muxer/part-cutter.ts): ffmpeg 5.1 cannot write
 * Apple LL-HLS, and a pipe tells ingest of every frame the moment ffmpeg has it (no playlist to poll).
 *
 * Passthrough copies the streams (no re-encode). A quality ladder decodes once, copies the source
 * into the first output and scales/encodes every other rendition with keyframes where the source
 * has them and the source's timestamps, so every output is cut at the same times.
 */
import { ladderFilterGraph, renditionOutputArgs, type Rendition } from '../transcode/ladder.ts';

/** Global options that make ffmpeg report its progress (for SpeedWatch) once a second on stdout. */
export const PROGRESS_ARGS: readonly string[] = ['-progress', 'pipe:1', '-stats_period', '1'];

/** The first output pipe's file descriptor; rendition i writes to FIRST_OUTPUT_FD + i. */
export const FIRST_OUTPUT_FD = 3;

/** ffmpeg's input options: FLV on stdin. */
export function muxerInputArgs(): string[] {
  return [
    '-hide_banner', '-nostats', '-loglevel', 'warning',
    // The tap starts with metadata and sequence headers: codec parameters are known at once. Without
    // -fpsprobesize 0 and -analyzeduration 0 ffmpeg holds the first ~1.3 s of input to estimate the
    // frame rate before it writes anything (measured), which would delay the first part by that much.
    '-probesize', '262144', '-analyzeduration', '0', '-fpsprobesize', '0',
    '-f', 'flv', '-i', 'pipe:0',
  ];
}

/**
 * One fragmented-MP4 output on pipe `fd`: ftyp+moov first (empty_moov: the init segment before any
 * media), then a moof+mdat per sample (-frag_duration 1 µs: every packet ends the fragment of its
 * track; measured with 5.1 to give continuous decode times, unlike frag_every_frame), written at once.
 */
export function fmp4OutputArgs(fd: number): string[] {
  return ['-f', 'mp4', '-movflags', 'empty_moov+default_base_moof+skip_trailer', '-frag_duration', '1', '-flush_packets', '1', `pipe:${fd}`];
}

/** Passthrough: the publisher's video and audio copied into one output. */
export function passthroughArgs(): string[] {
  return [...PROGRESS_ARGS, ...muxerInputArgs(), '-map', '0:v?', '-map', '0:a?', '-c', 'copy', ...fmp4OutputArgs(FIRST_OUTPUT_FD)];
}

/** A quality ladder: one output per rendition, in the order given (highest first). */
export function ladderArgs(renditions: readonly Rendition[], preset: string): string[] {
  const graph = ladderFilterGraph(renditions);
  return [
    ...PROGRESS_ARGS,
    ...muxerInputArgs(),
    ...(graph ? ['-filter_complex', graph] : []),
    ...renditions.flatMap((rendition, i) => [...renditionOutputArgs(rendition, { keyframes: { kind: 'source' }, latency: 'live', preset }), ...fmp4OutputArgs(FIRST_OUTPUT_FD + i)]),
  ];
}
