import type { AccessRecord } from '../../common/src/access-record.ts';
import type { Logger } from '../../common/src/logger.ts';

/** DESIGN.md's access record plus which replica served it and the request id. */
export interface ProxyAccessRecord extends AccessRecord {
  tier: 'proxy';
  /** Base URL of the replica whose response was relayed; null when the proxy answered itself. */
  backend: string | null;
  request_id: string;
  /** Why the proxy refused the request (refusals.ts); null when it did not. */
  refusal: string | null;
}

/** Where access records go: the log, and the record shipper when FLUENT_HOST is set. */
export interface AccessLog {
  write(record: ProxyAccessRecord): void;
}

/**
 * One JSON log line per record (`{"access": {...}, "msg": "access"}`; ops read stdout), and the
 * same record to the shipper, whose ship() is synchronous and never throws.
 */
export function createLoggerAccessLog(logger: Logger, shipper: { ship(record: object): void } | null = null): AccessLog {
  return {
    write(record) {
      logger.info({ access: record }, 'access');
      shipper?.ship(record);
    },
  };
}
