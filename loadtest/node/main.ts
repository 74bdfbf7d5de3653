/**
 * The Node viewer runner: the same player model as the k6 script, for machines without k6 and for
 * `npm run bench`. Two ways to run it:
 *
 *   node --import tsx loadtest/node/main.ts --base-url http://127.0.0.1:8080 --stream demo \
 *     --viewers 100 --duration 60 [--report 10] [--variant highest] [--ops-token T]
 *     → a line per report interval, then the totals, the SLO verdict and (with an ops token)
 *       monitoring's viewer count next to the number of viewers running; exit 0 when the SLO held.
 *
 *   … --control   → reads JSON lines on stdin ({"op":"resize","viewers":N}, {"op":"take"},
 *       {"op":"stop"}) and answers each with a JSON line on stdout (the benchmark drives it so the
 *       load generator's CPU is its own process's).
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { FleetWindow } from './fleet-stats.ts';
import { evaluateSlo } from './slo.ts';
import { ViewerFleet } from './viewer-fleet.ts';

const { values } = parseArgs({
  options: {
    'base-url': { type: 'string', default: 'http://127.0.0.1:8080' },
    stream: { type: 'string', default: 'demo' },
    viewers: { type: 'string', default: '10' },
    duration: { type: 'string', default: '60' },
    report: { type: 'string', default: '10' },
    variant: { type: 'string', default: 'highest' },
    'join-rate': { type: 'string', default: '200' },
    'ops-token': { type: 'string', default: process.env.OPS_TOKEN ?? '' },
    control: { type: 'boolean', default: false },
  },
});

const variant = values.variant as 'highest' | 'lowest' | 'random';
if (!['highest', 'lowest', 'random'].includes(variant)) fail(`--variant must be highest, lowest or random, not ${variant}`);
const numberArg = (name: 'viewers' | 'duration' | 'report' | 'join-rate'): number => {
  const n = Number(values[name]);
  if (!Number.isFinite(n) || n < 0) fail(`--${name} must be a non-negative number, not ${values[name]}`);
  return n;
};

const fleet = new ViewerFleet({ baseUrl: values['base-url']!, stream: values.stream!, variantPolicy: variant, joinPerSecond: numberArg('join-rate') });

if (values.control) await controlled();
else await standalone();

async function controlled(): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  const reply = (message: unknown): boolean => process.stdout.write(`${JSON.stringify(message)}\n`);
  for await (const line of lines) {
    const command = JSON.parse(line) as { op: string; viewers?: number };
    if (command.op === 'resize') {
      await fleet.resize(command.viewers ?? 0);
      reply({ op: 'resized', viewers: fleet.size });
    } else if (command.op === 'take') {
      reply({ op: 'window', window: fleet.take() });
    } else if (command.op === 'stop') {
      break;
    }
  }
  await fleet.stop();
  reply({ op: 'stopped' });
}

async function standalone(): Promise<void> {
  const viewers = numberArg('viewers');
  const durationMs = numberArg('duration') * 1000;
  const reportMs = Math.max(1, numberArg('report')) * 1000;
  const stopAt = Date.now() + durationMs;
  let stopping = false;
  process.once('SIGINT', () => (stopping = true));
  process.once('SIGTERM', () => (stopping = true));

  console.log(`${viewers} viewers of ${values.stream} at ${values['base-url']} for ${durationMs / 1000} s`);
  await fleet.resize(viewers);
  fleet.take(); // the joining phase is reported as startup only in the totals below
  const windows: FleetWindow[] = [];
  while (!stopping && Date.now() < stopAt) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(reportMs, stopAt - Date.now())));
    const window = fleet.take();
    windows.push(window);
    console.log(describe(window) + (await monitoringCount()));
  }
  await fleet.stop();
  const total = merge(windows);
  const verdict = evaluateSlo(total);
  console.log(`total: ${describe(total)}`);
  console.log(verdict.held ? `SLO held for ${viewers} viewers` : `SLO broken: ${verdict.broken.join('; ')}`);
  process.exitCode = verdict.held ? 0 : 1;
}

async function monitoringCount(): Promise<string> {
  if (!values['ops-token']) return '';
  try {
    const res = await fetch(`${values['base-url']}/api/streams`, { headers: { authorization: `Bearer ${values['ops-token']}` } });
    if (!res.ok) return ` | monitoring: HTTP ${res.status}`;
    const body = (await res.json()) as { streams: Array<{ stream: string; viewers: { ips: number; sessions: number } }> };
    const mine = body.streams.find((s) => s.stream === values.stream);
    return ` | monitoring counts ${mine?.viewers.ips ?? 0} IPs, ${mine?.viewers.sessions ?? 0} sessions for ${fleet.size} viewers running`;
  } catch (err) {
    return ` | monitoring: ${(err as Error).message}`;
  }
}

function describe(w: FleetWindow): string {
  const f = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
  return `${w.viewers} viewers: ${f(w.requests / w.seconds)} req/s, ${f(w.bytes / w.seconds / 1e6, 1)} MB/s, ` +
    `download ratio p95 ${f(w.downloadRatio.p95, 3)}, segment p50/p99 ${f(w.segmentMs.p50)}/${f(w.segmentMs.p99)} ms, ` +
    `playlist p50/p99 ${f(w.playlistMs.p50)}/${f(w.playlistMs.p99)} ms, stalls ${w.stalls}, stale ${w.stalePlaylists}, failed ${w.failedRequests}/${w.requests}`;
}

/** Totals over several windows (percentiles: the worst window's, which is what an SLO cares about). */
function merge(windows: FleetWindow[]): FleetWindow {
  const worst = (pick: (w: FleetWindow) => { count: number; p50: number; p95: number; p99: number; max: number }) => {
    const withData = windows.map(pick).filter((p) => p.count > 0);
    return withData.length === 0
      ? { count: 0, p50: NaN, p95: NaN, p99: NaN, max: NaN }
      : { count: withData.reduce((s, p) => s + p.count, 0), p50: Math.max(...withData.map((p) => p.p50)), p95: Math.max(...withData.map((p) => p.p95)), p99: Math.max(...withData.map((p) => p.p99)), max: Math.max(...withData.map((p) => p.max)) };
  };
  const sum = (pick: (w: FleetWindow) => number): number => windows.reduce((s, w) => s + pick(w), 0);
  const errors: FleetWindow['errors'] = {};
  for (const w of windows) for (const [k, v] of Object.entries(w.errors)) errors[k as keyof typeof errors] = (errors[k as keyof typeof errors] ?? 0) + v;
  return {
    seconds: sum((w) => w.seconds),
    viewers: Math.max(0, ...windows.map((w) => w.viewers)),
    requests: sum((w) => w.requests),
    failedRequests: sum((w) => w.failedRequests),
    errors,
    bytes: sum((w) => w.bytes),
    segments: sum((w) => w.segments),
    downloadRatio: worst((w) => w.downloadRatio),
    segmentMs: worst((w) => w.segmentMs),
    playlistMs: worst((w) => w.playlistMs),
    startupMs: worst((w) => w.startupMs),
    stalls: sum((w) => w.stalls),
    stallSeconds: sum((w) => w.stallSeconds),
    stalePlaylists: sum((w) => w.stalePlaylists),
  };
}

function fail(message: string): never {
  console.error(`loadtest: ${message}`);
  process.exit(2);
}
