/**
 * Groups records arriving on many connections into store-sized batches. `add` resolves once
 * the batch holding those records was written (or rejects if the store failed), so the receiver
 * can acknowledge only what is stored. A full batch is written at once; otherwise after a short
 * linger, which bounds the added latency.
 */
import type { AccessRecord } from '../../../common/src/access-record.ts';

interface Pending {
  records: AccessRecord[];
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
}

export class RecordBatcher {
  private pending: Pending = { records: [], waiters: [] };
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly write: (records: AccessRecord[]) => Promise<void>,
    private readonly maxBatch = 5000,
    private readonly lingerMs = 100,
  ) {}

  add(records: AccessRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.pending.records.push(...records);
      this.pending.waiters.push({ resolve, reject });
      if (this.pending.records.length >= this.maxBatch) this.flushNow();
      else this.timer ??= setTimeout(() => this.flushNow(), this.lingerMs);
    });
  }

  /** Writes whatever is pending and waits for every write in progress. */
  async flush(): Promise<void> {
    this.flushNow();
    await this.writing;
  }

  private flushNow(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    if (batch.records.length === 0) return;
    this.pending = { records: [], waiters: [] };
    // One write at a time keeps the store's work ordered and bounded.
    this.writing = this.writing.then(async () => {
      try {
        await this.write(batch.records);
        for (const w of batch.waiters) w.resolve();
      } catch (err) {
        for (const w of batch.waiters) w.reject(err);
      }
    });
  }
}
