/**
 * Real ffmpeg output for the fmp4 tests: FLV inputs made with lavfi sources, remuxed exactly as
 * ingest's muxer does it (FLV on pipe:0, fragmented MP4 on pipe:3), plus ffprobe's view of the
 * result as the independent truth to compare with.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { createFile, Log, MP4BoxBuffer } from 'mp4box';
import { Fmp4Reader, type Fmp4Error, type InitSegment, type ReaderFragment, type Sample } from '../src/fmp4/index.ts';

export const REMUX_ARGS = ['-map', '0:v?', '-map', '0:a?', '-c', 'copy', '-f', 'mp4', '-movflags', 'empty_moov+default_base_moof+skip_trailer', '-frag_duration', '1', '-flush_packets', '1'];

export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a command, feeding `input` to its stdin; kills it (by its PID, via the handle) after `timeoutMs`. */
export function run(command: string, args: string[], input?: Buffer, timeoutMs = 20_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

async function mustRun(command: string, args: string[], input?: Buffer): Promise<Buffer> {
  const result = await run(command, args, input);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

export interface FlvOptions {
  fps?: number;
  /** B-frames: 0 uses -tune zerolatency, as a live encoder; 2 gives non-zero composition offsets. */
  bframes?: number;
  seconds?: number;
}

/** An FLV with H.264 (keyframe every 60 frames) and AAC, as an RTMP publisher sends. */
export async function makeFlv(file: string, { fps = 30, bframes = 0, seconds = 6 }: FlvOptions = {}): Promise<string> {
  const video = ['-c:v', 'libx264', '-preset', 'veryfast', ...(bframes === 0 ? ['-tune', 'zerolatency'] : []), '-g', '60', '-keyint_min', '60', '-sc_threshold', '0', '-bf', String(bframes), '-b:v', '400k'];
  await mustRun('ffmpeg', [
    '-v', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=320x180:rate=${fps}`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(seconds), ...video, '-c:a', 'aac', '-b:a', '64k', '-f', 'flv', file,
  ]);
  return file;
}

/** One stream of an FLV, copied (a video-only or audio-only publisher). */
export async function extractFlv(input: string, file: string, stream: 'v' | 'a'): Promise<string> {
  await mustRun('ffmpeg', ['-v', 'error', '-y', '-i', input, '-map', `0:${stream}`, '-c', 'copy', '-f', 'flv', file]);
  return file;
}

export interface Remuxed {
  /** The whole fMP4 stream. */
  bytes: Buffer;
  /** As read from the pipe: real chunk boundaries. */
  chunks: Buffer[];
  /** The stream saved to a file, for ffprobe. */
  file: string;
}

/** Remuxes an FLV as ingest does: FLV into ffmpeg's stdin, fragmented MP4 out of fd 3. */
export async function remux(flv: Buffer, file: string): Promise<Remuxed> {
  const chunks: Buffer[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('ffmpeg', ['-v', 'error', '-f', 'flv', '-i', 'pipe:0', ...REMUX_ARGS, 'pipe:3'], { stdio: ['pipe', 'ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    (child.stdio[3] as Readable).on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('error', reject);
    child.on('close', (exit) => {
      clearTimeout(timer);
      if (stderr.trim()) reject(new Error(`ffmpeg remux: ${stderr}`));
      else resolve(exit);
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(flv);
  });
  if (code !== 0) throw new Error(`ffmpeg remux exited ${code}`);
  const bytes = Buffer.concat(chunks);
  await writeFile(file, bytes);
  return { bytes, chunks, file };
}

export interface ProbeStream {
  index: number;
  /** The MP4 track_ID. */
  trackId: number;
  codecType: string;
  packets: number;
  /** Seconds, as ffprobe reports the stream's duration. */
  duration: number;
  /** The track's timescale (ffprobe's time_base is 1/timescale for MP4). */
  timescale: number;
  codecTag: string;
  width?: number;
  height?: number;
  channels?: number;
  sampleRate?: number;
  frames?: number;
}

/** ffprobe -count_packets (and -count_frames, which decodes): per-stream counts and durations. */
export async function probeStreams(file: string, countFrames = false): Promise<ProbeStream[]> {
  const out = await mustRun('ffprobe', ['-v', 'error', '-count_packets', ...(countFrames ? ['-count_frames'] : []), '-show_entries', 'stream=index,id,codec_type,codec_tag_string,time_base,width,height,channels,sample_rate,nb_read_packets,nb_read_frames,duration', '-of', 'json', file]);
  const { streams } = JSON.parse(out.toString()) as { streams: Array<Record<string, string | number>> };
  return streams.map((s) => ({
    index: Number(s.index),
    trackId: Number.parseInt(String(s.id), 16),
    codecType: String(s.codec_type),
    packets: Number(s.nb_read_packets),
    duration: Number(s.duration),
    timescale: Number(String(s.time_base).split('/')[1]),
    codecTag: String(s.codec_tag_string),
    ...(s.width !== undefined ? { width: Number(s.width), height: Number(s.height) } : {}),
    ...(s.channels !== undefined ? { channels: Number(s.channels), sampleRate: Number(s.sample_rate) } : {}),
    ...(countFrames ? { frames: Number(s.nb_read_frames) } : {}),
  }));
}

export interface ProbePacket {
  stream: number;
  dts: number;
  pts: number;
  size: number;
  keyframe: boolean;
  md5: string;
}

/** Every packet in file order, with an MD5 of its bytes. */
export async function probePackets(file: string): Promise<ProbePacket[]> {
  const out = await mustRun('ffprobe', ['-v', 'error', '-show_entries', 'packet=stream_index,pts,dts,size,flags,data_hash', '-show_data_hash', 'md5', '-of', 'json', file]);
  const { packets } = JSON.parse(out.toString()) as { packets: Array<Record<string, string | number>> };
  return packets.map((p) => ({
    stream: Number(p.stream_index),
    dts: Number(p.dts),
    pts: Number(p.pts),
    size: Number(p.size),
    keyframe: String(p.flags).includes('K'),
    md5: String(p.data_hash).replace(/^MD5:/, ''),
  }));
}

export function md5(data: Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

export interface ReadResult {
  init: InitSegment | undefined;
  fragments: ReaderFragment[];
  samples: Sample[];
  errors: Fmp4Error[];
}

/** Feeds chunks to a fresh Fmp4Reader and collects everything it reports. */
export function readChunks(chunks: Iterable<Buffer>): ReadResult {
  const result: ReadResult = { init: undefined, fragments: [], samples: [], errors: [] };
  const reader = new Fmp4Reader({
    onInit: (init) => (result.init = init),
    onFragment: (fragment) => {
      result.fragments.push(fragment);
      for (const sample of fragment.samples) result.samples.push(sample);
    },
    onError: (error) => result.errors.push(error),
  });
  for (const chunk of chunks) reader.push(chunk);
  reader.end();
  return result;
}

export function samplesOf(samples: readonly Sample[], track: number): Sample[] {
  return samples.filter((sample) => sample.track === track);
}

/** The fixture set most tests use, made in `dir`: 6 s of media, or less for tests that need less. */
export async function makeFixtures(dir: string, names: readonly FixtureName[], seconds = 6): Promise<Map<FixtureName, Remuxed>> {
  const flvs = new Map<FixtureName, Promise<string>>();
  const flv = (name: FixtureName): Promise<string> => {
    let made = flvs.get(name);
    if (!made) {
      const file = path.join(dir, `${name}.flv`);
      made =
        name === 'av30' ? makeFlv(file, { seconds })
        : name === 'av30-bframes' ? makeFlv(file, { bframes: 2, seconds })
        : name === 'av25' ? makeFlv(file, { fps: 25, seconds })
        : flv('av30').then((source) => extractFlv(source, file, name === 'video-only' ? 'v' : 'a'));
      flvs.set(name, made);
    }
    return made;
  };
  const entries = await Promise.all(names.map(async (name) => [name, await remux(await readFile(await flv(name)), path.join(dir, `${name}.mp4`))] as const));
  return new Map(entries);
}

export type FixtureName = 'av30' | 'av30-bframes' | 'av25' | 'video-only' | 'audio-only';

// Hand-made boxes for cases ffmpeg does not produce.

export function box(type: string, ...body: Buffer[]): Buffer {
  const content = Buffer.concat(body);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + content.length);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, content]);
}

export function fullBox(type: string, version: number, flags: number, ...body: Buffer[]): Buffer {
  const vf = Buffer.alloc(4);
  vf.writeUInt32BE(((version << 24) | flags) >>> 0);
  return box(type, vf, ...body);
}

export function u32(...values: number[]): Buffer {
  const out = Buffer.alloc(4 * values.length);
  values.forEach((value, i) => (value < 0 ? out.writeInt32BE(value, 4 * i) : out.writeUInt32BE(value, 4 * i)));
  return out;
}

export function u64(value: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(value));
  return out;
}

export interface OracleSample {
  track: number;
  dts: number;
  cts: number;
  duration: number;
  size: number;
  sync: boolean;
  data: Buffer;
}

export interface OracleResult {
  tracks: Array<{ id: number; codec: string; timescale: number; type: string; samples: number }>;
  samples: OracleSample[];
  errors: string[];
}

/** The independent reading: GPAC's mp4box.js parses the whole file and extracts every sample. */
export function readWithMp4box(bytes: Buffer): OracleResult {
  Log.setLogLevel(Log.error);
  const result: OracleResult = { tracks: [], samples: [], errors: [] };
  const file = createFile();
  file.onError = (module: string, message: string) => result.errors.push(`${module}: ${message}`);
  file.onReady = (info) => {
    result.tracks = info.tracks.map((track) => ({ id: track.id, codec: track.codec, timescale: track.timescale, type: track.type ?? 'unknown', samples: track.nb_samples }));
    for (const track of info.tracks) file.setExtractionOptions(track.id, null, { nbSamples: 1_000_000 });
    file.start();
  };
  file.onSamples = (id, _user, samples) => {
    for (const s of samples) {
      result.samples.push({ track: id, dts: s.dts, cts: s.cts, duration: s.duration, size: s.size, sync: s.is_sync, data: Buffer.from(s.data ?? new Uint8Array()) });
    }
  };
  const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
  file.appendBuffer(MP4BoxBuffer.fromArrayBuffer(copy, 0));
  file.flush();
  return result;
}
