/** CPU time of a process from /proc (Linux): user + system seconds since it started. */
import { readFile } from 'node:fs/promises';

const CLOCK_TICKS = 100; // USER_HZ on Linux

export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime + stime
}

/** CPU seconds of several named processes; a process that is gone counts as 0. */
export async function cpuSnapshot(pids: Record<string, number[]>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, list] of Object.entries(pids)) {
    let sum = 0;
    for (const pid of list) sum += await cpuSeconds(pid).catch(() => 0);
    out[name] = sum;
  }
  return out;
}
