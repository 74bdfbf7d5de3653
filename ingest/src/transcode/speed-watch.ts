/**
 * Is ffmpeg keeping real time? Reads its `-progress` output (key=value lines, one block per
 * `-stats_period`) and reports the speed over a sliding window: media time advanced ÷ wall time
 * elapsed. ffmpeg's own `speed=` is cumulative since its start, so for a live input it creeps
 * towards 1.0 and hides a recent slowdown; the window does not.
 *
 * A live input arrives at exactly 1.0x, so a transcoder that keeps up measures 1.0 ± jitter (a
 * frame or two at each end of the window) and one that cannot measures below it for as long as it
 * lags, while its backlog (wall time minus media time, above its lowest value) grows. One sample
 * means nothing: `slow` turns on when every sample for `sustainSeconds` was below `threshold` AND
 * the backlog has reached `minBacklogSeconds` (jitter never builds a second of backlog; falling
 * behind always does). It turns off when the backlog is worked off (≤ half of that) or every
 * sample for `sustainSeconds` is back at the threshold (minus 1 % jitter).
 */

export interface SpeedWatchOptions {
  /** Sliding window over which speed is computed (seconds). */
  windowSeconds?: number;
  /** How long the speed must stay below (or above) the threshold before the state changes. */
  sustainSeconds?: number;
  /** Speed under which ffmpeg is falling behind. */
  threshold?: number;
  /** Backlog (seconds behind its best) needed before `slow` (default 1). */
  minBacklogSeconds?: number;
  onSlow?: (speed: number) => void;
  onRecovered?: (speed: number) => void;
}

interface Sample {
  wallMs: number;
  mediaSeconds: number;
}

export class SpeedWatch {
  private readonly samples: Sample[] = [];
  private pendingMediaSeconds: number | null = null;
  /** Wall time since which the speed has been on the other side of the threshold (null: not). */
  private crossingSince: number | null = null;
  slow = false;
  /** Latest windowed speed (null until the window has two samples). */
  speed: number | null = null;
  /** ffmpeg's own cumulative `speed=` of the latest block. */
  cumulativeSpeed: number | null = null;
  /** Seconds ffmpeg is behind its best (lowest) lag so far. */
  backlog = 0;
  private minLag: number | null = null;
  private readonly minBacklog: number;
  private buffered = '';
  private readonly windowMs: number;
  private readonly sustainMs: number;
  private readonly threshold: number;

  constructor(private readonly options: SpeedWatchOptions = {}) {
    this.windowMs = (options.windowSeconds ?? 5) * 1000;
    this.sustainMs = (options.sustainSeconds ?? 5) * 1000;
    this.threshold = options.threshold ?? 1.0;
    this.minBacklog = options.minBacklogSeconds ?? 1;
  }

  /** Feeds raw `-progress` output (any chunking). */
  write(chunk: string, nowMs = Date.now()): void {
    this.buffered += chunk;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) !== -1) {
      this.line(this.buffered.slice(0, nl).trim(), nowMs);
      this.buffered = this.buffered.slice(nl + 1);
    }
  }

  /** One `key=value` line; `progress=continue|end` closes a block. */
  line(line: string, nowMs = Date.now()): void {
    const eq = line.indexOf('=');
    if (eq === -1) return;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'out_time_us' || key === 'out_time_ms') {
      // Both are microseconds in ffmpeg 5 (out_time_ms is misnamed); N/A before the first packet.
      const us = Number(value);
      if (Number.isFinite(us) && us >= 0) this.pendingMediaSeconds = us / 1e6;
    } else if (key === 'speed') {
      const v = Number.parseFloat(value);
      this.cumulativeSpeed = Number.isFinite(v) ? v : null;
    } else if (key === 'progress') {
      if (this.pendingMediaSeconds !== null) this.sample(nowMs, this.pendingMediaSeconds);
      this.pendingMediaSeconds = null;
    }
  }

  /** One measurement: media time ffmpeg has output by wall time `wallMs`. */
  sample(wallMs: number, mediaSeconds: number): void {
    const lag = wallMs / 1000 - mediaSeconds;
    this.minLag = this.minLag === null ? lag : Math.min(this.minLag, lag);
    this.backlog = lag - this.minLag;
    this.samples.push({ wallMs, mediaSeconds });
    while (this.samples.length > 2 && wallMs - this.samples[1]!.wallMs >= this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const elapsed = (wallMs - first.wallMs) / 1000;
    // A window shorter than half its length says little (start-up, after a restart).
    if (elapsed < this.windowMs / 2000) return;
    this.speed = (mediaSeconds - first.mediaSeconds) / elapsed;
    this.judge(wallMs, this.speed);
  }

  private judge(wallMs: number, speed: number): void {
    if (this.slow && this.backlog <= this.minBacklog / 2) return this.flip(speed);
    const crossing = this.slow ? speed >= this.threshold * 0.99 : speed < this.threshold;
    if (!crossing) {
      this.crossingSince = null;
      return;
    }
    this.crossingSince ??= wallMs;
    if (wallMs - this.crossingSince < this.sustainMs) return;
    if (!this.slow && this.backlog < this.minBacklog) return;
    this.flip(speed);
  }

  private flip(speed: number): void {
    this.crossingSince = null;
    this.slow = !this.slow;
    if (this.slow) this.options.onSlow?.(speed);
    else this.options.onRecovered?.(speed);
  }
}
