/**
 * Cutting ffmpeg's fragmented MP4 into LL-HLS parts and segments: on synthetic timestamps (FLV's
 * millisecond jitter, dropped frames, leading non-keyframes) and on real ffmpeg output produced by
 * ingest's own command line (muxer-args.ts), checked against ffprobe.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { makeTempDir } from '../../common/testing/processes.ts';
import { Fmp4Reader, type InitSegment } from '../src/fmp4/reader.ts';
import { writeFragment } from '../src/fmp4/part-writer.ts';
import { passthroughArgs } from '../src/muxer/muxer-args.ts';
import { CutPlan, PartCutter, partTargetFor, type CutPart, type CutterSample } from '../src/muxer/part-cutter.ts';
import { run } from './fmp4-fixtures.ts';

const VIDEO = { id: 1, kind: 'video' as const, timescale: 1000 };
const AUDIO = { id: 2, kind: 'audio' as const, timescale: 48000 };

function cutter(parts: CutPart[], partSeconds = 1 / 3, segmentSeconds = 1): PartCutter {
  return new PartCutter({ tracks: [VIDEO, AUDIO], partSeconds, segmentSeconds, write: writeFragment, onPart: (p) => parts.push(p) });
}

function frame(dts: number, keyframe: boolean): CutterSample {
  return { track: 1, dts, duration: 0, flags: keyframe ? 0x2000000 : 0x1010000, compositionOffset: 0, keyframe, data: Buffer.from([dts & 0xff]) };
}

/** Millisecond timestamps of `n` frames at `fps`, as FLV carries them (33, 33, 34, …). */
const msTimes = (n: number, fps: number, from = 0): number[] => Array.from({ length: n }, (_, i) => Math.round(((from + i) * 1000) / fps));

