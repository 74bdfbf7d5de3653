/**
 * Capacity: how many hls.js-like viewers the local stack (ingest, 3 web replicas, proxy,
 * monitoring with its embedded store) holds at the SLO on this machine, for one 720p30 stream of
 * about 2.6 Mbit/s (a 2.5 Mbit/s OBS-like encode with 1 s keyframes, published from a file so the
 * publisher costs no encoding CPU).
 *
 * Ramps viewers (the Node runner in its own process, each viewer on its own 127.0.x.y address)
 * until the SLO breaks, refines between the last held and the first broken step, then runs the
 * same load direct to one web replica and through the proxy to measure the proxy's overhead.
 * Writes bench/results/capacity.json and capacity.md.
 *
 * Environment: BENCH_CAPACITY_START (50), BENCH_CAPACITY_MAX (4000), BENCH_CAPACITY_HOLD_S (20),
 * BENCH_CAPACITY_REFINE (2 bisection steps), BENCH_CAPACITY_VIDEO_KBPS (2500).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { testPatternArgs } from '../cli/src/test-pattern.ts';
import { makeTempDir, ManagedProcess, REPO_ROOT, sleep, waitFor } from '../common/testing/processes.ts';
import { createStream, ingestStreams, startStack, waitForSegments, type Stack } from '../common/testing/stack.ts';
import type { FleetWindow } from '../loadtest/node/fleet-stats.ts';
import { FleetProcess } from '../loadtest/node/fleet-process.ts';
import { evaluateSlo, type SloVerdict } from '../loadtest/node/slo.ts';
import { SLO } from '../loadtest/lib/viewer.js';
import { NGINX_BINARY, startNginxOrigin } from './nginx-origin.ts';
import { cpuSnapshot } from './proc-cpu.ts';

const START = Number(process.env.BENCH_CAPACITY_START ?? 50);
const MAX = Number(process.env.BENCH_CAPACITY_MAX ?? 4000);
const HOLD_S = Number(process.env.BENCH_CAPACITY_HOLD_S ?? 20);
const SETTLE_S = 5;
const REFINE = Number(process.env.BENCH_CAPACITY_REFINE ?? 2);
const VIDEO_KBPS = Number(process.env.BENCH_CAPACITY_VIDEO_KBPS ?? 2500);
/** CPU (cores) the single-process load generator may need at the next step before the ramp stops. */
const GENERATOR_CORE_BUDGET = 0.9;

interface StepResult {
  viewers: number;
  held: boolean;
  broken: string[];
  requestsPerSecond: number;
  egressMBps: number;
  downloadRatioP95: number;
  segmentMsP50: number;
  segmentMsP99: number;
  playlistMsP50: number;
  playlistMsP99: number;
  stalls: number;
  failedRequests: number;
  /** CPU seconds per second (cores busy) per component during the hold. */
  cpu: Record<string, number>;
}

export interface CapacityResult {
  machine: Record<string, string | number>;
  stream: { videoKbps: number; inputKbps: number; segmentSeconds: number };
  slo: typeof SLO;
  viewersHeld: number;
  firstBroken: number | null;
  /** The ramp stopped because the load generator, not the stack, was near its limit: viewersHeld is a floor. */
  generatorLimited: boolean;
  atCapacity: StepResult | null;
  steps: StepResult[];
  proxyOverhead: {
    viewers: number;
    direct: StepResult;
    proxied: StepResult;
    segmentP50Ratio: number;
    segmentP99Ratio: number;
    /** (proxy + web CPU) per GB through the proxy ÷ web CPU per GB direct */
    cpuPerGbRatio: number;
  } | null;
  /** The same ramp against nginx serving MEDIA_DIR (null when nginx is not installed). */
  nginx: { viewersHeld: number; firstBroken: number | null; generatorLimited: boolean; atCapacity: StepResult | null; steps: StepResult[] } | null;
}

