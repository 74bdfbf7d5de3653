/**
 * Ingest soak, on demand (not part of `npm test`: the name does not match *.test.ts):
 *
 *   node --import tsx ingest/test/soak-ingest.ts
 *
 * One real ingest process and one ffmpeg publisher for SOAK_MINUTES (30), with a disturbance every
 * SOAK_RECONNECT_SECONDS (180), in turn: the connection drops and the encoder reconnects (same
 * broadcast), a clean stop and a new broadcast, an ffmpeg muxer killed. Every SOAK_SAMPLE_SECONDS
 * (10) it samples ingest's RSS, V8 heap, open file descriptors and ffmpeg children, then prints the
 * table and a verdict: flat or growing (first third against last third, after a warm-up).
 */
import { createStream, ingestStreams, publish, startStack, viewPlaylist, type Stack } from '../../common/testing/stack.ts';
import { sleep, waitFor, type ManagedProcess } from '../../common/testing/processes.ts';
import { childProcesses, metricsText, metricValue, openFds, rssMiB } from './support/ingest-probe.ts';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const RECONNECT_SECONDS = Number(process.env.SOAK_RECONNECT_SECONDS ?? 180);
const SAMPLE_SECONDS = Number(process.env.SOAK_SAMPLE_SECONDS ?? 10);
const STREAM = 'soak';

interface Sample {
  atSeconds: number;
  rssMiB: number;
  heapMiB: number;
  fds: number;
  ffmpegChildren: number;
  segmentsPublished: number;
  state: string;
  event: string;
}

type Disturbance = 'drop and reconnect' | 'clean stop and new broadcast' | 'muxer killed';
const DISTURBANCES: readonly Disturbance[] = ['drop and reconnect', 'clean stop and new broadcast', 'muxer killed'];

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const mx = mean(xs);
  const my = mean(ys);
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function disturb(stack: Stack, kind: Disturbance, publisher: ManagedProcess, key: string): Promise<ManagedProcess> {
  const start = (): ManagedProcess => publish(stack.publishUrl(STREAM, key), { width: 640, height: 360, fps: 25, videoKbps: 1000 });
  switch (kind) {
    case 'drop and reconnect':
      publisher.kill('SIGKILL');
      await publisher.exited;
      await waitFor('reconnecting', async () => (await ingestStreams(stack)).find((s) => s.stream === STREAM)?.state === 'reconnecting', 10_000);
      return start();
    case 'clean stop and new broadcast':
      await publisher.stop();
      await waitFor('broadcast ended', async () => !(await ingestStreams(stack)).some((s) => s.stream === STREAM), 15_000);
      return start();
    case 'muxer killed': {
      const pid = (await ingestStreams(stack)).find((s) => s.stream === STREAM)?.muxer?.pid;
      if (pid) process.kill(pid, 'SIGKILL');
      return publisher;
    }
  }
}

function verdict(samples: Sample[]): { lines: string[]; growing: boolean } {
  const warm = samples.filter((s) => s.atSeconds >= Math.min(60, (MINUTES * 60) / 5));
  const third = Math.max(1, Math.floor(warm.length / 3));
  const first = warm.slice(0, third);
  const last = warm.slice(-third);
  const lines: string[] = [];
  let growing = false;
  const judge = (name: string, pick: (s: Sample) => number, unit: string, limit: (firstMean: number) => number): void => {
    const a = mean(first.map(pick));
    const b = mean(last.map(pick));
    const perHour = slope(warm.map((s) => s.atSeconds / 3600), warm.map(pick));
    const grew = b - a > limit(a);
    growing ||= grew;
    lines.push(`${name}: first third ${a.toFixed(1)} ${unit}, last third ${b.toFixed(1)} ${unit} (${b - a >= 0 ? '+' : ''}${(b - a).toFixed(1)}; least-squares trend ${perHour >= 0 ? '+' : ''}${perHour.toFixed(1)} ${unit}/h, meaningless for short runs) -> ${grew ? 'GROWING' : 'flat'}`);
  };
  judge('RSS', (s) => s.rssMiB, 'MiB', (a) => Math.max(15, a * 0.1));
  judge('V8 heap', (s) => s.heapMiB, 'MiB', (a) => Math.max(8, a * 0.2));
  // fds move by a few while an encoder reconnects (its socket, ffmpeg's pipes): compare steady samples only.
  const steadyFds = (xs: Sample[]): Sample[] => xs.filter((s) => s.state === 'live' && s.ffmpegChildren === 1);
  const fdsFirst = mean(steadyFds(first).map((s) => s.fds));
  const fdsLast = mean(steadyFds(last).map((s) => s.fds));
  const fdsGrew = fdsLast - fdsFirst > 4;
  growing ||= fdsGrew;
  lines.push(`open fds (live, one muxer): first third ${fdsFirst.toFixed(1)}, last third ${fdsLast.toFixed(1)} -> ${fdsGrew ? 'GROWING' : 'flat'}`);
  const maxChildren = Math.max(...samples.map((s) => s.ffmpegChildren));
  lines.push(`ffmpeg children: at most ${maxChildren} at a sample (one muxer per live stream expected)`);
  if (maxChildren > 1) growing = true;
  return { lines, growing };
}