describe('on synthetic timestamps', () => {
  test('30 fps with millisecond jitter: every part is 10 frames, a segment per keyframe interval, the first part independent', () => {
    const parts: CutPart[] = [];
    const c = cutter(parts);
    msTimes(181, 30).forEach((t, i) => c.push(frame(t, i % 60 === 0)));
    assert.deepEqual(parts.map((p) => Math.round(p.duration * 1000)), [333, 334, 333, 333, 334, 333, 333, 334, 333, 333, 334, 333, 333, 334, 333, 333, 334, 333]);
    assert.deepEqual(parts.map((p) => p.segment), [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
    assert.deepEqual(parts.filter((p) => p.startsSegment).map((p) => p.index), [0, 6, 12]);
    assert.ok(parts.every((p) => p.independent === p.startsSegment));
    assert.deepEqual(parts.map((p) => p.index), parts.map((_, i) => i), 'numbered per run across segments');
    const target = partTargetFor(1 / 3, c.frameDuration!);
    assert.equal(target, 0.336);
    assert.ok(parts.every((p) => p.duration <= target && p.duration >= 0.85 * target));
  });

  test('25, 24 and 60 fps: whole frames closest to a third of a second; the part target fits the 85 % rule', () => {
    for (const [fps, frames] of [[25, 8], [24, 8], [60, 20], [15, 5], [10, 3]] as const) {
      const parts: CutPart[] = [];
      const c = cutter(parts);
      msTimes(fps * 4 + 1, fps).forEach((t, i) => c.push(frame(t, i % (fps * 2) === 0)));
      const target = partTargetFor(1 / 3, c.frameDuration!);
      // The last part of a segment is what is left of the keyframe interval.
      for (const p of parts.filter((_, i) => i < parts.length - 1 && !parts[i + 1]!.startsSegment)) {
        assert.ok(Math.abs(p.duration - frames / fps) <= 0.0011, `${fps} fps: part of ${p.duration} s, expected ${frames} frames`);
        assert.ok(p.duration <= target && p.duration >= 0.85 * target, `${fps} fps: ${p.duration} within [0.85, 1] x ${target}`);
      }
    }
  });

  test('a dropped frame makes one part a frame longer at most; a long keyframe interval keeps cutting parts', () => {
    const parts: CutPart[] = [];
    const c = cutter(parts);
    const times = msTimes(300, 30).filter((_, i) => i !== 15);
    times.forEach((t) => c.push(frame(t, t === 0)));
    assert.ok(Math.abs(parts[1]!.duration - 0.333) <= 0.0011, `the part with the gap still ends at 10 frames of time (${parts[1]!.duration})`);
    assert.ok(parts.every((p) => p.segment === 0), 'no keyframe after the first: one segment');
    assert.ok(parts.length >= 28);
  });

  test('nothing before the first keyframe; audio samples go into the part open when they arrive, with exact durations', () => {
    const parts: CutPart[] = [];
    const c = cutter(parts);
    c.push(frame(0, false));
    c.push({ track: 2, dts: 0, duration: 1024, flags: 0x2000000, compositionOffset: 0, keyframe: true, data: Buffer.from('a0') });
    assert.equal(c.dropped, 2);
    const times = msTimes(12, 30, 1);
    for (const [i, t] of times.entries()) {
      c.push(frame(t, i === 0));
      c.push({ track: 2, dts: Math.round((t * 48000) / 1000), duration: 1024, flags: 0x2000000, compositionOffset: 0, keyframe: true, data: Buffer.from(`a${i}`) });
    }
    c.flush();
    assert.equal(parts.length, 2);
    assert.equal(parts[0]!.start, 0);
    assert.ok(Math.abs(parts[1]!.start - 0.3333) < 0.001);
    assert.equal(parts[1]!.duration, 0.066, 'the run ended: the last part has the frames it got (2: its last duration estimated)');
    assert.equal(c.nextPartIndex, 2);
  });
});

/** Remuxes an FLV with ingest's passthrough command line (FLV on stdin, fMP4 on fd 3). */
function remux(flv: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('ffmpeg', passthroughArgs(), { stdio: ['pipe', 'ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    (child.stdio[3] as Readable).on('data', (chunk: Buffer) => out.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`ffmpeg exited ${code}`));
    });
    child.stdin!.end(flv);
  });
}

async function flvOf(dir: string, name: string, fps: number, gop: number, extra: string[] = []): Promise<Buffer> {
  const file = path.join(dir, `${name}.flv`);
  const result = await run('ffmpeg', [
    '-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=320x180:rate=${fps}`, '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '6',
    '-c:v', 'libx264', '-preset', 'veryfast', '-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0', '-b:v', '400k', ...extra,
    '-c:a', 'aac', '-b:a', '64k', '-f', 'flv', '-y', file,
  ]);
  assert.equal(result.code, 0, result.stderr);
  return (await run('cat', [file])).stdout;
}

describe('on real ffmpeg output (ingest\'s command line)', () => {
  for (const input of [
    { name: '30fps-2s', fps: 30, gop: 60, extra: ['-tune', 'zerolatency', '-bf', '0'], segment: 2 },
    { name: '25fps-1s', fps: 25, gop: 25, extra: ['-tune', 'zerolatency', '-bf', '0'], segment: 1 },
    { name: '30fps-2s-bframes', fps: 30, gop: 60, extra: ['-bf', '2'], segment: 2 },
  ]) {
    test(`${input.name}: parts within the part target, segments on keyframes, and the parts decode to the same frames`, async (t) => {
      const temp = await makeTempDir('cutter');
      t.after(temp.remove);
      const flv = await flvOf(temp.dir, input.name, input.fps, input.gop, input.extra);
      const fmp4 = await remux(flv);
      const parts: CutPart[] = [];
      let init: InitSegment | null = null;
      let c: PartCutter | null = null;
      const errors: Error[] = [];
      const reader = new Fmp4Reader({
        onInit: (i) => {
          init = i;
          c = new PartCutter({ tracks: i.tracks, partSeconds: 1 / 3, segmentSeconds: 1, write: writeFragment, onPart: (p) => parts.push(p) });
        },
        onSample: (s) => c!.push(s),
        onError: (e) => errors.push(e),
      });
      // As the pipe delivers it: in chunks.
      for (let i = 0; i < fmp4.length; i += 4096) reader.push(fmp4.subarray(i, i + 4096));
      reader.end();
      c!.flush();
      assert.deepEqual(errors, []);
      const target = c!.partTarget!;
      assert.equal(target, partTargetFor(1 / 3, 1 / input.fps), 'the part target follows the frame rate');
      const segments = new Map<number, CutPart[]>();
      for (const p of parts) segments.set(p.segment, [...(segments.get(p.segment) ?? []), p]);
      for (const [n, list] of segments) {
        assert.ok(list[0]!.startsSegment && list[0]!.independent, `segment ${n} starts with an independent part`);
        for (const [i, p] of list.entries()) {
          const last = i === list.length - 1;
          assert.ok(p.duration <= target + 1e-9, `part ${p.index}: ${p.duration} ≤ ${target}`);
          if (!last && !p.independent) assert.ok(p.duration >= 0.85 * target, `part ${p.index}: ${p.duration} ≥ 85 % of ${target}`);
        }
        const duration = list.reduce((sum, p) => sum + p.duration, 0);
        // ffmpeg moves a run's first frame to decode time 0 (measured: 21 ms earlier), so the first segment may be that much longer.
        if (n < segments.size - 1) assert.ok(Math.abs(duration - input.segment) < (n === 0 ? 0.03 : 0.01), `segment ${n}: ${duration} s`);
      }
      // The parts, concatenated after the init, are the whole stream: ffprobe counts the same frames.
      const file = path.join(temp.dir, 'parts.mp4');
      await writeFile(file, Buffer.concat([init!.bytes, ...parts.map((p) => p.bytes)]));
      const count = async (f: string, stream: string) => Number((await run('ffprobe', ['-v', 'error', '-count_packets', '-select_streams', stream, '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0', f])).stdout.toString().trim());
      const original = path.join(temp.dir, `${input.name}.flv`);
      assert.equal(await count(file, 'v:0'), await count(original, 'v:0'), 'video frames');
      assert.equal(await count(file, 'a:0'), await count(original, 'a:0'), 'audio frames');
      const decode = await run('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-']);
      assert.equal(decode.code, 0);
      assert.equal(decode.stderr.trim(), '', 'decodes without a warning');
    });
  }
});