/** Doubles the viewers until the SLO breaks, then bisects between the last held and the first broken. */
async function rampUntilBroken(
  measure: (viewers: number) => Promise<StepResult>,
  resize: (viewers: number) => Promise<void>,
): Promise<{ held: number; broken: number | null; steps: StepResult[]; generatorLimited: boolean }> {
  const steps: StepResult[] = [];
  let held = 0;
  let broken: number | null = null;
  let generatorLimited = false;
  for (let viewers = START; viewers <= MAX; viewers *= 2) {
    const step = await measure(viewers);
    steps.push(step);
    if (!step.held) {
      broken = viewers;
      break;
    }
    held = viewers;
    // The load generator is one Node process on the same cores: when twice the viewers would need more
    // than ~0.9 of a core, a broken SLO at the next step would measure the generator, not the stack.
    if ((step.cpu.loadgen ?? 0) * 2 > GENERATOR_CORE_BUDGET) {
      generatorLimited = true;
      console.log(`  stopping: the load generator used ${(step.cpu.loadgen ?? 0).toFixed(2)} core for ${viewers} viewers; twice as many would need more than ${GENERATOR_CORE_BUDGET}`);
      break;
    }
  }
  for (let i = 0; i < REFINE && broken !== null && broken - held > Math.max(10, held * 0.1); i++) {
    const viewers = Math.round((held + broken) / 2 / 10) * 10;
    // Back down below the probe first, so the probe is a ramp from a held state, not a recovery.
    await resize(Math.min(held, viewers));
    await sleep(SETTLE_S * 1000);
    const step = await measure(viewers);
    steps.push(step);
    if (step.held) held = viewers;
    else broken = viewers;
  }
  return { held, broken, steps, generatorLimited };
}

export async function benchCapacity(): Promise<CapacityResult> {
  const temp = await makeTempDir('bench-capacity');
  const clip = path.join(temp.dir, 'clip.flv');
  await encodeClip(clip);
  const stack = await startStack({ webReplicas: 3, proxy: true, monitoring: true });
  let publisher: ManagedProcess | null = null;
  const fleets: FleetProcess[] = [];
  try {
    const key = await createStream(stack, 'capacity');
    publisher = publishLoop(clip, stack.publishUrl('capacity', key));
    await waitForSegments(stack, 'capacity', 4, 30_000);
    const status = await waitFor('muxer', async () => (await ingestStreams(stack)).find((s) => s.stream === 'capacity' && s.muxer?.pid && s.bitrateKbps));
    const pids = (): Record<string, number[]> => ({
      proxy: [stack.proxy!.pid],
      web: stack.webs.map((w) => w.process.pid),
      ingest: [stack.ingest.pid, status.muxer.pid as number],
      monitoring: [stack.monitoring!.process.pid],
      publisher: [publisher!.pid],
      loadgen: fleets.map((f) => f.pid),
      ...(nginxPids.length > 0 ? { nginx: nginxPids } : {}),
    });
    let nginxPids: number[] = [];

    const fleet = new FleetProcess({ baseUrl: stack.proxyUrl!, stream: 'capacity' });
    fleets.push(fleet);
    const steps: StepResult[] = [];
    const measure = async (viewers: number, through: FleetProcess): Promise<StepResult> => {
      await through.resize(viewers);
      await sleep(SETTLE_S * 1000);
      await through.take();
      const cpu0 = await cpuSnapshot(pids());
      await sleep(HOLD_S * 1000);
      const window = await through.take();
      const cpu1 = await cpuSnapshot(pids());
      const step = summarize(window, evaluateSlo(window), cpu0, cpu1);
      console.log(`  ${String(viewers).padStart(5)} viewers: ${step.held ? 'held  ' : 'BROKEN'} ${step.requestsPerSecond.toFixed(0)} req/s, ${step.egressMBps.toFixed(1)} MB/s, ratio p95 ${step.downloadRatioP95.toFixed(3)}, segment p50/p99 ${step.segmentMsP50.toFixed(0)}/${step.segmentMsP99.toFixed(0)} ms, CPU ${Object.entries(step.cpu).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}${step.held ? '' : ` — ${step.broken.join('; ')}`}`);
      return step;
    };

    const onair = await rampUntilBroken((viewers) => measure(viewers, fleet), (viewers) => fleet.resize(viewers));
    steps.push(...onair.steps);
    const held = onair.held;
    const broken = onair.broken;
    const generatorLimited = onair.generatorLimited;
    await fleet.resize(0);

    // The proxy's overhead: the same load through the proxy and direct to one web replica.
    let proxyOverhead: CapacityResult['proxyOverhead'] = null;
    const compareAt = Math.max(20, Math.min(200, Math.floor(held / 2)));
    if (held > 0) {
      await sleep(3000);
      const proxied = await measure(compareAt, fleet);
      await fleet.resize(0);
      const direct = new FleetProcess({ baseUrl: stack.webs[0]!.url, stream: 'capacity' });
      fleets.push(direct);
      await sleep(3000);
      const directStep = await measure(compareAt, direct);
      await direct.resize(0);
      const perGb = (s: StepResult, parts: string[]): number => parts.reduce((sum, p) => sum + (s.cpu[p] ?? 0), 0) / (s.egressMBps / 1000);
      proxyOverhead = {
        viewers: compareAt,
        direct: directStep,
        proxied,
        segmentP50Ratio: proxied.segmentMsP50 / directStep.segmentMsP50,
        segmentP99Ratio: proxied.segmentMsP99 / directStep.segmentMsP99,
        cpuPerGbRatio: perGb(proxied, ['proxy', 'web']) / perGb(directStep, ['web']),
      };
    }

    // The bar: nginx serving the same files from MEDIA_DIR, same viewers, same SLO.
    let nginx: CapacityResult['nginx'] = null;
    const origin = process.env.BENCH_CAPACITY_NGINX === '0' ? null : await startNginxOrigin(stack.mediaDir, temp.dir);
    if (origin) {
      try {
        nginxPids = await origin.pids();
        const viaNginx = new FleetProcess({ baseUrl: origin.url, stream: 'capacity' });
        fleets.push(viaNginx);
        await sleep(3000);
        console.log('  nginx serving the same files:');
        const ramp = await rampUntilBroken((viewers) => measure(viewers, viaNginx), (viewers) => viaNginx.resize(viewers));
        await viaNginx.resize(0);
        nginx = { viewersHeld: ramp.held, firstBroken: ramp.broken, generatorLimited: ramp.generatorLimited, atCapacity: [...ramp.steps].reverse().find((s) => s.viewers === ramp.held) ?? null, steps: ramp.steps };
      } finally {
        nginxPids = [];
        await origin.stop();
      }
    } else {
      console.log(`  (no nginx comparison: ${NGINX_BINARY} missing, apt-get install nginx-light, or BENCH_CAPACITY_NGINX=0)`);
    }

    const inputKbps = (await ingestStreams(stack)).find((s) => s.stream === 'capacity')?.bitrateKbps ?? 0;
    const result: CapacityResult = {
      machine: machine(),
      stream: { videoKbps: VIDEO_KBPS, inputKbps, segmentSeconds: 1 },
      slo: SLO,
      viewersHeld: held,
      firstBroken: broken,
      generatorLimited,
      atCapacity: [...steps].reverse().find((s) => s.viewers === held) ?? null,
      steps,
      proxyOverhead,
      nginx,
    };
    await writeResults(result);
    return result;
  } finally {
    for (const fleet of fleets) await fleet.stop().catch(() => {});
    await publisher?.stop();
    await stack.stop();
    await temp.remove();
  }
}

