/**
 * The frame clock (cli/src/test-pattern.ts FRAME_CLOCK; decoders in common/testing/frame-clock.ts)
 * is a measuring instrument: these tests check that it reads right before anyone trusts its figures.
 *
 *  (a) ffmpeg draws the pattern in real time and writes each frame twice: raw (gray, to a pipe, as
 *      it leaves ffmpeg) and H.264-encoded like the publisher (320×180 15 fps 400 kbit/s, 640×360
 *      30 fps 2 Mbit/s). The raw frames decode to times one frame interval apart that follow the
 *      real-time schedule and precede the frame's arrival by about a frame; every encoded frame
 *      decodes (in Node) to exactly its raw frame's time, or is reported as unreadable; the encoded
 *      stream's timestamps are regular.
 *  (b) a stream through the real stack (ingest, a web replica, the proxy) in Chromium on onair's
 *      page: the page-side decoder reads plausible latencies (0.5–15 s) with < 5 % failures;
 *  (c) and is not fooled: its median agrees with hls.js's own latency estimate plus the delay
 *      hls.js cannot see (a segment becoming visible after its last frame was made).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { FRAME_CLOCK, frameClockBits, testPatternVideoCodecArgs, testPatternVideoFilter, testPatternVideoSource } from '../cli/src/test-pattern.ts';
import { installPlaybackMonitor, launchChromium, readHlsLatency, readPlaybackMonitor } from '../common/testing/browser.ts';
import { decodeFrameClockFile, decodeFrameClockGray, decodeFrameClockLevels, installFrameClock, latencyStats, quantile, readFrameClock, resetFrameClock, resolveMsOfDay } from '../common/testing/frame-clock.ts';
import { makeTempDir, REPO_ROOT, sleep, waitFor, type ManagedProcess } from '../common/testing/processes.ts';
import { createStream, publish, startStack, type Stack } from '../common/testing/stack.ts';
import { cpuSeconds } from '../bench/proc-cpu.ts';

const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');
const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

interface RawFrame {
  arrivalWall: number;
  generatedWall: number | null;
}

/** One real-time encode of the pattern: raw frames as they leave ffmpeg, and the H.264 clip. */
async function encodeClip(dir: string, o: { width: number; height: number; fps: number; videoKbps: number; seconds: number }): Promise<{ raw: RawFrame[]; clip: string; cpuSeconds: number; spawnedWall: number }> {
  const clip = path.join(dir, `clip-${o.width}x${o.height}.flv`);
  const options = { ...o, keyframeSeconds: 1, clock: true, label: 'frame clock test' };
  const frameBytes = o.width * o.height;
  const args = [
    '-hide_banner', '-v', 'error', '-nostats',
    '-re', '-t', String(o.seconds), '-f', 'lavfi', '-i', testPatternVideoSource(options),
    '-re', '-t', String(o.seconds), '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-filter_complex', `[0:v]${testPatternVideoFilter(options)},split=2[raw][enc]`,
    '-map', '[raw]', '-f', 'rawvideo', '-pix_fmt', 'gray', '-flush_packets', '1', 'pipe:1',
    '-map', '[enc]', '-map', '1:a', ...testPatternVideoCodecArgs(options), '-c:a', 'aac', '-b:a', '128k', '-f', 'flv', '-y', clip,
  ];
  const spawnedWall = Date.now();
  const child = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(async () => child.kill('SIGKILL'));
  const raw: RawFrame[] = [];
  let pending = Buffer.alloc(0);
  let stderr = '';
  let cpu = 0;
  const cpuTimer = setInterval(() => {
    void cpuSeconds(child.pid!).then((s) => (cpu = s), () => undefined);
  }, 250);
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    const now = Date.now();
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= frameBytes) {
      const frame = pending.subarray(0, frameBytes);
      pending = pending.subarray(frameBytes);
      const decoded = decodeFrameClockGray(frame, o.width, o.height);
      raw.push({ arrivalWall: now, generatedWall: decoded.ok ? resolveMsOfDay(decoded.msOfDay, now) : null });
    }
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearInterval(cpuTimer);
  assert.equal(code, 0, `ffmpeg failed: ${stderr}`);
  return { raw, clip, cpuSeconds: cpu, spawnedWall };
}