describe('several outputs of one run (quality ladder)', () => {
  test('followers cut at the leader\'s frames whatever their own timestamps, even when they run ahead of it', () => {
    const plan = new CutPlan();
    const leader: CutPart[] = [];
    const follower: CutPart[] = [];
    const make = (parts: CutPart[], role: 'leader' | 'follower') =>
      new PartCutter({ tracks: [VIDEO, AUDIO], partSeconds: 1 / 3, segmentSeconds: 1, plan: { plan, role }, write: writeFragment, onPart: (p) => parts.push(p) });
    const a = make(leader, 'leader');
    const b = make(follower, 'follower');
    // The copy: FLV milliseconds, its first frame stretched to 0 (as ffmpeg does); the encoder's: an exact 1/15 s grid.
    const copy = [0, ...msTimes(60, 15, 1).map((t) => t + 21)].slice(0, 60);
    const encoded = Array.from({ length: 60 }, (_, i) => Math.round((i * 1000) / 15));
    // The follower gets its first 20 frames before the leader has decided anything.
    encoded.slice(0, 20).forEach((t, i) => b.push(frame(t, i % 15 === 0)));
    assert.equal(follower.length, 0, 'a follower waits for the leader');
    copy.forEach((t, i) => a.push(frame(t, i % 15 === 0)));
    encoded.slice(20).forEach((t, i) => b.push(frame(t, (i + 20) % 15 === 0)));
    a.flush();
    b.flush();
    assert.deepEqual(follower.map((p) => [p.index, p.segment, p.startsSegment]), leader.map((p) => [p.index, p.segment, p.startsSegment]));
    assert.equal(b.partTarget, a.partTarget, 'one part target for every rendition');
    for (const [i, p] of follower.entries()) assert.ok(Math.abs(p.duration - leader[i]!.duration) < 0.03, `part ${i}: ${p.duration} vs ${leader[i]!.duration}`);
  });
});