function summarize(w: FleetWindow, verdict: SloVerdict, cpu0: Record<string, number>, cpu1: Record<string, number>): StepResult {
  const cpu: Record<string, number> = {};
  for (const name of Object.keys(cpu1)) cpu[name] = (cpu1[name]! - (cpu0[name] ?? 0)) / w.seconds;
  return {
    viewers: w.viewers,
    held: verdict.held,
    broken: verdict.broken,
    requestsPerSecond: w.requests / w.seconds,
    egressMBps: w.bytes / w.seconds / 1e6,
    downloadRatioP95: w.downloadRatio.p95,
    segmentMsP50: w.segmentMs.p50,
    segmentMsP99: w.segmentMs.p99,
    playlistMsP50: w.playlistMs.p50,
    playlistMsP99: w.playlistMs.p99,
    stalls: w.stalls,
    failedRequests: w.failedRequests,
    cpu,
  };
}

/** A 20 s OBS-like clip (H.264 CBR, 1 s keyframes, no B-frames, AAC), encoded once. */
export async function encodeClip(file: string): Promise<void> {
  const args = testPatternArgs({ url: file, width: 1280, height: 720, fps: 30, videoKbps: VIDEO_KBPS, keyframeSeconds: 1, clock: false, durationSeconds: 20, realtime: false });
  const child = spawn('ffmpeg', ['-y', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`encoding the clip failed: ${stderr}`);
}

/** Publishes the clip in a loop at real time without re-encoding (the publisher costs ~no CPU). */
export function publishLoop(clip: string, url: string): ManagedProcess {
  const child = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostats', '-re', '-stream_loop', '-1', '-i', clip, '-c', 'copy', '-f', 'flv', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new ManagedProcess('publisher', child);
}

function machine(): Record<string, string | number> {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    date: new Date().toISOString().slice(0, 10),
  };
}

async function writeResults(result: CapacityResult): Promise<void> {
  const dir = path.join(REPO_ROOT, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'capacity.json'), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(path.join(dir, 'capacity.md'), markdown(result));
}