async function packetTimes(file: string): Promise<number[]> {
  const child = spawn('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  await new Promise((resolve) => child.once('close', resolve));
  return out.split('\n').filter(Boolean).map(Number).sort((a, b) => a - b);
}

const fmt = (x: number | null, digits = 0): string => (x === null ? 'n/a' : x.toFixed(digits));

test('the code: every value round-trips, 1- and 2-cell errors and grey cells are refused, midnight wraps', () => {
  const levelsFor = (bits: number[]): number[] => FRAME_CLOCK.cells.map((c) => (c.role === 'white' ? 220 : c.role === 'black' ? 20 : bits[c.bit!] ? 220 : 20));
  const values = [0, 1, 86_399_999, 43_200_000, 12_345_678, ...Array.from({ length: 200 }, (_, i) => (i * 7_919_993) % 86_400_000)];
  for (const v of values) {
    const bits = frameClockBits(v);
    assert.deepEqual(decodeFrameClockLevels(levelsFor(bits), FRAME_CLOCK), { ok: true, msOfDay: v });
    for (let a = 0; a < bits.length; a++) {
      const one = [...bits];
      one[a] = 1 - one[a]!;
      assert.equal(decodeFrameClockLevels(levelsFor(one), FRAME_CLOCK).ok, false, `value ${v}, cell ${a} flipped`);
      for (let b = a + 1; b < bits.length; b++) {
        const two = [...one];
        two[b] = 1 - two[b]!;
        assert.equal(decodeFrameClockLevels(levelsFor(two), FRAME_CLOCK).ok, false, `value ${v}, cells ${a} and ${b} flipped`);
      }
    }
    const grey = levelsFor(bits);
    grey[FRAME_CLOCK.cells.findIndex((c) => c.bit === 3)] = 120; // caught mid-change
    assert.deepEqual(decodeFrameClockLevels(grey, FRAME_CLOCK), { ok: false, reason: 'ambiguous' });
  }
  assert.deepEqual(decodeFrameClockLevels(FRAME_CLOCK.cells.map(() => 128), FRAME_CLOCK), { ok: false, reason: 'no-code' });
  const midnight = Date.UTC(2026, 11, 31, 24, 0, 0); // 2027-01-01T00:00:00Z
  assert.equal(resolveMsOfDay(86_399_000, midnight + 2_000), midnight - 1_000, 'made before midnight, seen after');
  assert.equal(resolveMsOfDay(500, midnight - 100), midnight + 500, 'a clock slightly ahead across midnight');
  assert.equal(resolveMsOfDay(3_600_000, midnight + 3_605_000), midnight + 3_600_000);
});

test('(a) the frame clock: real-time generation times, exact after x264 at 320×180@400k and 640×360@2M', async () => {
  const temp = await makeTempDir('frame-clock');
  cleanups.push(temp.remove);
  for (const o of [
    { width: 320, height: 180, fps: 15, videoKbps: 400, seconds: 8 },
    { width: 640, height: 360, fps: 30, videoKbps: 2000, seconds: 8 },
  ]) {
    const name = `${o.width}x${o.height}@${o.videoKbps}k ${o.fps} fps`;
    const interval = 1000 / o.fps;
    const { raw, clip, cpuSeconds: cpu, spawnedWall } = await encodeClip(temp.dir, o);

    // Raw (uncompressed) frames: every one decodes; one frame interval apart; on the real-time schedule.
    assert.ok(raw.length >= o.fps * o.seconds - 1, `${name}: ${raw.length} raw frames`);
    assert.ok(raw.every((f) => f.generatedWall !== null), `${name}: an uncompressed frame did not decode`);
    const times = raw.map((f) => f.generatedWall!);
    const steps = latencyStats(times.slice(1).map((t, i) => t - times[i]!));
    const meanStep = (times[times.length - 1]! - times[0]!) / (times.length - 1);
    // Against the schedule: frame n is due at start + n × interval (start fitted: the median offset).
    const start = quantile(times.map((t, n) => t - n * interval).sort((a, b) => a - b), 0.5)!;
    const deviation = latencyStats(times.map((t, n) => Math.abs(t - n * interval - start)));
    // Against the wall clock as the frame leaves ffmpeg (ffmpeg hands a frame on about one frame
    // interval after it passed the filter): never in the future.
    const lead = latencyStats(raw.map((f) => f.arrivalWall - f.generatedWall!));

    // The encoded clip: regular timestamps, and each frame decodes to its raw twin's time (or is reported).
    const pts = await packetTimes(clip);
    const ptsSteps = pts.slice(1).map((t, i) => (t - pts[i]!) * 1000);
    const decoded = await decodeFrameClockFile(clip, { frames: Infinity });
    const known = new Set(times);
    let failures = 0;
    let wrong = 0;
    let last = -Infinity;
    const reasons: Record<string, number> = {};
    for (const d of decoded) {
      if (!d.ok) {
        failures++;
        reasons[d.reason] = (reasons[d.reason] ?? 0) + 1;
        continue;
      }
      const t = resolveMsOfDay(d.msOfDay, times[0]!);
      if (!known.has(t) || t < last) wrong++;
      last = t;
    }
    const summary =
      `${name}: ${raw.length} frames; steps mean ${meanStep.toFixed(2)} ms, min/median/max ${fmt(steps.min)}/${fmt(steps.median)}/${fmt(steps.max)}; ` +
      `deviation from the real-time schedule median ${fmt(deviation.median)} ms, p95 ${fmt(deviation.p95)} ms; first frame due ${(start - spawnedWall).toFixed(0)} ms after spawn; ` +
      `time → leaves ffmpeg min/median/p95 ${fmt(lead.min)}/${fmt(lead.median)}/${fmt(lead.p95)} ms; ` +
      `after x264: ${decoded.length} frames, ${failures} unreadable (${((100 * failures) / decoded.length).toFixed(2)} %) ${JSON.stringify(reasons)}, ${wrong} wrong; ffmpeg CPU ${(cpu / o.seconds).toFixed(2)} cores`;
    console.log(`# ${summary}`);
    assert.ok(Math.abs(meanStep - interval) <= 1.5, `mean step: ${summary}`);
    assert.ok(deviation.median! <= 5 && deviation.p95! <= 30, `schedule: ${summary}`);
    assert.ok(start - spawnedWall >= 0 && start - spawnedWall < 2000, `start: ${summary}`);
    assert.ok(lead.min! >= -2, `a frame's time is in the future: ${summary}`);
    assert.ok(lead.median! <= interval + 25, `frames leave ffmpeg late: ${summary}`);
    assert.ok(ptsSteps.every((st) => Math.abs(st - interval) <= 1.01), `${name}: irregular packet timestamps ${[...new Set(ptsSteps.map((st) => st.toFixed(0)))].join(',')}`);
    // ffmpeg may repeat or drop a frame at the end for the muxer: matched by value, in order.
    assert.ok(Math.abs(decoded.length - raw.length) <= 2, `frame count: ${summary}`);
    assert.equal(wrong, 0, `${name}: frames decoded to a wrong time`);
    assert.ok(failures / decoded.length < 0.02, `${name}: ${failures} of ${decoded.length} encoded frames unreadable ${JSON.stringify(reasons)}`);
  }
});

test('(b, c) in Chromium through the stack: plausible latencies, few failures, agreeing with hls.js', async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  const stack: Stack = await startStack({ webReplicas: 1, proxy: true });
  cleanups.push(() => stack.stop());
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  const key = await createStream(stack, 'clock');
  const publisher: ManagedProcess = publish(stack.publishUrl('clock', key), { clock: true, label: 'frame clock e2e' }); // 320×180 15 fps 400 kbit/s
  cleanups.push(() => publisher.stop());
  const page = await browser.newPage({ viewport: { width: 960, height: 600 } });
  try {
    await installFrameClock(page);
    await installPlaybackMonitor(page);
    await page.goto(`${stack.proxyUrl}/watch/clock`);
    await waitFor('decoded frames', async () => (await readFrameClock(page)).count >= 15, 45_000, 250);
    await sleep(8_000); // past the start-up catch-up
    await resetFrameClock(page);
    const hlsSamples: number[] = [];
    const pdtSamples: number[] = [];
    let targetDuration: number | null = null;
    for (let i = 0; i < 30; i++) {
      const h = await readHlsLatency(page);
      if (h.hlsLatencyS !== null) hlsSamples.push(h.hlsLatencyS * 1000);
      if (h.pdtLatencyS !== null) pdtSamples.push(h.pdtLatencyS * 1000);
      targetDuration = h.targetDuration ?? targetDuration;
      await sleep(500);
    }
    const clock = await readFrameClock(page);
    const playback = await readPlaybackMonitor(page);
    await page.screenshot({ path: path.join(ARTIFACTS, 'frame-clock.png') });
    const hls = latencyStats(hlsSamples);
    const pdt = latencyStats(pdtSamples);
    console.log(`# frame clock (${clock.mode}): ${clock.frames} frames read, ${clock.failures} unreadable (${(100 * clock.failureRate).toFixed(2)} %) ${JSON.stringify(clock.failureReasons)}, ${clock.missed} presented without a callback`);
    console.log('# latency ms        median     p95     min     max');
    console.log(`# frame clock     ${fmt(clock.median).padStart(8)} ${fmt(clock.p95).padStart(7)} ${fmt(clock.min).padStart(7)} ${fmt(clock.max).padStart(7)}`);
    console.log(`# hls.latency     ${fmt(hls.median).padStart(8)} ${fmt(hls.p95).padStart(7)} ${fmt(hls.min).padStart(7)} ${fmt(hls.max).padStart(7)}`);
    console.log(`# now − PDT       ${fmt(pdt.median).padStart(8)} ${fmt(pdt.p95).padStart(7)} ${fmt(pdt.min).padStart(7)} ${fmt(pdt.max).padStart(7)}   (playing frame's EXT-X-PROGRAM-DATE-TIME)`);
    console.log(`# frame clock − hls.latency: ${fmt(clock.median! - hls.median!)} ms (target duration ${targetDuration} s); waiting events ${playback.waiting}, stalled ${playback.stallMs} ms`);
    assert.ok(clock.mode === 'rvfc', `requestVideoFrameCallback in Chromium (got ${clock.mode})`);
    assert.ok(clock.frames >= 15 * 15 * 0.5, `${clock.frames} frames read in 15 s at 15 fps`);
    assert.ok(clock.failureRate < 0.05, `${(100 * clock.failureRate).toFixed(1)} % of frames unreadable ${JSON.stringify(clock.failureReasons)}`);
    assert.ok(clock.median! >= 500 && clock.median! <= 15_000, `median latency ${clock.median} ms`);
    assert.ok(clock.min! >= 0, `a frame was shown ${-clock.min!} ms before it was made`);
    // hls.js measures from the playlist it last saw (edge + age − playhead): it cannot see how long
    // the newest segment took to be made visible after its last frame (≤ one target duration, and
    // transport): the frame clock must read that much more, not less, not seconds more.
    const allowance = (targetDuration ?? 2) * 1000 + 1000;
    const diff = clock.median! - hls.median!;
    assert.ok(diff >= -300 && diff <= allowance, `frame clock ${clock.median} ms vs hls.latency ${hls.median} ms: ${diff} ms apart (allowed −300…${allowance})`);

    // The timer fallback (browsers without requestVideoFrameCallback) reads the same stream alike.
    const fallback = await browser.newPage({ viewport: { width: 960, height: 600 } });
    try {
      await installFrameClock(fallback, { forceTimer: true });
      await fallback.goto(`${stack.proxyUrl}/watch/clock`);
      await waitFor('decoded frames (timer)', async () => (await readFrameClock(fallback)).count >= 15, 45_000, 250);
      await sleep(8_000);
      await resetFrameClock(fallback);
      await sleep(8_000);
      const timer = await readFrameClock(fallback);
      const rvfcNow = await readFrameClock(page);
      console.log(`# timer fallback: ${timer.frames} frames, ${timer.failures} unreadable, median ${fmt(timer.median)} ms (rvfc page meanwhile ${fmt(rvfcNow.median)} ms)`);
      assert.equal(timer.mode, 'timer');
      assert.ok(timer.frames >= 8 * 15 * 0.5 && timer.failureRate < 0.05, `timer fallback: ${timer.frames} frames, ${timer.failures} unreadable`);
      assert.ok(Math.abs(timer.median! - rvfcNow.median!) <= 500, `timer fallback median ${timer.median} ms vs rvfc ${rvfcNow.median} ms`);
    } finally {
      await fallback.close();
    }
  } catch (err) {
    await page.screenshot({ path: path.join(ARTIFACTS, 'frame-clock-failure.png') }).catch(() => undefined);
    (err as Error).message += `\n${stack.diagnostics()}`;
    throw err;
  } finally {
    await page.close();
  }
});

