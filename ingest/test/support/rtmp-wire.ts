/**
 * Just enough of the RTMP wire format to talk to ingest from a raw socket in tests: the simple
 * handshake, chunked messages, AMF0 commands (connect, createStream, publish) and raw bytes.
 * Deliberately independent of node-media-server so tests do not trust the code they test.
 */
import { connect, type Socket } from 'node:net';

export const RTMP_VERSION = 3;
export const HANDSHAKE_SIZE = 1536;

export const MessageType = {
  setChunkSize: 1,
  audio: 8,
  video: 9,
  data: 18,
  command: 20,
} as const;

type Amf0Value = number | string | boolean | null | { [key: string]: Amf0Value };

function amf0String(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const head = Buffer.alloc(2);
  head.writeUInt16BE(bytes.length);
  return Buffer.concat([head, bytes]);
}

export function amf0(value: Amf0Value): Buffer {
  if (value === null) return Buffer.from([0x05]);
  if (typeof value === 'number') {
    const out = Buffer.alloc(9);
    out[0] = 0x00;
    out.writeDoubleBE(value, 1);
    return out;
  }
  if (typeof value === 'boolean') return Buffer.from([0x01, value ? 1 : 0]);
  if (typeof value === 'string') return Buffer.concat([Buffer.from([0x02]), amf0String(value)]);
  const parts: Buffer[] = [Buffer.from([0x03])];
  for (const [key, field] of Object.entries(value)) parts.push(amf0String(key), amf0(field));
  parts.push(Buffer.from([0x00, 0x00, 0x09]));
  return Buffer.concat(parts);
}

export function command(name: string, transactionId: number, ...args: Amf0Value[]): Buffer {
  return Buffer.concat([amf0(name), amf0(transactionId), ...args.map(amf0)]);
}

export interface RtmpMessage {
  chunkStreamId: number;
  type: number;
  streamId: number;
  timestamp?: number;
  payload: Buffer;
  /** Overrides the length field (for lying about the message size). */
  declaredLength?: number;
}

/** One message as chunks: a type-0 header, then type-3 continuation headers every `chunkSize` bytes. */
export function chunkMessage(message: RtmpMessage, chunkSize = 128): Buffer {
  const { chunkStreamId: csid, payload } = message;
  if (csid < 2 || csid > 63) throw new Error('this helper writes one-byte basic headers only (csid 2..63)');
  const header = Buffer.alloc(12);
  header[0] = csid; // fmt 0
  header.writeUIntBE(Math.min(message.timestamp ?? 0, 0xffffff), 1, 3);
  header.writeUIntBE(message.declaredLength ?? payload.length, 4, 3);
  header[7] = message.type;
  header.writeUInt32LE(message.streamId, 8);
  const parts: Buffer[] = [header];
  for (let offset = 0; offset < payload.length; offset += chunkSize) {
    if (offset > 0) parts.push(Buffer.from([0xc0 | csid])); // fmt 3
    parts.push(payload.subarray(offset, offset + chunkSize));
  }
  return Buffer.concat(parts);
}

/** C0 + C1 of the simple handshake (no digest: the server echoes C1 as S2). */
export function c0c1(random: (n: number) => Buffer, version = RTMP_VERSION): Buffer {
  const c1 = Buffer.concat([Buffer.alloc(8), random(HANDSHAKE_SIZE - 8)]);
  return Buffer.concat([Buffer.from([version]), c1]);
}

export function setChunkSize(size: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(size >>> 0);
  return chunkMessage({ chunkStreamId: 2, type: MessageType.setChunkSize, streamId: 0, payload });
}

export function connectCommand(app: string, tcUrl: string): Buffer {
  return chunkMessage({ chunkStreamId: 3, type: MessageType.command, streamId: 0, payload: command('connect', 1, { app, type: 'nonprivate', flashVer: 'FMLE/3.0', tcUrl }) });
}

export function createStreamCommand(): Buffer {
  return chunkMessage({ chunkStreamId: 3, type: MessageType.command, streamId: 0, payload: command('createStream', 2, null) });
}

/** `streamKey` as OBS sends it: `<stream>?key=<secret>`. */
export function publishCommand(streamKey: string): Buffer {
  return chunkMessage({ chunkStreamId: 4, type: MessageType.command, streamId: 1, payload: command('publish', 3, null, streamKey, 'live') });
}

