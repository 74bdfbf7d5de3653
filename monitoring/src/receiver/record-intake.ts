import { ACCESS_RECORD_TAG, type AccessRecord } from '../../../common/src/access-record.ts';
import type { Logger } from '../../../common/src/logger.ts';
import type { AccessStore } from '../store/access-store.ts';
import type { MonitoringMetrics } from '../metrics.ts';
import { checkAccessRecord } from './access-record-schema.ts';
import type { EntryBatch } from './ack-after-store-server.ts';
import { RecordBatcher } from './record-batcher.ts';

/**
 * From received entries to stored records: validate (malformed ones are counted and logged,
 * never allowed to block the rest), batch, insert. Resolves when the valid ones are stored.
 */
export class RecordIntake {
  private readonly batcher: RecordBatcher;
  private lastRejectLog = 0;

  constructor(
    private readonly store: AccessStore,
    private readonly metrics: MonitoringMetrics,
    private readonly log: Logger,
  ) {
    // Short linger: it bounds the latency a record adds, while concurrent chunks still share a write.
    this.batcher = new RecordBatcher((records) => this.write(records), 5000, 25);
  }

  accept = async (entries: EntryBatch): Promise<void> => {
    const valid: AccessRecord[] = [];
    for (const entry of entries) {
      this.metrics.recordsReceived.inc();
      if (entry.tag !== ACCESS_RECORD_TAG) {
        this.reject('tag', `unexpected tag ${entry.tag}`);
        continue;
      }
      const check = checkAccessRecord(entry.record);
      if (check.ok) valid.push(check.record);
      else this.reject('validation', check.reason);
    }
    await this.batcher.add(valid);
  };

  flush(): Promise<void> {
    return this.batcher.flush();
  }

  private async write(records: AccessRecord[]): Promise<void> {
    const end = this.metrics.storeWriteSeconds.startTimer();
    try {
      const result = await this.store.insert(records);
      this.metrics.recordsStored.inc(result.inserted);
      this.metrics.recordsDuplicate.inc(result.duplicates);
      for (const r of result.rejected) this.reject('store', `${r.record_id}: ${r.reason}`);
    } catch (err) {
      this.metrics.storeWriteFailures.inc();
      this.log.error({ err, records: records.length }, 'store write failed; the senders keep the records and retry');
      throw err;
    } finally {
      end();
    }
  }

  private reject(stage: string, reason: string): void {
    this.metrics.recordsRejected.inc({ stage });
    const now = Date.now();
    if (now - this.lastRejectLog > 5000) {
      this.lastRejectLog = now;
      this.log.warn({ stage, reason }, 'access record rejected (further rejections within 5 s are only counted)');
    }
  }
}
