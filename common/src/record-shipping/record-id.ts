import { randomBytes } from 'node:crypto';

/**
 * Record ids `<instance>-<boot id>-<sequence>`: stores use them as document ids, so a record
 * delivered twice (replayed after a lost acknowledgement, or from a spool file after a crash) is
 * stored once. The boot id is random per process start, so a restarted replica whose counter starts
 * at 0 again never reuses an id; the counter keeps ids of one process unique without coordination.
 */
export interface RecordIds {
  readonly bootId: string;
  next(): string;
}

export function createRecordIds(instance: string, bootId: string = randomBytes(6).toString('hex')): RecordIds {
  const prefix = `${instance}-${bootId}-`;
  let sequence = 0;
  return {
    bootId,
    next: () => prefix + String(sequence++),
  };
}
