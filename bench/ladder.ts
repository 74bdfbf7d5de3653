/**
 * `BENCH=ladder npm run bench`: what a quality ladder costs. One 720p30 publisher (the capacity
 * bench's pre-encoded clip, looped without re-encoding: the publisher itself costs ~no CPU) into a
 * real ingest, once per ladder: passthrough, then ladders of growing weight. For each, after a
 * warm-up: the ffmpeg's CPU (cores, from /proc) and its speed (ingest's GET /streams, 5 s window).
 * Writes bench/results/ladder.{json,md}.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { addStream, setStreamLadder } from '../common/src/stream-registry.ts';
import { makeTempDir, REPO_ROOT, sleep, waitFor } from '../common/testing/processes.ts';
import { ingestStreams, startStack, viewPlaylist } from '../common/testing/stack.ts';
import { encodeClip, publishLoop } from './capacity.ts';
import { cpuSeconds } from './proc-cpu.ts';

const LADDERS = (process.env.LADDER_BENCH_LADDERS ?? 'off;360p;480p,360p;540p,360p,240p;540p,480p,360p,240p').split(';');
const WARMUP_S = Number(process.env.LADDER_BENCH_WARMUP_S ?? 8);
const MEASURE_S = Number(process.env.LADDER_BENCH_MEASURE_S ?? 20);

export interface LadderBenchRow {
  ladder: string;
  renditions: string[];
  /** ffmpeg CPU over the measured period, cores (CPU seconds per second). */
  ffmpegCores: number;
  /** ingest's node process over the same period, cores. */
  ingestNodeCores: number;
  speedMin: number | null;
  speedMean: number | null;
  slowWarnings: number;
}

export interface LadderBenchResult {
  machine: Record<string, string | number>;
  source: string;
  preset: string;
  measureSeconds: number;
  rows: LadderBenchRow[];
}

export async function benchLadder(): Promise<LadderBenchResult> {
  const temp = await makeTempDir('bench-ladder');
  const preset = process.env.LADDER_PRESET ?? 'veryfast';
  const stack = await startStack({ webReplicas: 1, ingestEnv: { LADDER_PRESET: preset, RECONNECT_GRACE_MS: '0', LOG_LEVEL: 'warn' } });
  const rows: LadderBenchRow[] = [];
  try {
    const clip = path.join(temp.dir, 'clip.flv');
    await encodeClip(clip);
    const key = await addStream(stack.dataDir, 'bench');
    for (const ladder of LADDERS) {
      await setStreamLadder(stack.dataDir, 'bench', ladder);
      await sleep(300); // the registry watcher
      const publisher = publishLoop(clip, stack.publishUrl('bench', key));
      try {
        const live = await waitFor('ffmpeg running', async () => (await ingestStreams(stack)).find((s) => s.stream === 'bench' && s.muxer?.pid && s.playlist?.segmentsPublished > 0), 30_000);
        await sleep(WARMUP_S * 1000);
        const pid = live.muxer.pid as number;
        const ingestPid = stack.ingest.pid;
        const before = { ff: await cpuSeconds(pid), node: await cpuSeconds(ingestPid), at: Date.now() };
        const speeds: number[] = [];
        let slow = 0;
        for (let i = 0; i < MEASURE_S; i++) {
          await sleep(1000);
          const s = (await ingestStreams(stack)).find((x) => x.stream === 'bench');
          if (typeof s?.transcode?.speed === 'number') speeds.push(s.transcode.speed);
          if (s?.transcode?.slow) slow += 1;
        }
        const wall = (Date.now() - before.at) / 1000;
        const after = { ff: await cpuSeconds(pid), node: await cpuSeconds(ingestPid) };
        const metrics = await (await fetch(`${stack.controlUrl}/metrics`)).text();
        const warnings = Number(/onair_ingest_ffmpeg_slow_total\{[^}]*stream="bench"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? 0);
        const row: LadderBenchRow = {
          ladder,
          renditions: (live.renditions as Array<{ name: string }>).map((r) => r.name),
          ffmpegCores: round((after.ff - before.ff) / wall),
          ingestNodeCores: round((after.node - before.node) / wall),
          speedMin: speeds.length ? round(Math.min(...speeds)) : null,
          speedMean: speeds.length ? round(speeds.reduce((a, b) => a + b, 0) / speeds.length) : null,
          slowWarnings: warnings - rows.reduce((a, r) => a + r.slowWarnings, 0),
        };
        rows.push(row);
        console.log(`  ${ladder.padEnd(24)} renditions ${row.renditions.join(',').padEnd(30)} ffmpeg ${row.ffmpegCores.toFixed(3)} cores, speed min ${row.speedMin} mean ${row.speedMean}${slow ? `, slow for ${slow} s` : ''}`);
      } finally {
        await publisher.stop();
      }
      await waitFor('the broadcast to end', async () => viewPlaylistEnded(stack.mediaDir), 20_000);
      await waitFor('the broadcast to leave /streams', async () => !(await ingestStreams(stack)).some((s) => s.stream === 'bench'), 20_000);
    }
  } finally {
    await stack.stop();
    await temp.remove();
  }
  const result: LadderBenchResult = { machine: machine(), source: '720p30 H.264 ~2.5 Mbit/s, 1 s keyframes, AAC (pre-encoded clip, looped)', preset, measureSeconds: MEASURE_S, rows };
  const dir = path.join(REPO_ROOT, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'ladder.json'), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(path.join(dir, 'ladder.md'), markdown(result));
  return result;
}

async function viewPlaylistEnded(mediaDir: string): Promise<boolean> {
  const { readFile } = await import('node:fs/promises');
  const top = await readFile(path.join(mediaDir, 'live', 'bench', 'index.m3u8'), 'utf8').catch(() => '');
  const media = top.includes('#EXT-X-STREAM-INF') ? await readFile(path.join(mediaDir, 'live', 'bench', 'source', 'index.m3u8'), 'utf8').catch(() => '') : top;
  return viewPlaylist(media).ended;
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function machine(): Record<string, string | number> {
  return { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.version, date: new Date().toISOString().slice(0, 10) };
}

export function markdown(r: LadderBenchResult): string {
  const base = r.rows.find((x) => x.ladder === 'off');
  return [
    `# Quality ladder cost (${r.machine.date}, ${r.machine.cores} × ${r.machine.cpu}, Node ${r.machine.node})`,
    '',
    `Source: ${r.source}. x264 preset \`${r.preset}\` for transcoded renditions. Each figure over ${r.measureSeconds} s after a warm-up; speed = media seconds out per wall second over ingest's 5 s window (1.00 = keeping real time).`,
    '',
    '| ladder | renditions | ffmpeg CPU (cores) | × passthrough | ingest node (cores) | speed min / mean | slow warnings |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...r.rows.map((x) => `| ${x.ladder === 'off' ? 'off (passthrough)' : x.ladder} | ${x.renditions.join(', ')} | ${x.ffmpegCores.toFixed(3)} | ${base && base.ffmpegCores > 0 ? (x.ffmpegCores / base.ffmpegCores).toFixed(0) : 'n/a'} | ${x.ingestNodeCores.toFixed(3)} | ${x.speedMin ?? 'n/a'} / ${x.speedMean ?? 'n/a'} | ${x.slowWarnings} |`),
    '',
  ].join('\n');
}
