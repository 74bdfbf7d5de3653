/**
 * CPU time of a child process (ffmpeg) from /proc/<pid>/stat: user + system seconds. Linux only;
 * elsewhere the reading is null and nothing is reported.
 */
import { readFile } from 'node:fs/promises';

/** USER_HZ: the unit of utime/stime in /proc; 100 on every Linux architecture Node supports. */
const CLOCK_TICKS = 100;

export async function processCpuSeconds(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / CLOCK_TICKS : null;
  } catch {
    return null;
  }
}

/**
 * Turns successive readings of one process into CPU seconds added and current cores
 * (CPU seconds per wall second since the previous reading).
 */
export class CpuMeter {
  private last: { wallMs: number; cpu: number } | null = null;
  cores: number | null = null;
  totalSeconds = 0;

  /** Records a reading; returns the CPU seconds used since the previous one. */
  reading(cpuSeconds: number, wallMs = Date.now()): number {
    const last = this.last;
    this.last = { wallMs, cpu: cpuSeconds };
    // First reading of a process: everything it used since it started.
    if (!last) {
      this.totalSeconds += cpuSeconds;
      return cpuSeconds;
    }
    if (cpuSeconds < last.cpu) return 0; // another process: call reset() when the pid changes
    const used = cpuSeconds - last.cpu;
    const wall = (wallMs - last.wallMs) / 1000;
    if (wall > 0) this.cores = used / wall;
    this.totalSeconds += used;
    return used;
  }

  reset(): void {
    this.last = null;
    this.cores = null;
  }
}
