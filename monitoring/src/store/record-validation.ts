/**
 * One validation and normalisation step shared by both stores, so that DuckDB and Elasticsearch
 * accept, refuse and canonicalise exactly the same records (the contract suite checks both).
 *
 * A record arrives from the Fluent receiver as untyped JSON: the `AccessRecord` type is a promise
 * made by the sender, not a guarantee. A record that breaks the DESIGN.md schema is refused with a
 * reason (InsertResult.rejected) instead of failing the whole batch.
 */
import { isIP } from 'node:net';
import type { AccessRecord, RequestKind } from '../../../common/src/access-record.ts';
import { isStreamName } from '../../../common/src/stream-name.ts';

/** A record as both stores keep it: timestamp as epoch ms, client_ip canonical, optionals explicit. */
export type StoredAccessRecord = Omit<AccessRecord, '@timestamp' | 'backend' | 'request_id' | 'refusal'> & {
  /** @timestamp as milliseconds since the epoch (UTC). */
  ts: number;
  backend: string | null;
  request_id: string | null;
  /** Why the proxy refused the request; null when it did not (and for web records). */
  refusal: string | null;
};

export type ValidationResult =
  | { ok: true; record: StoredAccessRecord }
  | { ok: false; record_id: string | null; reason: string };

const KINDS: ReadonlySet<string> = new Set<RequestKind>(['playlist', 'segment', 'page', 'other']);
const TIERS: ReadonlySet<string> = new Set(['proxy', 'web']);
/** ISO-8601 with date, time and an explicit zone (a zoneless time would be read as local time). */
const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;
/** Elasticsearch refuses document ids longer than 512 bytes; the same limit applies everywhere. */
const MAX_RECORD_ID_BYTES = 512;
const MAX_SHORT_STRING = 1024;
const MAX_USER_AGENT = 8192;
const MAX_PATH = 8192;
const MAX_REFUSAL = 64;

/**
 * Canonical text form of an IP address, so that one address has one spelling in both stores:
 * IPv4-mapped IPv6 becomes IPv4 ("::ffff:10.0.0.1" → "10.0.0.1") and IPv6 is written as RFC 5952
 * prescribes (lower case, longest zero run compressed). Elasticsearch's `ip` type compares
 * addresses, not strings, so without this DuckDB would count "::1" and "0:0:0:0:0:0:0:1" as two
 * viewers where Elasticsearch counts one. Returns null for anything that is not an address
 * (including IPv6 zone ids, which Elasticsearch's `ip` type does not accept either).
 */
