import type { Registry } from 'prom-client';
import { ACCESS_RECORD_TAG } from '../access-record.ts';
import type { Logger } from '../logger.ts';
import { Fifo } from './fifo.ts';
import { FluentLink, isPermanentSendError } from './fluent-link.ts';
import { createShipperMetrics, DROP_REASONS, type DropReason, type ShipperMetrics } from './shipper-metrics.ts';
import { Spool, type SpoolSegment } from './spool.ts';

/**
 * Ships access records to a Fluent forward receiver without losing them when the receiver is
 * down or slow:
 *
 *   ship() ──▶ memory queue (bounded) ──batches──▶ FluentClient ──▶ receiver
 *                 │  full                ▲ ack: record leaves memory
 *                 ▼                      │ no ack / connection lost: batch back to the front
 *              disk spool ──replay (oldest first, once memory has drained)──┘
 *
 * - A record leaves memory only when the receiver acknowledged its batch (forward-protocol
 *   `ack`); a batch that fails, times out, or whose connection closes is retried first.
 * - At most `maxBatchesInFlight` batches are handed to the client, and only while its socket is
 *   writable, so the client's own (unbounded, batch-dropping) queue never grows.
 * - Delivery is at-least-once: a lost acknowledgement means a resend. Records carry a unique
 *   record_id, which the stores use as document id, so a duplicate is stored once.
 * - Spool files are deleted only when all their records were acknowledged; files left by a
 *   previous run (crash, restart) are replayed after start.
 */
export interface RecordShipperOptions {
  host: string;
  port: number;
  /** Folder of this process's spool files (one folder per instance: files are never shared). */
  spoolDir: string;
  registry: Registry;
  logger: Logger;
  tag?: string;
  /** Records held in memory (queued + in flight + loaded for replay); beyond it, records spill to disk. */
  maxQueuedRecords?: number;
  batchRecords?: number;
  /**
   * How long a new record may wait for others to share its batch (a full batch leaves at once).
   * One batch per record costs a chunk id, an ack and a write each: at hundreds of requests per
   * second that was a visible share of a web replica's CPU.
   */
  batchLingerMs?: number;
  maxBatchesInFlight?: number;
  ackTimeoutMs?: number;
  /** Records waiting to be written to the spool (a disk slower than the traffic); beyond it they are dropped. */
  maxSpillBacklog?: number;
  /** Spool file rotation size. */
  segmentBytes?: number;
  /** Spool cap; beyond it the oldest records are dropped (and counted). */
  maxSpoolBytes?: number;
  reconnectDelayMs?: number;
  reconnectMaxDelayMs?: number;
}

export const SHIPPER_DEFAULTS = {
  maxQueuedRecords: 20_000,
  batchRecords: 500,
  batchLingerMs: 50,
  maxBatchesInFlight: 4,
  // Generous: an ack that merely arrives late causes a duplicate send, and under a backlog a
  // receiver may take seconds per batch.
  ackTimeoutMs: 10_000,
  maxSpillBacklog: 20_000,
  segmentBytes: 8 * 1024 * 1024,
  maxSpoolBytes: 1024 * 1024 * 1024,
  reconnectDelayMs: 250,
  reconnectMaxDelayMs: 5_000,
} as const;

type ShippedRecord = Record<string, unknown>;

/** A record in memory; `source` is its spool file when it is being replayed (it is still on disk). */
interface Entry {
  record: ShippedRecord;
  source: SpoolSegment | null;
}

interface Batch {
  entries: Entry[];
  /** Acknowledged, failed or abandoned: later news about it is ignored. */
  done: boolean;
}

export interface ShipperStats {
  queued: number;
  spooled: number;
  /** Records handed to the spool and not yet written. */
  spilling: number;
  sent: number;
  acked: number;
  spilled: number;
  replayed: number;
  retried: number;
  dropped: Record<DropReason, number>;
}

const MAX_RETRY_BACKOFF_MS = 5_000;

export class RecordShipper {
  private readonly options: Required<Omit<RecordShipperOptions, 'registry' | 'logger' | 'spoolDir' | 'host' | 'port'>>;
  private readonly logger: Logger;
  private readonly link: FluentLink;
  private readonly spool: Spool;
  private readonly metrics: ShipperMetrics;
  private readonly counts: ShipperStats;

  private readonly pending = new Fifo<Entry>();
  /** Failed batches, sent again before anything in `pending`. */
  private retry: Entry[][] = [];
  private readonly inFlight = new Set<Batch>();
  /** pending + retry + in flight. */
  private inMemory = 0;
  private replay: { segment: SpoolSegment; lines: string[]; next: number } | null = null;
  private replayLoading = false;
  private pumpScheduled = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private lingerTimer: NodeJS.Timeout | null = null;
  private retryNotBefore = 0;
  private failureStreak = 0;
  private closing = false;
  private closePromise: Promise<void> | null = null;
  private waiters: Array<() => void> = [];

