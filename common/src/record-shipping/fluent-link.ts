import { EventEmitter } from 'node:events';
import { FluentClient, FluentError, FluentSocketEvent } from '@fluent-org/logger';
import type { Logger } from '../logger.ts';

/**
 * The connection to the Fluent forward receiver (fluentd, or monitoring's FluentServer), through
 * @fluent-org/logger's FluentClient. It only sends batches and reports the connection's state;
 * queueing, retrying and spilling are the shipper's job, because the client's own queue is
 * unbounded and, in Forward mode, drops or rejects a whole same-tag batch at once.
 *
 * Events: 'writable' (a batch can be sent now), 'down' (the connection closed: acknowledgements of
 * batches written on it can no longer arrive).
 */
export interface FluentLinkOptions {
  host: string;
  port: number;
  tag: string;
  /** How long the receiver has to acknowledge a batch before it is retried. */
  ackTimeoutMs: number;
  /** Reconnect backoff: delay · 2^attempt, capped. The library's own cap is infinite. */
  reconnectDelayMs: number;
  reconnectMaxDelayMs: number;
  /**
   * Safety net for the client's internal queue: the shipper only hands it batches while the
   * socket is writable, so it should never hold more than the batches of one tick.
   */
  clientQueueLimit: number;
  logger: Logger;
}

/** Errors after which the library's socket stays closed for good (state FATAL): a new client is needed. */
const FATAL_ERRORS = new Set(['AuthError', 'SharedKeyMismatchError', 'UnexpectedMessageError', 'FatalSocketError']);

export class FluentLink extends EventEmitter {
  private client: FluentClient;
  private up = false;
  private closed = false;
  private downSince = Date.now();
  private failedAttempts = 0;
  private reportedUnreachable = false;
  private recreateTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: FluentLinkOptions) {
    super();
    this.client = this.createClient();
  }

  /** Connected and able to take a write now (the library reconnects by itself otherwise). */
  get writable(): boolean {
    return !this.closed && this.client.writable;
  }

  get connected(): boolean {
    return this.up;
  }

  /**
   * Sends the records as one Forward-mode packet with one chunk id and one acknowledgement.
   * Resolves when the receiver acknowledged it; rejects when the write failed, the acknowledgement
   * timed out, or the client was shut down. Never throws.
   *
   * The client merges every same-tag emit made before its next-tick flush into one entry with one
   * shared promise; syncFlush() right after the emits closes the packet, so batches sent in the
   * same tick stay separate (otherwise one lost acknowledgement would fail all of them).
   */
  send(records: ReadonlyArray<Record<string, unknown>>): Promise<void> {
    const promises = new Set<Promise<void>>();
    try {
      for (const record of records) {
        const promise = this.client.emit(this.options.tag, record, eventDate(record));
        promise.catch(() => {}); // awaited below through Promise.all; never an unhandled rejection
        promises.add(promise);
      }
      this.client.syncFlush();
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.all(promises).then(() => undefined);
  }

  /** Closes the socket without waiting long: whatever is unacknowledged is the shipper's to keep. */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    if (this.recreateTimer) clearTimeout(this.recreateTimer);
    await withTimeout(this.client.shutdown().catch(() => {}), timeoutMs);
  }

  private createClient(): FluentClient {
    const { host, port, ackTimeoutMs, reconnectDelayMs, reconnectMaxDelayMs, clientQueueLimit } = this.options;
    const client = new FluentClient(null, {
      // Forward: one packet per batch; measured fastest with acks (FIELD-NOTES), and unlike
      // Message mode one acknowledgement per batch instead of per record.
      eventMode: 'Forward',
      ack: { ackTimeout: ackTimeoutMs },
      milliseconds: true,
      // No interval: send() flushes each batch itself.
      flushInterval: 0,
      sendQueueMaxLimit: { length: clientQueueLimit },
      socket: {
        host,
        port,
        // No idle timeout: the library would close an idle socket and only reconnect on the next
        // write, so "connection down" would flap on quiet streams. A dead receiver closes the TCP
        // connection (or acknowledgements time out and batches are retried).
        timeout: -1,
        reconnect: { delay: reconnectDelayMs, backoff: 2, maxDelay: reconnectMaxDelayMs },
      },
    });
    client.socketOn(FluentSocketEvent.ESTABLISHED, () => this.onUp());
    client.socketOn(FluentSocketEvent.WRITABLE, () => this.emit('writable'));
    client.socketOn(FluentSocketEvent.CLOSE, () => this.onClose());
    client.socketOn(FluentSocketEvent.ERROR, (err: Error) => this.onError(client, err));
    return client;
  }

  private onUp(): void {
    if (this.up) return;
    this.up = true;
    const downMs = Date.now() - this.downSince;
    this.options.logger.info({ receiver: `${this.options.host}:${this.options.port}`, downMs, failedAttempts: this.failedAttempts }, 'record receiver connected');
    this.failedAttempts = 0;
    this.reportedUnreachable = false;
  }

  private onClose(): void {
    if (this.up) {
      this.up = false;
      this.downSince = Date.now();
      if (!this.closed) this.options.logger.warn({ receiver: `${this.options.host}:${this.options.port}` }, 'record receiver connection lost; queueing records');
    } else {
      this.failedAttempts++;
    }
    this.emit('down');
  }

  private onError(client: FluentClient, err: Error): void {
    if (this.closed) return;
    if (FATAL_ERRORS.has(err.name)) {
      this.options.logger.error({ err, receiver: `${this.options.host}:${this.options.port}` }, 'record receiver refused the session; reconnecting with a new client');
      this.scheduleRecreate(client);
      return;
    }
    // One line per outage, not one per reconnect attempt.
    if (!this.up && !this.reportedUnreachable) {
      this.reportedUnreachable = true;
      this.options.logger.warn({ receiver: `${this.options.host}:${this.options.port}`, code: (err as NodeJS.ErrnoException).code, error: err.message }, 'record receiver unreachable; queueing records');
    }
  }

  private scheduleRecreate(old: FluentClient): void {
    if (this.recreateTimer || old !== this.client) return;
    this.recreateTimer = setTimeout(() => {
      this.recreateTimer = null;
      if (this.closed) return;
      // Pending batches of the old client are rejected by shutdown() and retried by the shipper.
      void old.shutdown().catch(() => {});
      this.client = this.createClient();
    }, this.options.reconnectMaxDelayMs);
    this.recreateTimer.unref();
  }
}

/** The record's own time (when the response finished) as the event time; now when it has none. */
function eventDate(record: Record<string, unknown>): Date {
  const stamp = record['@timestamp'];
  if (typeof stamp === 'string') {
    const date = new Date(stamp);
    if (!Number.isNaN(date.getTime())) return date;
  }
  return new Date();
}

function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    void promise.finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Errors that no retry can fix: the batch's records are dropped instead of retried forever. */
export function isPermanentSendError(err: unknown): boolean {
  return err instanceof FluentError.DataTypeError || err instanceof FluentError.MissingTagError;
}
