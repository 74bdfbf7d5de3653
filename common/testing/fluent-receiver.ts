/**
 * Test-only Fluent forward receiver, run as its own process (so tests can SIGKILL it):
 *   node --import tsx common/testing/fluent-receiver.ts
 * Environment: RECEIVER_PORT (required), RECEIVER_OUT (NDJSON file, appended), ACK_DELAY_MS
 * (optional: a slow receiver) applied to the first SLOW_ACKS acknowledgements (default: all). Prints `{"listening":<port>}` once it accepts connections.
 *
 * Each received entry becomes one line `{"tag","time"(ms),"record"}`. The package's FluentServer
 * writes the acknowledgement before it hands the entries out; here the acknowledgement is held
 * back until the entries were appended to the file (appendFileSync: in the OS page cache, which
 * survives a SIGKILL of this process), so "acknowledged" means "stored", as with fluentd's buffer.
 */
import { appendFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { EventTime, FluentServer } from '@fluent-org/logger';

const port = Number(process.env.RECEIVER_PORT);
const out = process.env.RECEIVER_OUT;
const ackDelayMs = Number(process.env.ACK_DELAY_MS ?? 0);
let slowAcks = Number(process.env.SLOW_ACKS ?? Infinity);
if (!Number.isInteger(port) || port <= 0 || !out) {
  process.stderr.write('RECEIVER_PORT and RECEIVER_OUT are required\n');
  process.exit(2);
}

const receiver = new FluentServer({ listenOptions: { port, host: '127.0.0.1' } });
let lines: string[] = [];

receiver.on('entry', (tag: string, time: unknown, record: unknown) => {
  const ms = time instanceof EventTime ? time.epoch * 1000 + Math.floor(time.nano / 1e6) : Number(time) * 1000;
  lines.push(`${JSON.stringify({ tag, time: ms, record })}\n`);
});

function persist(): void {
  if (lines.length === 0) return;
  const data = lines.join('');
  lines = [];
  appendFileSync(out!, data);
}

// FluentServer's own 'connection' listener runs first and writes nothing before data arrives
// (no security handshake), so its socket.write calls (acknowledgements only) can be wrapped here.
const net = (receiver as unknown as { server: Server }).server;
net.on('connection', (socket: Socket) => {
  const write = socket.write.bind(socket) as (chunk: unknown) => boolean;
  socket.on('error', () => {});
  (socket as unknown as { write: (chunk: unknown) => boolean }).write = (chunk: unknown) => {
    // Runs before the entries of this message are emitted (same synchronous step): defer.
    const send = (): void => {
      persist();
      if (!socket.destroyed) write(chunk);
    };
    if (ackDelayMs > 0 && slowAcks-- > 0) setTimeout(send, ackDelayMs);
    else process.nextTick(send);
    return true;
  };
});

await receiver.listen();
process.stdout.write(`${JSON.stringify({ listening: receiver.port })}\n`);

const stop = (): void => {
  persist();
  void receiver.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
