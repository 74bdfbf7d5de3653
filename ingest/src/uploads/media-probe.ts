/**
 * Is an uploaded file a video we can transcode? ffprobe reads its container and streams (not the
 * whole file: seconds even for gigabytes); judgeProbe decides from ffprobe's JSON.
 */
import { execFile } from 'node:child_process';

const PROBE_TIMEOUT_MS = 30_000;

export interface ProbedVideo {
  durationSeconds: number;
  width: number | null;
  height: number | null;
  hasAudio: boolean;
}

export type ProbeVerdict = { ok: true; video: ProbedVideo } | { ok: false; problem: string };

interface FfprobeStream {
  codec_type?: string;
  width?: number;
  height?: number;
  duration?: string;
  disposition?: { attached_pic?: number };
}

interface FfprobeOutput {
  streams?: FfprobeStream[];
  format?: { duration?: string };
}

/**
 * The verdict on ffprobe's `-show_format -show_streams` JSON (null: ffprobe could not read the file
 * at all). A cover picture inside an audio file (`attached_pic`) is not a video stream.
 */
export function judgeProbe(output: FfprobeOutput | null): ProbeVerdict {
  if (output === null) return { ok: false, problem: 'ffprobe could not read it as a media file' };
  const streams = output.streams ?? [];
  const video = streams.find((s) => s.codec_type === 'video' && s.disposition?.attached_pic !== 1);
  if (!video) return { ok: false, problem: 'ffprobe found no video stream' };
  const duration = Number(output.format?.duration ?? video.duration);
  if (!Number.isFinite(duration) || duration <= 0) return { ok: false, problem: 'ffprobe found no duration (a still image or a broken file)' };
  return {
    ok: true,
    video: {
      durationSeconds: duration,
      width: typeof video.width === 'number' ? video.width : null,
      height: typeof video.height === 'number' ? video.height : null,
      hasAudio: streams.some((s) => s.codec_type === 'audio'),
    },
  };
}

/** Runs ffprobe on `file`. A file ffprobe cannot parse is a verdict, not an error; a missing ffprobe is an error. */
export function probeMedia(ffprobePath: string, file: string): Promise<ProbeVerdict> {
  return new Promise((resolve, reject) => {
    execFile(
      ffprobePath,
      ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', file],
      { timeout: PROBE_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 8 * 1024 * 1024 },
      (err, stdout) => {
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return reject(new Error(`ffprobe not found at FFPROBE_PATH=${ffprobePath}`));
        if (err && err.killed) return resolve({ ok: false, problem: 'ffprobe took too long to read it' });
        let parsed: FfprobeOutput | null = null;
        try {
          parsed = err ? null : (JSON.parse(stdout) as FfprobeOutput);
        } catch {
          parsed = null;
        }
        resolve(judgeProbe(parsed));
      },
    );
  });
}
