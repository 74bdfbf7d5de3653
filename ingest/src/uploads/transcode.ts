/**
 * One upload's transcode: ffmpeg re-encodes the staged file to fMP4 HLS VOD (H.264 + AAC, a
 * keyframe at every segment boundary so segments are exactly UPLOAD_SEGMENT_SECONDS), niced so a
 * live broadcast's remux and the web tier keep the CPU they need.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import path from 'node:path';
import type { Logger } from '../../../common/src/logger.ts';
import { UPLOAD_PLAYLIST } from '../../../common/src/upload-layout.ts';
import { TranscodeProgress } from './transcode-progress.ts';

export interface TranscodePlan {
  source: string;
  outDir: string;
  segmentSeconds: number;
  hasAudio: boolean;
}

/** Widest picture we keep (larger sources are scaled down, aspect kept, even dimensions for yuv420p). */
const MAX_WIDTH = 1920;

/** The ffmpeg arguments of a single-rendition transcode (pure: tested without ffmpeg). */
export function transcodeArgs(plan: TranscodePlan): string[] {
  const seg = plan.segmentSeconds;
  return [
    '-hide_banner', '-nostdin', '-loglevel', 'error', '-y',
    '-i', plan.source,
    '-map', '0:v:0', ...(plan.hasAudio ? ['-map', '0:a:0'] : []),
    '-sn', '-dn', '-map_metadata', '-1',
    '-vf', `scale='trunc(min(${MAX_WIDTH},iw)/2)*2':-2,format=yuv420p`,
    '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '21', '-maxrate', '6M', '-bufsize', '12M', '-profile:v', 'high',
    // A keyframe exactly at every segment boundary, none from scene cuts: segments of equal length.
    '-force_key_frames', `expr:gte(t,n_forced*${seg})`, '-sc_threshold', '0',
    ...(plan.hasAudio ? ['-c:a', 'aac', '-b:a', '128k', '-ac', '2', '-ar', '48000'] : []),
    ...hlsOutputArgs(seg, plan.outDir),
    path.join(plan.outDir, UPLOAD_PLAYLIST),
  ];
}

/** fMP4 VOD playlist output (EXT-X-PLAYLIST-TYPE:VOD, EXT-X-ENDLIST) and progress on stdout. */
export function hlsOutputArgs(segmentSeconds: number, outDir: string): string[] {
  return [
    '-f', 'hls', '-hls_time', String(segmentSeconds), '-hls_playlist_type', 'vod',
    '-hls_segment_type', 'fmp4', '-hls_fmp4_init_filename', 'init.mp4',
    '-hls_segment_filename', path.join(outDir, 'seg-%05d.m4s'), '-hls_flags', 'independent_segments',
    '-progress', 'pipe:1', '-nostats',
  ];
}

export interface RunningTranscode {
  readonly progress: TranscodeProgress;
  /** Resolves when ffmpeg exited 0; rejects with ffmpeg's last error lines otherwise. */
  readonly done: Promise<void>;
  cancel(): void;
}

/** Starts ffmpeg with `args`, lowers its priority to `nice`, follows its progress. */
export function runTranscode(ffmpegPath: string, args: string[], durationSeconds: number, nice: number, logger: Logger): RunningTranscode {
  const progress = new TranscodeProgress(durationSeconds);
  let cancelled = false;
  const child: ChildProcess = spawn(ffmpegPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid !== undefined && nice > 0) {
    try {
      setPriority(child.pid, nice);
    } catch (err) {
      logger.warn({ err, pid: child.pid }, 'could not lower the priority of an upload transcode');
    }
  }
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => progress.push(chunk));
  let errorTail = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    errorTail = (errorTail + chunk).slice(-2000);
  });
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`ffmpeg could not start: ${err.message}`)));
    child.once('close', (code, signal) => {
      if (cancelled) return reject(new Error('cancelled'));
      if (code === 0) return resolve();
      const last = errorTail.trim().split('\n').slice(-3).join(' | ');
      reject(new Error(`ffmpeg failed (${signal ?? `exit code ${code}`})${last ? `: ${last}` : ''}`));
    });
  });
  return {
    progress,
    done,
    cancel() {
      cancelled = true;
      child.kill('SIGKILL');
    },
  };
}
