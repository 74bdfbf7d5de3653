/**
 * Looking at a running ingest process from outside: its playlist position, its log lines, its
 * metrics and its memory, for tests that disturb it and then check nothing else was.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { scrapeMetrics } from '../../../common/testing/metrics.ts';
import { waitFor } from '../../../common/testing/processes.ts';
import { viewPlaylist, type PlaylistView, type Stack } from '../../../common/testing/stack.ts';

/** Segments published so far: the media sequence of the first listed one plus how many are listed. */
export function position(view: PlaylistView): number {
  return view.mediaSequence + view.segments.length;
}

/**
 * Waits until `stream` has published `atLeast` segments more than at `since`, and checks that
 * it did so without a break: no discontinuity, no ENDLIST, same target duration.
 */
export async function assertStillAdvancing(stack: Stack, stream: string, since: PlaylistView, atLeast = 2, timeoutMs = 20_000): Promise<PlaylistView> {
  const now = await waitFor(`${stream} to publish ${atLeast} more segments`, async () => {
    const view = viewPlaylist(await stack.readPlaylist(stream));
    return position(view) >= position(since) + atLeast ? view : undefined;
  }, timeoutMs, 100);
  assert.equal(now.ended, false, `${stream}: no ENDLIST`);
  assert.equal(now.discontinuities, 0, `${stream}: no discontinuity`);
  assert.equal(now.discontinuitySequence, 0, `${stream}: no discontinuity left the window either`);
  assert.equal(now.targetDuration, since.targetDuration, `${stream}: target duration unchanged`);
  return now;
}

export type LogLine = Record<string, unknown>;

/** Log lines of the ingest process after the first `from` lines (take `from` = logCount(stack) before acting). */
export function logsSince(stack: Stack, from: number): LogLine[] {
  return stack.ingest.jsonLogs().slice(from);
}

export function logCount(stack: Stack): number {
  return stack.ingest.jsonLogs().length;
}

export async function waitForLog(stack: Stack, from: number, what: string, match: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
  return waitFor(`log line: ${what}`, () => logsSince(stack, from).find(match), timeoutMs, 50);
}

export function metricsText(stack: Stack): Promise<string> {
  return scrapeMetrics(stack.controlUrl);
}

export { metricValue } from '../../../common/testing/metrics.ts';

/** Resident memory of a process in MiB, from /proc. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

export async function openFds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/** Direct children of `pid` whose command is `name` (ffmpeg muxers of ingest). */
export async function childProcesses(pid: number, name: string): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may contain spaces, so split after the last ')'.
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && comm === name) out.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}