  constructor(options: RecordShipperOptions) {
    this.options = {
      tag: options.tag ?? ACCESS_RECORD_TAG,
      maxQueuedRecords: options.maxQueuedRecords ?? SHIPPER_DEFAULTS.maxQueuedRecords,
      batchRecords: options.batchRecords ?? SHIPPER_DEFAULTS.batchRecords,
      batchLingerMs: options.batchLingerMs ?? SHIPPER_DEFAULTS.batchLingerMs,
      maxBatchesInFlight: options.maxBatchesInFlight ?? SHIPPER_DEFAULTS.maxBatchesInFlight,
      ackTimeoutMs: options.ackTimeoutMs ?? SHIPPER_DEFAULTS.ackTimeoutMs,
      maxSpillBacklog: options.maxSpillBacklog ?? SHIPPER_DEFAULTS.maxSpillBacklog,
      segmentBytes: options.segmentBytes ?? SHIPPER_DEFAULTS.segmentBytes,
      maxSpoolBytes: options.maxSpoolBytes ?? SHIPPER_DEFAULTS.maxSpoolBytes,
      reconnectDelayMs: options.reconnectDelayMs ?? SHIPPER_DEFAULTS.reconnectDelayMs,
      reconnectMaxDelayMs: options.reconnectMaxDelayMs ?? SHIPPER_DEFAULTS.reconnectMaxDelayMs,
    };
    this.logger = options.logger;
    const dropped = Object.fromEntries(DROP_REASONS.map((reason) => [reason, 0])) as Record<DropReason, number>;
    this.counts = { queued: 0, spooled: 0, spilling: 0, sent: 0, acked: 0, spilled: 0, replayed: 0, retried: 0, dropped };
    this.spool = new Spool({
      dir: options.spoolDir,
      segmentBytes: this.options.segmentBytes,
      maxBytes: this.options.maxSpoolBytes,
      logger: this.logger,
      onWritten: (count) => {
        this.counts.spilled += count;
        this.metrics.spilled.inc(count);
      },
      onDropped: (count, reason) => this.drop(count, reason),
    });
    this.link = new FluentLink({
      host: options.host,
      port: options.port,
      tag: this.options.tag,
      ackTimeoutMs: this.options.ackTimeoutMs,
      reconnectDelayMs: this.options.reconnectDelayMs,
      reconnectMaxDelayMs: this.options.reconnectMaxDelayMs,
      clientQueueLimit: this.options.batchRecords * this.options.maxBatchesInFlight * 2,
      logger: this.logger,
    });
    this.metrics = createShipperMetrics(options.registry, {
      queued: () => this.inMemory,
      spooled: () => this.spool.records,
      receiverUp: () => this.link.connected,
    });
    this.link.on('writable', () => {
      this.changed();
      this.schedulePump();
    });
    this.link.on('down', () => this.onLinkDown());
    void this.spool.ready().then(() => {
      if (this.spool.records > 0) {
        this.logger.info({ records: this.spool.records, files: this.spool.segmentCount, dir: this.spool.dir }, 'record spool holds records from a previous run; replaying them');
      }
      this.schedulePump();
    });
  }

  /** Resolves once the spool folder was scanned (records left by a previous run are known). */
  ready(): Promise<void> {
    return this.spool.ready();
  }

  /** Takes one record. Synchronous, no I/O, never throws: safe on the request path. */
  ship(record: object): void {
    try {
      if (this.closing || this.inMemory >= this.options.maxQueuedRecords) {
        this.spill([record as ShippedRecord], false);
        return;
      }
      this.pending.push({ record: record as ShippedRecord, source: null });
      this.inMemory++;
      if (this.pending.length >= this.options.batchRecords) this.schedulePump();
      else this.scheduleLingeringPump();
    } catch (err) {
      this.logger.error({ err }, 'record shipper failed to take a record');
    }
  }

  /**
   * Shutdown: tries to deliver what is in memory for up to `timeoutMs` (less when the receiver is
   * down), then writes whatever is left to the spool and fsyncs it. Resolves when no record is
   * held only in memory.
   */
  close(timeoutMs = 5_000): Promise<void> {
    this.closePromise ??= this.doClose(timeoutMs).catch((err: unknown) => this.logger.error({ err }, 'record shipper failed to close cleanly'));
    return this.closePromise;
  }

