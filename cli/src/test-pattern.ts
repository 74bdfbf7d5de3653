import { spawn, type ChildProcess } from 'node:child_process';

/**
 * A synthetic broadcaster: ffmpeg draws a test pattern with a running wall clock (and the
 * millisecond-of-day, for reading glass-to-glass latency off a screenshot), encodes it the way
 * we tell OBS users to (H.264, fixed keyframe interval, no B-frames, CBR; AAC audio) and
 * publishes it over RTMP. Used by `onair up`'s demo and by the tests.
 */
export interface TestPatternOptions {
  /** rtmp://host:port/live/<stream>?key=<secret> */
  url: string;
  width?: number;
  height?: number;
  fps?: number;
  keyframeSeconds?: number;
  videoKbps?: number;
  /** Stop after this many seconds; unset = until stopped. */
  durationSeconds?: number;
  /** Draw the clock overlay (costs a little CPU). */
  clock?: boolean;
  label?: string;
  /** Pace the input at real time (default); false encodes as fast as possible, e.g. into a file. */
  realtime?: boolean;
}

export function testPatternArgs(options: TestPatternOptions): string[] {
  const width = options.width ?? 1280;
  const height = options.height ?? 720;
  const fps = options.fps ?? 30;
  const keyframeSeconds = options.keyframeSeconds ?? 1;
  const kbps = options.videoKbps ?? 2500;
  const gop = Math.max(1, Math.round(fps * keyframeSeconds));
  let video = `testsrc2=size=${width}x${height}:rate=${fps}`;
  if (options.clock !== false) {
    // Millisecond of the day at the moment the frame was generated (input is paced by -re).
    const now = new Date();
    const msOfDay = ((now.getHours() * 60 + now.getMinutes()) * 60 + now.getSeconds()) * 1000 + now.getMilliseconds();
    const big = Math.max(16, Math.round(height / 14));
    const label = (options.label ?? 'onair demo').replace(/[^A-Za-z0-9 _-]/g, '');
    video +=
      `,drawtext=font=monospace:fontsize=${big}:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=8:x=24:y=24:text='${label}  %{localtime\\:%X}'` +
      `,drawtext=font=monospace:fontsize=${Math.round(big * 0.7)}:fontcolor=yellow:box=1:boxcolor=black@0.6:boxborderw=6:x=24:y=${24 + big + 24}:text='ms of day %{eif\\:mod(t*1000+${msOfDay}\\,86400000)\\:d\\:8}'`;
  }
  const pace = options.realtime === false ? [] : ['-re'];
  const args = ['-hide_banner', '-loglevel', 'error', '-nostats', ...pace, '-f', 'lavfi', '-i', video, ...pace, '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'];
  if (options.durationSeconds !== undefined) args.push('-t', String(options.durationSeconds));
  args.push(
    '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-profile:v', 'high', '-pix_fmt', 'yuv420p',
    '-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0', '-bf', '0',
    '-b:v', `${kbps}k`, '-maxrate', `${kbps}k`, '-bufsize', `${kbps}k`, '-x264-params', 'nal-hrd=cbr',
    '-c:a', 'aac', '-b:a', '128k', '-ar', '48000', '-ac', '2',
    '-f', 'flv', options.url,
  );
  return args;
}

export function spawnTestPattern(options: TestPatternOptions, ffmpegPath = 'ffmpeg'): ChildProcess {
  return spawn(ffmpegPath, testPatternArgs(options), { stdio: ['ignore', 'pipe', 'pipe'] });
}
