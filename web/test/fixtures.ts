import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import type { LiveState, LiveStream } from '../../common/src/live-state.ts';
import { writeFileAtomic } from '../../common/src/atomic-file.ts';
import { ingestStateFile, streamDir } from '../../common/src/media-layout.ts';

/** Test helpers shared by the web integration and browser tests (not a test file itself). */

export function liveStream(stream: string, overrides: Partial<LiveStream> = {}): LiveStream {
  return {
    stream,
    state: 'live',
    since: new Date().toISOString(),
    video: { codec: 'h264', width: 1280, height: 720, fps: 30 },
    audio: { codec: 'aac', sampleRate: 48000, channels: 2 },
    bitrateKbps: 2500,
    lowLatency: false,
    ...overrides,
  };
}

/** Writes ingest/live.json as ingest does (atomically, fresh updatedAt, 2 s heartbeat). */
export async function writeLiveState(mediaDir: string, streams: LiveStream[], updatedAt = new Date()): Promise<void> {
  const state: LiveState = { version: 1, updatedAt: updatedAt.toISOString(), heartbeatMs: 2000, streams };
  await mkdir(path.dirname(ingestStateFile(mediaDir)), { recursive: true });
  await writeFileAtomic(ingestStateFile(mediaDir), JSON.stringify(state));
}

/** Rewrites live.json every second, like ingest's heartbeat, until stopped. */
export function keepLiveStateFresh(mediaDir: string, streams: () => LiveStream[]): { stop: () => void } {
  const timer = setInterval(() => void writeLiveState(mediaDir, streams()).catch(() => {}), 1000);
  return { stop: () => clearInterval(timer) };
}

export function mediaPlaylist(run: string, segments: number, ended = false): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-TARGETDURATION:1', '#EXT-X-MEDIA-SEQUENCE:0', `#EXT-X-MAP:URI="${run}-init.mp4"`];
  for (let i = 0; i < segments; i++) lines.push('#EXTINF:1.000000,', `${run}-${i}.m4s`);
  if (ended) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}

/** A stream folder with a playlist, an init file and `count` segments of recognisable random bytes. */
export async function writeStreamFiles(mediaDir: string, stream: string, run: string, count: number, segmentBytes = 64 * 1024): Promise<Map<string, Buffer>> {
  const dir = streamDir(mediaDir, stream);
  await mkdir(dir, { recursive: true });
  const files = new Map<string, Buffer>();
  files.set(`${run}-init.mp4`, randomBody(700));
  for (let i = 0; i < count; i++) files.set(`${run}-${i}.m4s`, randomBody(segmentBytes));
  for (const [name, body] of files) await writeFile(path.join(dir, name), body);
  const playlist = Buffer.from(mediaPlaylist(run, count));
  await writeFileAtomic(path.join(dir, 'index.m3u8'), playlist);
  files.set('index.m3u8', playlist);
  return files;
}

function randomBody(size: number): Buffer {
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = (i * 131 + size) & 0xff;
  return body;
}

/**
 * Sends `request` verbatim over TCP and returns the raw response: fetch would normalise `..`
 * and percent-escapes before they ever reach the server.
 */
export function rawRequest(port: number, request: string, timeoutMs = 10_000): Promise<{ status: number; head: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to ${JSON.stringify(request.split('\r\n')[0])}`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      const head = all.subarray(0, split === -1 ? all.length : split).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? NaN);
      resolve({ status, head, body: split === -1 ? Buffer.alloc(0) : all.subarray(split + 4) });
    });
    socket.write(request);
  });
}

export function rawGet(port: number, target: string, method = 'GET'): ReturnType<typeof rawRequest> {
  return rawRequest(port, `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
}
