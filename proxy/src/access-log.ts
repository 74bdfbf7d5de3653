import type { AccessRecord } from '../../common/src/access-record.ts';
import type { Logger } from '../../common/src/logger.ts';

/** DESIGN.md's access record plus which replica served it and the request id. */
export interface ProxyAccessRecord extends AccessRecord {
  tier: 'proxy';
  /** Base URL of the replica whose response was relayed; null when the proxy answered itself. */
  backend: string | null;
  request_id: string;
}

/** Where access records go. A later issue adds Fluent shipping behind this same interface. */
export interface AccessLog {
  write(record: ProxyAccessRecord): void;
}

/** One JSON log line per record: `{"access": {...}, "msg": "access"}`. */
export function createLoggerAccessLog(logger: Logger): AccessLog {
  return {
    write(record) {
      logger.info({ access: record }, 'access');
    },
  };
}