  stats(): ShipperStats {
    return { ...this.counts, dropped: { ...this.counts.dropped }, queued: this.inMemory, spooled: this.spool.records, spilling: this.spool.buffered };
  }

  get connected(): boolean {
    return this.link.connected;
  }

  // ---- sending ----

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    this.clearLinger();
    // setImmediate: records shipped in the same tick (one burst of responses) leave as one batch.
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** A new record waits up to batchLingerMs for company, unless a pump is already due. */
  private scheduleLingeringPump(): void {
    if (this.pumpScheduled || this.lingerTimer !== null) return;
    if (this.options.batchLingerMs === 0) return this.schedulePump();
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = null;
      this.pump();
    }, this.options.batchLingerMs);
  }

  private clearLinger(): void {
    if (this.lingerTimer === null) return;
    clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
  }

  private pump(): void {
    while (this.inFlight.size < this.options.maxBatchesInFlight && this.link.writable) {
      const wait = this.retryNotBefore - Date.now();
      if (wait > 0) {
        this.armRetryTimer(wait);
        break;
      }
      const entries = this.retry.shift() ?? this.pending.take(this.options.batchRecords);
      if (entries.length === 0) break;
      this.send(entries);
    }
    if (!this.closing && this.retry.length === 0 && this.pending.length === 0) this.feedReplay();
  }

  private send(entries: Entry[]): void {
    const batch: Batch = { entries, done: false };
    this.inFlight.add(batch);
    this.counts.sent += entries.length;
    this.metrics.sent.inc(entries.length);
    this.link.send(entries.map((entry) => entry.record)).then(
      () => this.onAcked(batch),
      (err: unknown) => this.onFailed(batch, err, true),
    );
  }

  private onAcked(batch: Batch): void {
    if (batch.done) return;
    batch.done = true;
    this.inFlight.delete(batch);
    const n = batch.entries.length;
    this.inMemory -= n;
    this.counts.acked += n;
    this.metrics.acked.inc(n);
    const replayed = this.settleSpooled(batch.entries);
    if (replayed > 0) {
      this.counts.replayed += replayed;
      this.metrics.replayed.inc(replayed);
    }
    if (this.failureStreak > 0) this.logger.info({ failedBatches: this.failureStreak }, 'record receiver acknowledging again');
    this.failureStreak = 0;
    this.retryNotBefore = 0;
    this.changed();
    this.schedulePump();
  }

  /** `backoff`: the receiver failed to acknowledge on a live connection, so do not hammer it. */
  private onFailed(batch: Batch, err: unknown, backoff: boolean): void {
    if (batch.done) return;
    batch.done = true;
    this.inFlight.delete(batch);
    const n = batch.entries.length;
    if (isPermanentSendError(err)) {
      this.inMemory -= n;
      this.settleSpooled(batch.entries);
      this.drop(n, 'invalid');
      this.logger.error({ err, records: n }, 'records refused by the Fluent client; dropped');
    } else {
      this.retry.push(batch.entries);
      this.counts.retried += n;
      this.metrics.retried.inc(n);
      if (backoff) {
        this.failureStreak++;
        this.retryNotBefore = Date.now() + Math.min(MAX_RETRY_BACKOFF_MS, 100 * 2 ** Math.min(this.failureStreak, 10));
        if (this.failureStreak === 1) this.logger.warn({ err, records: n }, 'record batch not acknowledged; retrying');
      }
    }
    this.changed();
    this.schedulePump();
  }

  /** The connection closed: acknowledgements for batches written on it will never come. */
  private onLinkDown(): void {
    for (const batch of [...this.inFlight]) this.onFailed(batch, new Error('connection closed'), false);
    this.changed();
  }

  private armRetryTimer(wait: number): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.schedulePump();
    }, wait);
    this.retryTimer.unref();
  }

  /** Marks replayed records as done in their spool files; returns how many came from the spool. */
  private settleSpooled(entries: Entry[]): number {
    let total = 0;
    let segment: SpoolSegment | null = null;
    let run = 0;
    for (const entry of entries) {
      if (entry.source === null) continue;
      total++;
      if (entry.source !== segment) {
        if (segment && run > 0) this.spool.settle(segment, run);
        segment = entry.source;
        run = 0;
      }
      run++;
    }
    if (segment && run > 0) this.spool.settle(segment, run);
    return total;
  }

  // ---- spilling and replay ----

  /** To disk. `force` (shutdown) skips the write-backlog limit: nothing else would keep them. */
  private spill(records: ShippedRecord[], force: boolean): void {
    if (records.length === 0) return;
    if (!force && this.spool.buffered >= this.options.maxSpillBacklog) {
      this.drop(records.length, 'spool_backlog');
      return;
    }
    const lines: string[] = [];
    for (const record of records) {
      try {
        lines.push(JSON.stringify(record));
      } catch {
        this.drop(1, 'invalid');
      }
    }
    this.spool.append(lines);
  }

  /**
   * Replays the spool once the memory queue has drained and the receiver is writable: the oldest
   * file's records join the queue a few batches at a time, so fresh records are never held back
   * behind a long backlog and memory stays bounded.
   */
  private feedReplay(): void {
    if (this.closing || this.replayLoading || !this.link.writable) return;
    if (this.inMemory > this.options.maxQueuedRecords / 2) return;
    const replay = this.replay;
    if (replay && replay.segment.live && replay.next < replay.lines.length) {
      const want = Math.min(this.options.maxQueuedRecords - this.inMemory, this.options.batchRecords * this.options.maxBatchesInFlight);
      const end = Math.min(replay.lines.length, replay.next + want);
      let corrupt = 0;
      for (let i = replay.next; i < end; i++) {
        const record = parseSpoolLine(replay.lines[i]!);
        replay.lines[i] = ''; // let the text go as soon as it is parsed
        replay.segment.loaded++;
        if (record === null) corrupt++;
        else {
          this.pending.push({ record, source: replay.segment });
          this.inMemory++;
        }
      }
      replay.next = end;
      if (corrupt > 0) {
        this.spool.settle(replay.segment, corrupt);
        this.drop(corrupt, 'spool_corrupt');
        this.logger.warn({ file: replay.segment.path, lines: corrupt }, 'unreadable lines in a record spool file; skipped');
      }
      this.schedulePump();
      return;
    }
    this.replay = null;
    if (!this.spool.hasUnreplayed) return;
    this.replayLoading = true;
    this.spool.nextReplaySegment().then(
      (next) => {
        this.replayLoading = false;
        if (next === null) return;
        this.replay = { segment: next.segment, lines: next.lines, next: 0 };
        this.logger.info({ file: next.segment.path, records: next.lines.length, spooled: this.spool.records }, 'replaying a record spool file');
        this.schedulePump();
      },
      (err: unknown) => {
        this.replayLoading = false;
        this.logger.error({ err }, 'cannot read the record spool for replay');
      },
    );
  }

  // ---- shutdown ----

  private async doClose(timeoutMs: number): Promise<void> {
    this.closing = true;
    this.replay = null;
    // Records loaded for replay are still in their spool files: no need to deliver them now.
    const onDisk = (entry: Entry): boolean => entry.source !== null && entry.source.live;
    let released = this.pending.retain((entry) => !onDisk(entry));
    this.retry = this.retry.map((entries) => {
      const kept = entries.filter((entry) => !onDisk(entry));
      released += entries.length - kept.length;
      return kept;
    }).filter((entries) => entries.length > 0);
    this.inMemory -= released;

    const startedAt = Date.now();
    const deadline = startedAt + timeoutMs;
    const before = this.counts.acked;
    this.schedulePump();
    while (this.inMemory > 0 && Date.now() < deadline) {
      // Receiver down and nothing awaiting an acknowledgement: waiting would only delay shutdown.
      if (!this.link.writable && this.inFlight.size === 0) break;
      await this.waitForChange(deadline - Date.now());
    }

    // Batches still unacknowledged are abandoned and spilled: if their ack was merely late, the
    // records are delivered twice (deduplicated by record_id), never lost.
    for (const batch of this.inFlight) {
      batch.done = true;
      this.retry.push(batch.entries);
    }
    this.inFlight.clear();
    const leftovers = [...this.retry.flat(), ...this.pending.drain()].filter((entry) => !onDisk(entry));
    this.retry = [];
    this.inMemory = 0;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.clearLinger();
    this.spill(
      leftovers.map((entry) => entry.record),
      true,
    );
    await this.link.close(500);
    await this.spool.close();
    this.logger.info(
      { deliveredMs: Date.now() - startedAt, deliveredOnClose: this.counts.acked - before, spilledOnClose: leftovers.length, spooled: this.spool.records, dir: this.spool.dir },
      'record shipping stopped',
    );
  }

  private waitForChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, ms));
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private changed(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private drop(count: number, reason: DropReason): void {
    if (count <= 0) return;
    this.counts.dropped[reason] += count;
    this.metrics.dropped.inc({ reason }, count);
  }
}

/** A spool line back to a record; null when it is not a JSON object (a torn write). */
function parseSpoolLine(line: string): ShippedRecord | null {
  if (line.length === 0) return null;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as ShippedRecord) : null;
  } catch {
    return null;
  }
}
