/**
 * Soak (on demand, not part of `npm test` nor of the default `npm run bench`): the full local stack
 * (ingest + ffmpeg publisher, three web replicas, the proxy, monitoring with its embedded store)
 * under SOAK_VIEWERS steady hls.js-like viewers for SOAK_MINUTES. Every SOAK_SAMPLE_S seconds it
 * samples each process's RSS (/proc/PID/status VmRSS) and open fds (/proc/PID/fd), the V8 heap and
 * segment-cache bytes of the Node services (their /metrics), the ffmpeg processes that are children
 * of ingest (/proc/∗/stat ppid), and the viewers' window (requests, failures, stalls). At the end:
 * a verdict per process and the ffmpeg processes left behind once the stack has stopped (command line
 * pointing into its temp folder). The verdict is on the second half of the run (the steady state):
 * the least-squares trend of RSS minus the process's bounded caches (segment caches; monitoring's
 * DuckDB memory, capped by DUCKDB_MEMORY_LIMIT) over the second half, which a leak keeps climbing and
 * warm-up (JIT, allocator arenas, pools) does not. The growth from the first to the last 5 minutes
 * (medians; halves for runs under 10 minutes) is printed beside it, warm-up included.
 * Results: bench/results/soak.{json,md}.
 *
 *   SOAK_MINUTES=30 node --import tsx bench/soak.ts      (or BENCH=soak npm run bench)
 *
 * Environment: SOAK_MINUTES (30), SOAK_VIEWERS (100), SOAK_SAMPLE_S (30).
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sleep, waitFor, type ManagedProcess } from '../common/testing/processes.ts';
import { createStream, publish, startStack, waitForSegments, type Stack } from '../common/testing/stack.ts';
import { FleetProcess } from '../loadtest/node/fleet-process.ts';
import type { FleetWindow } from '../loadtest/node/fleet-stats.ts';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const VIEWERS = Number(process.env.SOAK_VIEWERS ?? 100);
const SAMPLE_S = Number(process.env.SOAK_SAMPLE_S ?? 30);
const STREAM = 'soak';
/** The comparison windows: the first and last 5 minutes, or halves of a shorter run. */
const EDGE_MS = Math.min(5 * 60_000, (MINUTES * 60_000) / 2);
const MB = 1024 * 1024;

interface ProcessSample {
  pid: number;
  rssBytes: number;
  fds: number;
  /** V8 heap in use (Node services, from /metrics); null otherwise */
  heapBytes: number | null;
  /** bytes held by the service's bounded cache (web, proxy: segment cache; monitoring: DuckDB); null otherwise */
  cacheBytes: number | null;
  /** memory of C++ objects bound to JS, Buffers included (Node services); null otherwise */
  externalBytes: number | null;
}

interface Sample {
  atMs: number;
  processes: Record<string, ProcessSample | null>;
  ingestFfmpeg: number[];
  window: FleetWindow;
  storedRecords: number | null;
}

export interface SoakVerdict {
  process: string;
  rssFirstMB: number;
  rssLastMB: number;
  rssGrowthMB: number;
  cacheGrowthMB: number | null;
  heapGrowthMB: number | null;
  externalGrowthMB: number | null;
  /** RSS minus cache over the second half: least-squares trend × the half's duration */
  steadyTrendMB: number;
  fdsFirst: number;
  fdsLast: number;
  verdict: string;
}

export interface SoakResult {
  minutes: number;
  viewers: number;
  samples: number;
  requests: number;
  failedRequests: number;
  stalls: number;
  errors: Record<string, number>;
  ingestFfmpegCounts: number[];
  verdicts: SoakVerdict[];
  orphanedFfmpeg: Array<{ pid: number; cmdline: string }>;
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  return kb === undefined ? NaN : Number(kb) * 1024;
}