/** A video message (H.264 keyframe, NALU packet) whose body carries `marker`, to trace it downstream. */
export function videoMessage(marker: Buffer, timestamp = 0): Buffer {
  const payload = Buffer.concat([Buffer.from([0x17, 0x01, 0, 0, 0]), marker]);
  return chunkMessage({ chunkStreamId: 6, type: MessageType.video, streamId: 1, timestamp, payload });
}

/** A publisher's opening bytes as a capture: C0C1, C2, then connect, createStream and publish. */
export function publishCapture(port: number, streamKey: string, random: (n: number) => Buffer): Buffer {
  return Buffer.concat([
    c0c1(random),
    random(HANDSHAKE_SIZE), // C2: the server does not check it
    connectCommand('live', `rtmp://127.0.0.1:${port}/live`),
    createStreamCommand(),
    publishCommand(streamKey),
  ]);
}

export interface ClosedConnection {
  /** Milliseconds from connect until the socket closed. */
  afterMs: number;
  /** Bytes the server sent before closing. */
  received: number;
  /** Who closed: the server (end/reset) or this client (after `closeAfterMs`). */
  by: 'server' | 'client';
  error: string | null;
}

/** A raw TCP client on loopback that records what the server sends and when it closes. */
export class RawClient {
  readonly socket: Socket;
  readonly connected: Promise<void>;
  readonly closed: Promise<ClosedConnection>;
  private readonly startedAt = Date.now();
  private readonly chunks: Buffer[] = [];
  private byClient = false;
  private waiters: Array<{ bytes: number; resolve: () => void }> = [];
  received = 0;

  constructor(port: number, options: { host?: string; localAddress?: string } = {}) {
    this.socket = connect({ port, host: options.host ?? '127.0.0.1', ...(options.localAddress ? { localAddress: options.localAddress } : {}) });
    this.socket.setNoDelay(true);
    let error: string | null = null;
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => {
        this.localPort = this.socket.localPort;
        resolve();
      });
      this.socket.once('error', reject);
    });
    this.connected.catch(() => undefined);
    this.socket.on('data', (data: Buffer) => {
      this.received += data.length;
      if (this.chunks.length < 64) this.chunks.push(data);
      this.waiters = this.waiters.filter((w) => {
        if (this.received < w.bytes) return true;
        w.resolve();
        return false;
      });
    });
    this.socket.on('error', (err) => {
      error = (err as NodeJS.ErrnoException).code ?? err.message;
    });
    this.closed = new Promise((resolve) => {
      this.socket.once('close', () => {
        for (const w of this.waiters) w.resolve();
        resolve({ afterMs: Date.now() - this.startedAt, received: this.received, by: this.byClient ? 'client' : 'server', error });
      });
    });
  }

  /** This client's port, as ingest logs it (kept from the moment of connecting). */
  localPort: number | undefined;

  get isClosed(): boolean {
    return this.socket.destroyed;
  }

  write(data: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  /** Resolves once the server has sent at least `bytes` in total (or the socket closed). */
  waitForBytes(bytes: number): Promise<void> {
    if (this.received >= bytes || this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ bytes, resolve }));
  }

  /** The first bytes the server sent (S0 S1 S2 start here). */
  head(n: number): Buffer {
    return Buffer.concat(this.chunks).subarray(0, n);
  }

  close(): void {
    if (this.socket.destroyed) return;
    this.byClient = true;
    this.socket.destroy();
  }

  /** Closes from this side if the server has not closed within `ms`. */
  async closeAfter(ms: number): Promise<ClosedConnection> {
    const timer = setTimeout(() => this.close(), ms);
    const result = await this.closed;
    clearTimeout(timer);
    return result;
  }
}

/** Handshake as a real client does it: C0C1, wait for S0S1S2, send C2 (= S1 echoed). */
export async function handshake(client: RawClient, random: (n: number) => Buffer): Promise<void> {
  await client.connected;
  client.write(c0c1(random));
  await client.waitForBytes(1 + 2 * HANDSHAKE_SIZE);
  if (client.isClosed) throw new Error('server closed during the handshake');
  client.write(client.head(1 + HANDSHAKE_SIZE).subarray(1));
}
