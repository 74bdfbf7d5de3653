import type { BlockList } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { resolveClientIp, type AccessRecord, type RequestKind } from '../../common/src/access-record.ts';
import { sessionIdFromRequest } from '../../common/src/cmcd.ts';
import type { Logger } from '../../common/src/logger.ts';

/**
 * Where access records go: one pino line each (ops read stdout), and, when FLUENT_HOST is set, the
 * record shipper too. Request handling never knows how records travel.
 */
export interface AccessLog {
  write(record: AccessRecord): void;
}

/** `shipper.ship()` is synchronous and never throws, so the request path never waits on it. */
export function createPinoAccessLog(logger: Logger, shipper: { ship(record: object): void } | null = null): AccessLog {
  if (shipper === null) return { write: (record) => logger.info({ access: record }, 'access') };
  return {
    write(record) {
      logger.info({ access: record }, 'access');
      shipper.ship(record);
    },
  };
}

/** Long made-up URLs must not turn into huge log lines. */
const MAX_LOGGED_PATH = 2048;

export interface CompletedRequest {
  req: IncomingMessage;
  /**
   * The TCP peer, read when the request arrived: once the client (or the proxy, cancelling for a
   * viewer who left) has hung up, `req.socket.remoteAddress` is undefined, and a record without a
   * client_ip is refused by the store.
   */
  peer: string | undefined;
  /** Request path without the query string, as received. */
  path: string;
  /** From describePath(path). */
  stream: string | null;
  kind: RequestKind;
  status: number;
  bytes: number;
  durationMs: number;
  finishedAt: Date;
  /** From RecordIds.next(): unique per record. */
  recordId: string;
}

/** One DESIGN.md access record for a request this replica served. */
export function buildAccessRecord(done: CompletedRequest, instance: string, trustList: BlockList): AccessRecord {
  const userAgent = done.req.headers['user-agent'];
  return {
    '@timestamp': done.finishedAt.toISOString(),
    stream: done.stream,
    kind: done.kind,
    client_ip: resolveClientIp(done.peer, done.req.headers['x-forwarded-for'], trustList),
    method: done.req.method ?? '',
    path: done.path.length > MAX_LOGGED_PATH ? done.path.slice(0, MAX_LOGGED_PATH) : done.path,
    status: done.status,
    bytes: done.bytes,
    duration_ms: Math.round(done.durationMs * 1000) / 1000,
    tier: 'web',
    instance,
    user_agent: typeof userAgent === 'string' ? userAgent : '',
    session_id: sessionIdFromRequest(done.req.url ?? '', done.req.headers),
    record_id: done.recordId,
  };
}