export function canonicalIp(value: string): string | null {
  const family = isIP(value);
  if (family === 4) return value;
  if (family !== 6 || value.includes('%')) return null;
  let host: string;
  try {
    host = new URL(`http://[${value}]/`).hostname.slice(1, -1); // WHATWG URL serialises IPv6 per RFC 5952
  } catch {
    return null;
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return host;
}

function isString(value: unknown, max: number): value is string {
  return typeof value === 'string' && value.length <= max;
}

/** Validates one record from the wire and returns its stored form, or why it is refused. */
export function validateAccessRecord(raw: unknown): ValidationResult {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return { ok: false, record_id: null, reason: 'not an object' };
  }
  const r = raw as Partial<Record<keyof AccessRecord, unknown>>;
  const recordId = typeof r.record_id === 'string' && r.record_id.length > 0 ? r.record_id : null;
  const fail = (reason: string): ValidationResult => ({ ok: false, record_id: recordId, reason });

  if (recordId === null) return fail('record_id: missing or not a non-empty string');
  if (Buffer.byteLength(recordId) > MAX_RECORD_ID_BYTES) return fail(`record_id: longer than ${MAX_RECORD_ID_BYTES} bytes`);

  const timestamp = r['@timestamp'];
  if (typeof timestamp !== 'string' || !ISO_TIMESTAMP.test(timestamp)) {
    return fail('@timestamp: missing or not an ISO-8601 string with a zone');
  }
  const ts = Date.parse(timestamp);
  if (!Number.isFinite(ts) || ts < 0) return fail('@timestamp: not a valid date after 1970');

  if (typeof r.kind !== 'string' || !KINDS.has(r.kind)) return fail('kind: not one of playlist, segment, page, other');
  if (typeof r.tier !== 'string' || !TIERS.has(r.tier)) return fail('tier: not proxy or web');

  let stream: string | null;
  if (r.stream === null || r.stream === undefined) stream = null;
  else if (isStreamName(r.stream)) stream = r.stream;
  else return fail('stream: not null or a stream name');

  if (typeof r.client_ip !== 'string') return fail('client_ip: missing');
  const clientIp = canonicalIp(r.client_ip.trim());
  if (clientIp === null) return fail('client_ip: not an IP address');

  if (!isString(r.method, 32) || r.method.length === 0) return fail('method: missing');
  if (!isString(r.path, MAX_PATH)) return fail('path: missing or too long');
  if (typeof r.status !== 'number' || !Number.isInteger(r.status) || r.status < 0 || r.status > 999) {
    return fail('status: not an integer 0..999');
  }
  if (typeof r.bytes !== 'number' || !Number.isSafeInteger(r.bytes) || r.bytes < 0) {
    return fail('bytes: not a non-negative integer');
  }
  if (typeof r.duration_ms !== 'number' || !Number.isFinite(r.duration_ms) || r.duration_ms < 0) {
    return fail('duration_ms: not a non-negative number');
  }
  if (!isString(r.instance, MAX_SHORT_STRING) || r.instance.length === 0) return fail('instance: missing');

  // Lenient on purpose: a request without a User-Agent or a session id is still a viewer's request.
  let userAgent = '';
  if (r.user_agent !== undefined && r.user_agent !== null) {
    if (typeof r.user_agent !== 'string') return fail('user_agent: not a string');
    userAgent = r.user_agent.slice(0, MAX_USER_AGENT);
  }
  let sessionId: string | null = null;
  if (r.session_id !== undefined && r.session_id !== null) {
    if (!isString(r.session_id, MAX_SHORT_STRING)) return fail('session_id: not a string');
    sessionId = r.session_id.length > 0 ? r.session_id : null;
  }
  let backend: string | null = null;
  if (r.backend !== undefined && r.backend !== null) {
    if (!isString(r.backend, MAX_SHORT_STRING)) return fail('backend: not a string');
    backend = r.backend.length > 0 ? r.backend : null;
  }
  let requestId: string | null = null;
  if (r.request_id !== undefined && r.request_id !== null) {
    if (!isString(r.request_id, MAX_SHORT_STRING)) return fail('request_id: not a string');
    requestId = r.request_id;
  }
  let refusal: string | null = null;
  if (r.refusal !== undefined && r.refusal !== null) {
    if (!isString(r.refusal, MAX_REFUSAL)) return fail('refusal: not a string of at most 64 characters');
    refusal = r.refusal.length > 0 ? r.refusal : null;
  }

  return {
    ok: true,
    record: {
      ts,
      stream,
      kind: r.kind as RequestKind,
      client_ip: clientIp,
      method: r.method,
      path: r.path,
      status: r.status,
      bytes: r.bytes,
      duration_ms: r.duration_ms,
      tier: r.tier as 'proxy' | 'web',
      instance: r.instance,
      user_agent: userAgent,
      session_id: sessionId,
      record_id: recordId,
      backend,
      request_id: requestId,
      refusal,
    },
  };
}

/**
 * Validates a batch: valid records (first occurrence of each record_id), the number of in-batch
 * repeats (counted as duplicates, as the store would), and the refused records with reasons.
 */
export function prepareBatch(
  records: readonly unknown[],
  /** record_ids already seen earlier in the same insert call (when it is prepared in parts). */
  seen = new Set<string>(),
): {
  valid: StoredAccessRecord[];
  duplicates: number;
  rejected: Array<{ record_id: string | null; reason: string }>;
} {
  const valid: StoredAccessRecord[] = [];
  const rejected: Array<{ record_id: string | null; reason: string }> = [];
  let duplicates = 0;
  for (const raw of records) {
    const result = validateAccessRecord(raw);
    if (!result.ok) {
      rejected.push({ record_id: result.record_id, reason: result.reason });
      continue;
    }
    if (seen.has(result.record.record_id)) {
      duplicates++;
      continue;
    }
    seen.add(result.record.record_id);
    valid.push(result.record);
  }
  return { valid, duplicates, rejected };
}

/** Bucket start (ms) of the bucket holding `ms`, buckets aligned to multiples of bucketMs since the epoch. */
export function bucketStart(ms: number, bucketMs: number): number {
  return Math.floor(ms / bucketMs) * bucketMs;
}

/**
 * Most buckets one history question may ask for (24 h at 10 s is 8 640). Elasticsearch refuses
 * more than `search.max_buckets` (65 536 by default) in one response; both stores refuse the same.
 */
export const MAX_HISTORY_BUCKETS = 50_000;

/** Bucket starts covering [from, to): the continuous series both stores return. */
export function bucketSeries(from: Date, to: Date, bucketMs: number): number[] {
  if (!Number.isFinite(bucketMs) || bucketMs <= 0 || !Number.isInteger(bucketMs)) {
    throw new RangeError(`bucketMs must be a positive integer, got ${bucketMs}`);
  }
  const starts: number[] = [];
  const end = to.getTime();
  const first = bucketStart(from.getTime(), bucketMs);
  if ((end - first) / bucketMs > MAX_HISTORY_BUCKETS) {
    throw new RangeError(`history of ${Math.ceil((end - first) / bucketMs)} buckets asked; at most ${MAX_HISTORY_BUCKETS}`);
  }
  for (let t = bucketStart(from.getTime(), bucketMs); t < end; t += bucketMs) starts.push(t);
  return starts;
}
