/**
 * The ffmpeg command line of a live broadcast with a quality ladder: one process reads the FLV tap
 * once, copies the source into its own output and decodes/scales/encodes every other rendition,
 * each output an HLS muxer in its own folder with the same segment options. Keyframes of the
 * transcoded renditions are forced where the source has them, so all outputs cut alike.
 */
import path from 'node:path';
import { hlsOutputArgs, muxerInputArgs } from '../hls/muxer-run.ts';
import { ladderFilterGraph, renditionOutputArgs, type Rendition } from './ladder.ts';

/** Global options that make ffmpeg report its progress (for SpeedWatch) once a second on stdout. */
export const PROGRESS_ARGS: readonly string[] = ['-progress', 'pipe:1', '-stats_period', '1'];

export interface LiveLadderArgsOptions {
  run: string;
  workDir: string;
  segmentSeconds: number;
  renditions: readonly Rendition[];
  /** x264 preset for the transcoded renditions. */
  preset: string;
}

export function liveLadderArgs(options: LiveLadderArgsOptions): string[] {
  const graph = ladderFilterGraph(options.renditions);
  return [
    ...PROGRESS_ARGS,
    ...muxerInputArgs(),
    ...(graph ? ['-filter_complex', graph] : []),
    ...options.renditions.flatMap((rendition) => [
      ...renditionOutputArgs(rendition, { keyframes: { kind: 'source' }, latency: 'live', preset: options.preset }),
      ...hlsOutputArgs(options.run, path.join(options.workDir, rendition.name), options.segmentSeconds),
    ]),
  ];
}