async function openFds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/** Every process: pid, its parent and its command name, from /proc/∗/stat. */
async function processTable(): Promise<Array<{ pid: number; ppid: number; comm: string }>> {
  const out: Array<{ pid: number; ppid: number; comm: string }> = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const open = stat.indexOf('(');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      out.push({ pid: Number(entry), ppid: Number(fields[1]), comm: stat.slice(open + 1, close) });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

async function cmdline(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
}

/** Sums of metric series (all label sets) on a Prometheus page. */
async function metrics(url: string, names: readonly string[]): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const sums: Record<string, number> = {};
  for (const line of text.split('\n')) {
    for (const name of names) {
      if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sums[name] = (sums[name] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sums;
}

async function sampleProcess(pid: number, metricsUrl: string | null, cacheMetric: string | null): Promise<ProcessSample | null> {
  try {
    const sample: ProcessSample = { pid, rssBytes: await rssBytes(pid), fds: await openFds(pid), heapBytes: null, cacheBytes: null, externalBytes: null };
    if (metricsUrl) {
      const m = await metrics(metricsUrl, ['nodejs_heap_size_used_bytes', 'nodejs_external_memory_bytes', ...(cacheMetric ? [cacheMetric] : [])]).catch(() => ({}) as Record<string, number>);
      sample.heapBytes = m.nodejs_heap_size_used_bytes ?? null;
      sample.externalBytes = m.nodejs_external_memory_bytes ?? null;
      if (cacheMetric) sample.cacheBytes = m[cacheMetric] ?? null;
    }
    return sample;
  } catch {
    return null; // the process is gone
  }
}

function median(values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const f = (value: number | null, digits = 0): string => (value === null || !Number.isFinite(value) ? '–' : value.toFixed(digits));

export async function benchSoak(): Promise<SoakResult> {
  const stack: Stack = await startStack({ webReplicas: 3, proxy: true, monitoring: true });
  const tempDir = path.dirname(stack.mediaDir);
  let publisher: ManagedProcess | null = null;
  let fleet: FleetProcess | null = null;
  const samples: Sample[] = [];
  let stopped = false;
  try {
    const key = await createStream(stack, STREAM);
    publisher = publish(stack.publishUrl(STREAM, key));
    await waitForSegments(stack, STREAM, 4, 30_000);
    await waitFor('the stream through the proxy', async () => (await fetch(`${stack.proxyUrl}/live/${STREAM}/index.m3u8`)).status === 200, 20_000);
    fleet = new FleetProcess({ baseUrl: stack.proxyUrl!, stream: STREAM, joinPerSecond: 50 });
    await fleet.resize(VIEWERS);
    await sleep(5000);
    await fleet.take(); // the joining phase is not part of the first window

    const watched: Array<{ name: string; pid: () => number; metricsUrl: string | null; cacheMetric: string | null }> = [
      { name: 'ingest', pid: () => stack.ingest.pid, metricsUrl: stack.controlUrl, cacheMetric: null },
      ...stack.webs.map((w) => ({ name: w.process.name, pid: () => w.process.pid, metricsUrl: w.url, cacheMetric: 'web_segment_cache_bytes' })),
      { name: 'proxy', pid: () => stack.proxy!.pid, metricsUrl: stack.proxyUrl, cacheMetric: 'onair_proxy_segment_cache_bytes' },
      { name: 'monitoring', pid: () => stack.monitoring!.process.pid, metricsUrl: stack.monitoring!.url, cacheMetric: 'onair_monitoring_store_memory_bytes' },
      { name: 'publisher', pid: () => publisher!.pid, metricsUrl: null, cacheMetric: null },
      { name: 'loadgen', pid: () => fleet!.pid, metricsUrl: null, cacheMetric: null },
    ];
    const names = [...watched.map((w) => w.name), 'ffmpeg (ingest)'];
    console.log(`soak: ${VIEWERS} viewers through the proxy for ${MINUTES} min, a sample every ${SAMPLE_S} s (cells: RSS MB / open fds; temp folder ${tempDir})`);
    console.log(['  min', ...names.map((n) => n.padStart(15)), ' muxers', '  req/s', ' failed', ' stalls', '  stored'].join(' '));

    const startedAt = Date.now();
    const endAt = startedAt + MINUTES * 60_000;
    for (let next = startedAt; ; next += SAMPLE_S * 1000) {
      await sleep(Math.max(0, next - Date.now()));
      const processes: Sample['processes'] = {};
      for (const w of watched) processes[w.name] = await sampleProcess(w.pid(), w.metricsUrl, w.cacheMetric);
      const children = (await processTable()).filter((p) => p.ppid === stack.ingest.pid && p.comm === 'ffmpeg');
      const muxers = await Promise.all(children.map((c) => sampleProcess(c.pid, null, null)));
      processes['ffmpeg (ingest)'] = muxers.length === 0 ? null : {
        pid: children[0]!.pid,
        rssBytes: muxers.reduce((s, m) => s + (m?.rssBytes ?? 0), 0),
        fds: muxers.reduce((s, m) => s + (m?.fds ?? 0), 0),
        heapBytes: null,
        externalBytes: null,
        cacheBytes: null,
      };
      const stored = await metrics(stack.monitoring!.url, ['onair_monitoring_records_stored_total']).catch(() => ({}) as Record<string, number>);
      const sample: Sample = { atMs: Date.now() - startedAt, processes, ingestFfmpeg: children.map((c) => c.pid), window: await fleet.take(), storedRecords: stored.onair_monitoring_records_stored_total ?? null };
      samples.push(sample);
      const w = sample.window;
      const cell = (p: ProcessSample | null | undefined): string => (p ? `${f(p.rssBytes / MB)} / ${p.fds}` : 'gone').padStart(15);
      console.log([(sample.atMs / 60_000).toFixed(1).padStart(5), ...names.map((n) => cell(processes[n])), String(children.length).padStart(7), f(w.requests / w.seconds).padStart(7), String(w.failedRequests).padStart(7), String(w.stalls).padStart(7), f(sample.storedRecords).padStart(8)].join(' '));
      if (Date.now() >= endAt) break;
    }

    await fleet.stop();
    fleet = null;
    await publisher.stop();
    publisher = null;
    await stack.stop();
    stopped = true;
    await sleep(1000);
    // Anything ffmpeg still running whose command line points into the stack's temp folder is ours, orphaned.
    const orphanedFfmpeg: SoakResult['orphanedFfmpeg'] = [];
    for (const p of await processTable()) {
      if (p.comm !== 'ffmpeg') continue;
      const args = await cmdline(p.pid).catch(() => [] as string[]);
      if (args.some((a) => a.includes(tempDir))) orphanedFfmpeg.push({ pid: p.pid, cmdline: args.join(' ').slice(0, 300) });
    }

    const verdicts = names.map((name) => verdictOf(name, samples));
    const totals = samples.reduce(
      (t, s) => {
        t.requests += s.window.requests;
        t.failedRequests += s.window.failedRequests;
        t.stalls += s.window.stalls;
        for (const [k, v] of Object.entries(s.window.errors)) t.errors[k] = (t.errors[k] ?? 0) + (v ?? 0);
        return t;
      },
      { requests: 0, failedRequests: 0, stalls: 0, errors: {} as Record<string, number> },
    );
    const result: SoakResult = {
      minutes: MINUTES,
      viewers: VIEWERS,
      samples: samples.length,
      ...totals,
      ingestFfmpegCounts: samples.map((s) => s.ingestFfmpeg.length),
      verdicts,
      orphanedFfmpeg,
    };
    const edge = EDGE_MS >= 5 * 60_000 ? 'first 5 min vs last 5 min' : `first ${f(EDGE_MS / 60_000, 1)} min vs last ${f(EDGE_MS / 60_000, 1)} min`;
    console.log(`\nverdicts (medians, ${edge}; "beyond cache" = RSS growth minus the segment cache's own growth, which is bounded by its budget):`);
    console.table(Object.fromEntries(verdicts.map((v) => [v.process, { 'RSS first MB': f(v.rssFirstMB, 1), 'RSS last MB': f(v.rssLastMB, 1), 'cache growth MB': f(v.cacheGrowthMB, 1), 'heap growth MB': f(v.heapGrowthMB, 1), 'external growth MB': f(v.externalGrowthMB, 1), '2nd-half trend MB': f(v.steadyTrendMB, 1), 'fds first': v.fdsFirst, 'fds last': v.fdsLast, verdict: v.verdict }])));
    const muxerCounts = [...new Set(result.ingestFfmpegCounts)].sort();
    console.log(`viewers: ${totals.requests} requests, ${totals.failedRequests} failed${totals.failedRequests ? ` ${JSON.stringify(totals.errors)}` : ''}, ${totals.stalls} stalls`);
    console.log(`ffmpeg children of ingest per sample: ${muxerCounts.join(', ')} (one stream: 1 expected)`);
    console.log(orphanedFfmpeg.length === 0 ? `orphaned ffmpeg after the stack stopped: none` : `orphaned ffmpeg after the stack stopped: ${orphanedFfmpeg.length}: ${orphanedFfmpeg.map((o) => `${o.pid} ${o.cmdline}`).join('; ')}`);
    for (const o of orphanedFfmpeg) {
      try {
        process.kill(o.pid, 'SIGKILL'); // started by this run's ingest: clean up after reporting it
      } catch {
        /* already gone */
      }
    }
    const resultsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
    await mkdir(resultsDir, { recursive: true });
    await writeFile(path.join(resultsDir, 'soak.json'), `${JSON.stringify({ ...result, samples: samples.length, series: samples }, null, 1)}\n`);
    await writeFile(path.join(resultsDir, 'soak.md'), soakMarkdown(result));
    return result;
  } finally {
    await fleet?.stop().catch(() => {});
    await publisher?.stop();
    if (!stopped) await stack.stop();
  }
}

/** Least-squares slope of y over x (per unit of x); NaN with fewer than 3 points. */
function slope(points: Array<[number, number]>): number {
  if (points.length < 3) return NaN;
  const mx = points.reduce((a, [x]) => a + x, 0) / points.length;
  const my = points.reduce((a, [, y]) => a + y, 0) / points.length;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

function verdictOf(name: string, samples: Sample[]): SoakVerdict {
  const end = samples.at(-1)?.atMs ?? 0;
  const first = samples.filter((s) => s.atMs <= EDGE_MS).map((s) => s.processes[name]).filter((p): p is ProcessSample => !!p);
  const last = samples.filter((s) => s.atMs >= end - EDGE_MS).map((s) => s.processes[name]).filter((p): p is ProcessSample => !!p);
  const growth = (pick: (p: ProcessSample) => number | null): number | null => {
    const a = median(first.map(pick).filter((v): v is number => v !== null));
    const b = median(last.map(pick).filter((v): v is number => v !== null));
    return Number.isFinite(a) && Number.isFinite(b) ? (b - a) / MB : null;
  };
  const rssFirst = median(first.map((p) => p.rssBytes)) / MB;
  const rssLast = median(last.map((p) => p.rssBytes)) / MB;
  const cacheGrowth = growth((p) => p.cacheBytes);
  const heapGrowth = growth((p) => p.heapBytes);
  const externalGrowth = growth((p) => p.externalBytes);
  const fdsFirst = median(first.map((p) => p.fds));
  const fdsLast = median(last.map((p) => p.fds));
  const rssGrowth = rssLast - rssFirst;
  const beyondCache = rssGrowth - (cacheGrowth ?? 0);
  // The steady state: RSS minus the bounded cache over the second half of the run.
  const secondHalf = samples.filter((s) => s.atMs >= end / 2 && s.processes[name]);
  const halfMs = end - (secondHalf[0]?.atMs ?? end);
  const steadyTrend = (slope(secondHalf.map((s) => [s.atMs, (s.processes[name]!.rssBytes - (s.processes[name]!.cacheBytes ?? 0)) / MB])) * halfMs) || 0;
  const problems: string[] = [];
  if (first.length === 0 || last.length === 0) problems.push('not sampled at both ends');
  if (samples.some((s) => !s.processes[name])) problems.push(`gone in ${samples.filter((s) => !s.processes[name]).length} samples`);
  // A leak keeps climbing in the second half; a few MB of noise (allocator, GC timing) does not count.
  if (steadyTrend > Math.max(5, 0.03 * rssFirst)) problems.push(`RSS beyond cache still climbing: +${steadyTrend.toFixed(1)} MB over the second half`);
  if (fdsLast - fdsFirst > 5) problems.push(`fds +${fdsLast - fdsFirst}`);
  const signed = (v: number): string => `${v >= 0 ? '+' : ''}${v.toFixed(1)}`;
  return {
    process: name,
    rssFirstMB: rssFirst,
    rssLastMB: rssLast,
    rssGrowthMB: rssGrowth,
    cacheGrowthMB: cacheGrowth,
    heapGrowthMB: heapGrowth,
    externalGrowthMB: externalGrowth,
    steadyTrendMB: steadyTrend,
    fdsFirst,
    fdsLast,
    verdict: problems.length === 0 ? `flat (second half ${signed(steadyTrend)} MB beyond cache; first→last ${signed(beyondCache)} MB; fds ${signed(fdsLast - fdsFirst).replace('.0', '')})` : `CHECK: ${problems.join(', ')}`,
  };
}

/** bench/results/soak.md: the run's figures as a table. */
function soakMarkdown(result: SoakResult): string {
  const cell = (v: number | null, digits = 1): string => f(v, digits);
  return [
    `# Soak: ${result.viewers} viewers for ${result.minutes} min (${new Date().toISOString()})`,
    '',
    `${result.requests} viewer requests, ${result.failedRequests} failed, ${result.stalls} stalls; ffmpeg children of ingest per sample: ${[...new Set(result.ingestFfmpegCounts)].join(', ')}; orphaned ffmpeg after stop: ${result.orphanedFfmpeg.length}`,
    '',
    '| process | RSS first → last MB | cache growth MB | heap growth MB | external growth MB | second-half trend beyond cache MB | fds | verdict |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...result.verdicts.map((v) => `| ${v.process} | ${cell(v.rssFirstMB)} → ${cell(v.rssLastMB)} | ${cell(v.cacheGrowthMB)} | ${cell(v.heapGrowthMB)} | ${cell(v.externalGrowthMB)} | ${cell(v.steadyTrendMB)} | ${v.fdsFirst} → ${v.fdsLast} | ${v.verdict} |`),
    '',
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await benchSoak();
}
