/**
 * What ingest learns about its ffmpeg and its source, tested on real ffmpeg output: the speed
 * detector on real `-progress` lines of an encoder that cannot keep real time (and of one that
 * can), and the source probe on real FLV written by ffmpeg.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { makeTempDir } from '../../common/testing/processes.ts';
import { FlvSourceProbe } from '../src/transcode/flv-source-probe.ts';
import { CpuMeter, processCpuSeconds } from '../src/transcode/process-cpu.ts';
import { SpeedWatch } from '../src/transcode/speed-watch.ts';

const run = promisify(execFile);

/** Runs ffmpeg on a real-time (-re) test pattern with the given encoder options, feeding its progress to a SpeedWatch. */
async function watchEncoder(size: string, encoder: string[], seconds: number): Promise<{ watch: SpeedWatch; slowEvents: number[]; cpu: CpuMeter }> {
  const slowEvents: number[] = [];
  const watch = new SpeedWatch({ sustainSeconds: 2, onSlow: (speed) => slowEvents.push(speed) });
  const child = spawn('ffmpeg', ['-hide_banner', '-nostats', '-loglevel', 'error', '-progress', 'pipe:1', '-stats_period', '0.5', '-re', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=30`, '-t', String(seconds + 5), ...encoder, '-f', 'null', '-'], { stdio: ['ignore', 'pipe', 'inherit'] });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => watch.write(chunk));
  const cpu = new CpuMeter();
  const sampler = setInterval(() => void processCpuSeconds(child.pid!).then((s) => s !== null && cpu.reading(s)), 1000);
  try {
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  } finally {
    clearInterval(sampler);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
  }
  return { watch, slowEvents, cpu };
}

test('the speed warning fires for an encoder that cannot keep real time, and not for one that can', async () => {
  // 720p30 through x264's slowest preset on one thread: a few frames per second on any CPU.
  const heavy = await watchEncoder('1280x720', ['-c:v', 'libx264', '-preset', 'veryslow', '-threads', '1'], 9);
  assert.ok(heavy.watch.speed !== null && heavy.watch.speed < 0.9, `measured speed ${heavy.watch.speed}`);
  assert.equal(heavy.slowEvents.length, 1, `slow reported once (speed ${heavy.watch.speed}, backlog ${heavy.watch.backlog.toFixed(2)} s)`);
  assert.ok(heavy.watch.slow);
  assert.ok(heavy.watch.backlog > 1);
  assert.ok((heavy.cpu.cores ?? 0) > 0.3, `the busy encoder's CPU is measured: ${heavy.cpu.cores}`);

  const light = await watchEncoder('160x120', ['-c:v', 'libx264', '-preset', 'ultrafast', '-threads', '1'], 6);
  assert.ok(light.watch.speed !== null && light.watch.speed > 0.9, `measured speed ${light.watch.speed}`);
  assert.deepEqual(light.slowEvents, []);
  assert.equal(light.watch.slow, false);
});

test('speed window, sustain and recovery on recorded progress blocks', () => {
  const events: string[] = [];
  const watch = new SpeedWatch({ sustainSeconds: 3, onSlow: () => events.push('slow'), onRecovered: () => events.push('recovered') });
  // Real ffmpeg 5.1 -progress block shape; media time advances 0.5 s per wall second (speed 0.5).
  const block = (outUs: number) => `frame=1\nfps=0.00\nstream_0_0_q=0.0\nbitrate=N/A\ntotal_size=N/A\nout_time_us=${outUs}\nout_time_ms=${outUs}\nout_time=00:00:00.000000\ndup_frames=0\ndrop_frames=0\nspeed=0.5x\nprogress=continue\n`;
  let wall = 0;
  let media = 0;
  // One slow second (noise) is not enough.
  for (let i = 0; i < 6; i++) watch.write(block(((media += 1) * 1e6) | 0), (wall += 1000));
  watch.write(block(((media += 0.2) * 1e6) | 0), (wall += 1000));
  assert.deepEqual(events, []);
  for (let i = 0; i < 10; i++) watch.write(block(((media += 0.5) * 1e6) | 0), (wall += 1000));
  assert.deepEqual(events, ['slow']);
  assert.equal(watch.cumulativeSpeed, 0.5);
  // Catching up (speed 2) works the backlog off: recovered.
  for (let i = 0; i < 10 && watch.slow; i++) watch.write(block(((media += 2) * 1e6) | 0), (wall += 1000));
  assert.deepEqual(events, ['slow', 'recovered']);
});

test('the source probe reads size and codecs from real FLV (including SPS cropping)', async () => {
  const temp = await makeTempDir('probe');
  try {
    for (const [size, profile] of [['640x360', 'main'], ['1920x1080', 'high']] as const) {
      const file = path.join(temp.dir, `${size}.flv`);
      await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=15`, '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '1', '-c:v', 'libx264', '-profile:v', profile, '-preset', 'veryfast', '-c:a', 'aac', '-shortest', '-y', file]);
      const flv = await readFile(file);
      const probe = new FlvSourceProbe();
      // Tag by tag, as the in-process tap delivers them (9-byte header + 4-byte previous size first).
      let at = 13;
      while (at + 11 <= flv.length && !probe.done) {
        const size = (flv[at + 1]! << 16) | (flv[at + 2]! << 8) | flv[at + 3]!;
        probe.push(flv.subarray(at, at + 11 + size + 4));
        at += 11 + size + 4;
      }
      const [w, h] = size.split('x').map(Number);
      assert.equal(probe.facts.width, w);
      assert.equal(probe.facts.height, h, `${size}: height after cropping`);
      assert.equal(probe.facts.audioCodec, 'mp4a.40.2');
      assert.match(probe.facts.videoCodec!, profile === 'main' ? /^avc1\.4d/ : /^avc1\.64/);
    }
  } finally {
    await temp.remove();
  }
});