export function markdown(r: CapacityResult): string {
  const f = (n: number | undefined, d = 0): string => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(d));
  const cap = r.atCapacity;
  const cpuCell = (s: StepResult): string => Object.entries(s.cpu).map(([k, v]) => `${k} ${f(v, 2)}`).join(', ');
  const lines = [
    `# Capacity (${r.machine.date}, ${r.machine.cores} × ${r.machine.cpu}, ${r.machine.memoryGiB} GiB, Node ${r.machine.node})`,
    '',
    `One ${f(r.stream.inputKbps)} kbit/s stream (720p30, 1 s segments, fMP4); viewers behave like hls.js (loadtest/lib/viewer.js), each on its own 127.0.x.y address; everything (stack, load generator, publisher) on this one machine.`,
    `SLO: p95 segment download time < ${r.slo.downloadRatioP95} × segment duration, ${r.slo.stalls} stalls, < ${100 * r.slo.errorRate} % failed requests over a ${HOLD_S} s hold.`,
    '',
    '| figure | value |',
    '| --- | --- |',
    `| viewers held at SLO | **${r.viewersHeld}**${r.firstBroken !== null ? ` (broke at ${r.firstBroken})` : r.generatorLimited ? ' or more (never broke; the ramp stopped where the load generator would have needed more than a core)' : ' (never broke up to the maximum tried)'} |`,
  ];
  if (cap) {
    lines.push(
      `| requests/s at that load | ${f(cap.requestsPerSecond)} |`,
      `| egress | ${f(cap.egressMBps, 1)} MB/s (${f(cap.egressMBps * 8)} Mbit/s) |`,
      `| segment time p50 / p99 | ${f(cap.segmentMsP50)} / ${f(cap.segmentMsP99)} ms |`,
      `| playlist time p50 / p99 | ${f(cap.playlistMsP50)} / ${f(cap.playlistMsP99)} ms |`,
      `| CPU (cores busy) | ${cpuCell(cap)} |`,
    );
  }
  if (r.proxyOverhead) {
    const o = r.proxyOverhead;
    lines.push(
      `| proxy overhead at ${o.viewers} viewers: segment p50 / p99 through the proxy ÷ direct to one replica | ${f(o.segmentP50Ratio, 2)} / ${f(o.segmentP99Ratio, 2)} (${f(o.proxied.segmentMsP50, 1)}/${f(o.proxied.segmentMsP99, 1)} vs ${f(o.direct.segmentMsP50, 1)}/${f(o.direct.segmentMsP99, 1)} ms) |`,
      `| proxy overhead: CPU per GB delivered, proxy + web ÷ web alone | ${f(o.cpuPerGbRatio, 2)} |`,
    );
  }
  if (r.nginx) {
    const n = r.nginx;
    lines.push(
      `| nginx serving the same files (sendfile, one worker per core): viewers held | ${n.viewersHeld}${n.firstBroken !== null ? ` (broke at ${n.firstBroken})` : n.generatorLimited ? ' or more (load generator limit)' : ''}${r.generatorLimited || n.generatorLimited ? ' (a floor: no ratio)' : `; onair ÷ nginx = ${f(r.viewersHeld / n.viewersHeld, 2)}`} |`,
    );
    // Where both held the same load: CPU per GB delivered, the delivery tier only (proxy + web vs nginx).
    const common = [...r.steps].reverse().find((s) => s.held && n.steps.some((m) => m.held && m.viewers === s.viewers));
    const theirs = common && n.steps.find((m) => m.held && m.viewers === common.viewers);
    if (common && theirs) {
      const perGb = (s: StepResult, parts: string[]): number => parts.reduce((sum, p) => sum + (s.cpu[p] ?? 0), 0) / (s.egressMBps / 1000);
      const ours = perGb(common, ['proxy', 'web']);
      const nginxPerGb = perGb(theirs, ['nginx']);
      lines.push(`| CPU per GB delivered at ${common.viewers} viewers: proxy + web vs nginx | ${f(ours, 2)} vs ${f(nginxPerGb, 2)} core-seconds (${f(ours / nginxPerGb, 1)}×) |`);
    }
    if (n.atCapacity) lines.push(`| nginx at its capacity: segment p50/p99, CPU | ${f(n.atCapacity.segmentMsP50)}/${f(n.atCapacity.segmentMsP99)} ms, ${cpuCell(n.atCapacity)} |`);
  }
  lines.push('', '| viewers | SLO | req/s | MB/s | ratio p95 | segment p50/p99 ms | CPU (cores) |', '| --- | --- | --- | --- | --- | --- | --- |');
  for (const s of [...r.steps, ...(r.nginx?.steps.map((step) => ({ ...step, viewers: `${step.viewers} (nginx)` as unknown as number })) ?? [])]) lines.push(`| ${s.viewers} | ${s.held ? 'held' : `broken: ${s.broken.join('; ')}`} | ${f(s.requestsPerSecond)} | ${f(s.egressMBps, 1)} | ${f(s.downloadRatioP95, 3)} | ${f(s.segmentMsP50)}/${f(s.segmentMsP99)} | ${cpuCell(s)} |`);
  return `${lines.join('\n')}\n`;
}