async function main(): Promise<void> {
  console.log(`ingest soak: ${MINUTES} min, a disturbance every ${RECONNECT_SECONDS} s, a sample every ${SAMPLE_SECONDS} s`);
  const stack = await startStack({ ingestEnv: { LOG_LEVEL: 'warn' } });
  const key = await createStream(stack, STREAM);
  let publisher = publish(stack.publishUrl(STREAM, key), { width: 640, height: 360, fps: 25, videoKbps: 1000 });
  const samples: Sample[] = [];
  const startedAt = Date.now();
  const endAt = startedAt + MINUTES * 60_000;
  let nextDisturbance = startedAt + RECONNECT_SECONDS * 1000;
  let disturbances = 0;
  let event = 'start';
  let lastSequence = -1;
  const continuity: string[] = [];
  try {
    while (Date.now() < endAt) {
      if (Date.now() >= nextDisturbance) {
        const kind = DISTURBANCES[disturbances % DISTURBANCES.length]!;
        disturbances += 1;
        publisher = await disturb(stack, kind, publisher, key);
        event = kind;
        nextDisturbance += RECONNECT_SECONDS * 1000;
      }
      const metrics = await metricsText(stack);
      const status = (await ingestStreams(stack)).find((s) => s.stream === STREAM);
      const view = viewPlaylist(await stack.readPlaylist(STREAM));
      if (view.mediaSequence < lastSequence) continuity.push(`media sequence went back at ${Math.round((Date.now() - startedAt) / 1000)} s`);
      lastSequence = view.mediaSequence;
      const sample: Sample = {
        atSeconds: Math.round((Date.now() - startedAt) / 1000),
        rssMiB: await rssMiB(stack.ingest.pid),
        heapMiB: metricValue(metrics, 'nodejs_heap_size_used_bytes') / 1048576,
        fds: await openFds(stack.ingest.pid),
        ffmpegChildren: (await childProcesses(stack.ingest.pid, 'ffmpeg')).length,
        segmentsPublished: metricValue(metrics, 'onair_ingest_segments_published_total'),
        state: status?.state ?? 'none',
        event,
      };
      samples.push(sample);
      event = '';
      console.log(
        `${String(sample.atSeconds).padStart(6)} s  rss ${sample.rssMiB.toFixed(1).padStart(6)} MiB  heap ${sample.heapMiB.toFixed(1).padStart(5)} MiB  fds ${String(sample.fds).padStart(3)}  ffmpeg ${sample.ffmpegChildren}  segments ${String(sample.segmentsPublished).padStart(5)}  ${sample.state.padEnd(12)} ${sample.event}`,
      );
      if (!stack.ingest.running) throw new Error(`ingest exited\n${stack.ingest.tail()}`);
      await sleep(Math.max(0, startedAt + samples.length * SAMPLE_SECONDS * 1000 - Date.now()));
    }
  } finally {
    await publisher.stop();
    await sleep(1000);
    const afterStop = (await childProcesses(stack.ingest.pid, 'ffmpeg')).length;
    const fatal = stack.ingest.jsonLogs().filter((l) => l.level === 'fatal' || l.level === 'error');
    await stack.stop();
    const { lines, growing } = verdict(samples);
    console.log(`\n${samples.length} samples, ${disturbances} disturbances, ${samples.at(-1)?.segmentsPublished ?? 0} segments published`);
    for (const line of lines) console.log(line);
    console.log(`ffmpeg children after the publisher stopped: ${afterStop}; error/fatal log lines: ${fatal.length}${fatal.length ? ` (${[...new Set(fatal.map((l) => String(l.msg)))].join('; ')})` : ''}; playlist continuity problems: ${continuity.length ? continuity.join('; ') : 'none'}`);
    console.log(`verdict: ${growing || afterStop > 0 ? 'GROWING (look at the lines above)' : 'flat'}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
