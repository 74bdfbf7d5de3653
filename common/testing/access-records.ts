/**
 * What services logged, and what monitoring stored, for tests that account for every access record:
 * a live tap on a process's log lines (every line, not only the last 5 000 that ManagedProcess
 * keeps), and a read of monitoring's embedded DuckDB store.
 */
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { ManagedProcess } from './processes.ts';

/** One `msg: "access"` line, the fields the failure tests look at. */
export interface LoggedRecord {
  record_id: string;
  /** `@timestamp` in ms: when the response finished */
  at: number;
  duration_ms: number;
  instance: string;
  tier: string;
  status: number;
  kind: string;
  path: string;
  client_ip: string;
  /** proxy records: the replica that served it (`cache`, or null when the proxy answered itself) */
  backend: string | null;
  /** proxy records: the X-Request-Id it answered with */
  request_id: string | null;
}

/** A JSON log line of any other kind, with its pino `time` in ms. */
export interface LoggedEvent {
  at: number;
  msg: string;
  fields: Record<string, unknown>;
}

export interface LogTap {
  records: LoggedRecord[];
  events: LoggedEvent[];
}

/**
 * Collects, from now on, every access record a web or proxy process logs (`records`) and every
 * other JSON log line whose message is in `events` (e.g. 'backend state changed').
 */
export function tapLogs(proc: ManagedProcess, events: readonly string[] = []): LogTap {
  const tap: LogTap = { records: [], events: [] };
  const wanted = new Set(events);
  proc.onLine((line) => {
    if (!line.startsWith('{')) return;
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (parsed.msg === 'access' && parsed.access && typeof parsed.access === 'object') {
      const a = parsed.access as Record<string, unknown>;
      tap.records.push({
        record_id: String(a.record_id),
        at: Date.parse(String(a['@timestamp'])),
        duration_ms: Number(a.duration_ms),
        instance: String(a.instance),
        tier: String(a.tier),
        status: Number(a.status),
        kind: String(a.kind),
        path: String(a.path),
        client_ip: String(a.client_ip),
        backend: typeof a.backend === 'string' ? a.backend : null,
        request_id: typeof a.request_id === 'string' ? a.request_id : null,
      });
    } else if (typeof parsed.msg === 'string' && wanted.has(parsed.msg)) {
      tap.events.push({ at: Date.parse(String(parsed.time)), msg: parsed.msg, fields: parsed });
    }
  });
  return tap;
}

/**
 * record_id → how many rows hold it, read from monitoring's DuckDB file (DATA_DIR/monitoring/access.duckdb).
 * DuckDB lets one process open a file for writing and nobody else meanwhile, so monitoring must be
 * stopped first; the file is opened read-only.
 */
export async function storedRecordIds(dataDir: string, where = 'true'): Promise<Map<string, number>> {
  const db = await DuckDBInstance.create(path.join(dataDir, 'monitoring', 'access.duckdb'), { access_mode: 'READ_ONLY' });
  try {
    const conn = await db.connect();
    try {
      const rows = (await conn.runAndReadAll(`SELECT record_id, count(*)::INTEGER AS n FROM access_records WHERE ${where} GROUP BY record_id`)).getRowObjects();
      return new Map(rows.map((r) => [String(r.record_id), Number(r.n)]));
    } finally {
      conn.closeSync();
    }
  } finally {
    db.closeSync();
  }
}
