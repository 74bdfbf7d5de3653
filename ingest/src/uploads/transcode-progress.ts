/**
 * ffmpeg's `-progress pipe:1` output: blocks of `key=value` lines, each block ending with
 * `progress=continue` (or `progress=end`). The position reached is `out_time_us` (microseconds of
 * output written; `out_time_ms` is, despite its name, microseconds too).
 */
export class TranscodeProgress {
  private pending = '';
  /** Seconds of output written so far. */
  outSeconds = 0;
  ended = false;

  constructor(private readonly durationSeconds: number) {}

  /** Feeds a chunk of ffmpeg's progress output (chunks may split lines anywhere). */
  push(chunk: string): void {
    const text = this.pending + chunk;
    const lines = text.split('\n');
    this.pending = lines.pop() ?? '';
    for (const line of lines) this.line(line.trim());
  }

  /** 0–100; 100 only once ffmpeg said `progress=end`, so "100 %" never shows before the output is done. */
  get percent(): number {
    if (this.ended) return 100;
    if (!(this.durationSeconds > 0)) return 0;
    return Math.max(0, Math.min(99, Math.floor((this.outSeconds / this.durationSeconds) * 100)));
  }

  private line(line: string): void {
    const eq = line.indexOf('=');
    if (eq <= 0) return;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'out_time_us' || key === 'out_time_ms') {
      const us = Number(value);
      // N/A before the first frame; never goes backwards.
      if (Number.isFinite(us) && us >= 0) this.outSeconds = Math.max(this.outSeconds, us / 1_000_000);
    } else if (key === 'progress' && value === 'end') {
      this.ended = true;
    }
  }
}
