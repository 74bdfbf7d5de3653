/**
 * The Fluent forward receiver of local mode. The package's FluentServer acknowledges a chunk as
 * soon as it is decoded — before anything is stored — so a crash right after would lose records
 * their sender has already forgotten. This subclass keeps the package's listener and decoder but
 * acknowledges a chunk only after `accept` resolved, i.e. after the store has the records:
 * at-least-once end to end, and record_id makes a redelivery harmless. When the store fails,
 * the chunk is not acknowledged and the connection is closed, so the sender keeps and resends it.
 */
import type { Socket } from 'node:net';
import { FluentServer } from '@fluent-org/logger';
import * as protocol from '@fluent-org/logger/build/src/protocol.js';
import type { Logger } from '../../../common/src/logger.ts';

export type EntryBatch = Array<{ tag: string; time: unknown; record: unknown }>;

const MAX_PENDING_CHUNKS = 16;

export class AckAfterStoreServer extends FluentServer {
  private readonly connections = new Set<Socket>();

  constructor(
    options: ConstructorParameters<typeof FluentServer>[0],
    private readonly accept: (entries: EntryBatch) => Promise<void>,
    private readonly log: Logger,
  ) {
    super(options);
    // The library's handleConnection is private: replace it on this instance (same signature).
    (this as unknown as { handleConnection: (socket: Socket) => Promise<void> }).handleConnection = (socket) => this.serve(socket);
  }

  /** Stops listening and ends every connection (a chunk still being stored is not acknowledged). */
  override close(): Promise<void> {
    const closed = super.close();
    for (const socket of this.connections) socket.end();
    return closed;
  }

  private async serve(socket: Socket): Promise<void> {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.connections.add(socket);
    socket.once('close', () => this.connections.delete(socket));
    socket.on('error', () => undefined);
    // Several chunks of one connection are stored concurrently (they share store batches, and
    // acks are matched by chunk id, not by order); beyond MAX_PENDING_CHUNKS reading waits, which
    // is the backpressure a slow store puts on its senders.
    const pending = new Set<Promise<void>>();
    let failure: unknown = null;
    try {
      for await (const message of protocol.decodeClientStream(socket)) {
        if (failure) throw failure;
        if (!protocol.isClientTransportMessage(message)) throw new Error('unexpected message (no authentication is configured)');
        const decoded = protocol.parseTransport(message);
        const stored: Promise<void> = this.accept(decoded.entries.map(([time, record]) => ({ tag: decoded.tag, time, record }))).then(
          () => {
            pending.delete(stored);
            if (decoded.chunk && !socket.destroyed) socket.write(protocol.encodeMessage(protocol.generateAck(decoded.chunk)));
          },
          (err: unknown) => {
            pending.delete(stored);
            failure ??= err;
            socket.destroy(); // no ack: the sender keeps the chunk and resends it
          },
        );
        pending.add(stored);
        if (pending.size >= MAX_PENDING_CHUNKS) await Promise.race(pending);
      }
      await Promise.all(pending);
      if (failure) throw failure;
    } catch (err) {
      this.log.warn({ peer, err: (err as Error).message }, 'fluent connection closed without acknowledging its last chunk');
      socket.destroy();
    }
  }
}
