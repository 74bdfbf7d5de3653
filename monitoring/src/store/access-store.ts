/**
 * Where access records end up, behind one interface with two implementations:
 * Elasticsearch (docker-compose, production) and DuckDB (embedded, single machine).
 * One contract test suite (monitoring/test/store-contract.test.ts) runs against both, so they
 * answer the same questions with the same semantics.
 *
 * Semantics shared by both:
 * - `insert` is idempotent by `record_id`: a record stored twice counts once.
 * - Viewer questions use only records with tier = VIEWER_COUNTING_TIER ('proxy') and kind in
 *   ('playlist', 'segment'), with a non-null stream. Statuses do not matter (a viewer polling a
 *   playlist that 404s is still there), except refusals: a record with a `refusal` (the proxy
 *   turned the request away: network, token, limits, bad input) or with status 401/403/429
 *   (REFUSED_STATUSES, whoever answered) is someone not allowed or throttled, not a viewer;
 *   otherwise anyone could inflate the count from addresses that were never served.
 * - "Viewers of a stream at t" (DESIGN.md) = distinct client_ip (and, separately, distinct
 *   non-null session_id) among those records with @timestamp in (t − windowMs, t].
 * - History buckets are [start, start + bucketMs), aligned to multiples of bucketMs since the
 *   epoch; a bucket's value is the distinct count of client_ip / session_id in that bucket.
 *   Buckets without records are returned with zeros (a continuous series from `from` to `to`).
 * - Traffic questions use records of one tier (argument), all kinds and statuses.
 * - "Recordings being watched at t" (recordingsWatched): records with tier = VIEWER_COUNTING_TIER,
 *   not refused (as above), any kind and stream field, whose `path` is a recording's media file,
 *   `/archive/<stream>/<session>/[<rendition>/]<playlist or segment>` (recording-paths.ts: the recording is read
 *   from the path, so records of every sender version qualify; today they carry stream null and
 *   kind 'other'). `thumbnail.jpg` and anything else is not watching (the listing page shows
 *   thumbnails). Grouped by (stream, session) over @timestamp in (t − windowMs, t]: distinct
 *   client_ip, distinct non-null session_id, newest @timestamp; sorted by stream, then session.
 * Counts are exact (Elasticsearch: cardinality with precision_threshold 40000, exact below it).
 *   Precisely: Elastic documents counts below the threshold as "expected to be close to accurate"
 *   (HyperLogLog++ in its linear-counting phase; only a hash collision could merge two values),
 *   so the contract tests compare exact numbers at small sizes.
 * - `insert` REJECTS (throws) when the store cannot take records right now (no connection,
 *   Elasticsearch 429/5xx after retries): the caller keeps the batch and inserts it again later,
 *   which is safe because insert is idempotent. `rejected` is only for records the store refuses
 *   for what they are (malformed), which inserting again would not change.
 * - Both stores validate and canonicalise records the same way (record-validation.ts); e.g.
 *   client_ip "::ffff:10.0.0.1" is the viewer "10.0.0.1", as Elasticsearch's `ip` type sees it.
 */
import type { AccessRecord } from '../../../common/src/access-record.ts';

/** Statuses that mean "not allowed / throttled": such records never count as viewers. */
export const REFUSED_STATUSES: readonly number[] = [401, 403, 429];

export interface ViewerCount {
  ips: number;
  sessions: number;
}

export interface ViewerHistoryPoint extends ViewerCount {
  /** Bucket start. */
  t: Date;
}

/** One recording requested within a window: who, and when last. */
export interface RecordingViewers {
  stream: string;
  session: string;
  viewers: ViewerCount;
  /** @timestamp of the newest counted request for its files. */
  lastRequestAt: Date;
}

export interface TrafficSummary {
  requests: number;
  bytes: number;
  /** status >= 500 */
  serverErrors: number;
  /** 400 <= status < 500 */
  clientErrors: number;
  /** requests per backend (proxy records' `backend`), or per instance for web records */
  byBackend: Record<string, number>;
}

export interface InsertResult {
  inserted: number;
  duplicates: number;
  /** Records the store refused (malformed); each with its reason. Never silently dropped. */
  rejected: Array<{ record_id: string | null; reason: string }>;
}

export interface AccessStore {
  /** Creates tables / index templates / ILM policies as needed. Idempotent. */
  open(): Promise<void>;
  close(): Promise<void>;
  /** Whether the store answers right now (readiness). */
  ping(): Promise<boolean>;

  insert(records: readonly AccessRecord[]): Promise<InsertResult>;

  /** Viewers per stream at `at`; streams with no viewer in the window are absent. */
  viewersNow(at: Date, windowMs: number): Promise<Map<string, ViewerCount>>;

  /** Recordings whose playlist or segments were requested in (at − windowMs, at] (see above); empty when none. */
  recordingsWatched(at: Date, windowMs: number): Promise<RecordingViewers[]>;

  /** Distinct viewers per bucket for one stream over [from, to). */
  viewerHistory(stream: string, from: Date, to: Date, bucketMs: number): Promise<ViewerHistoryPoint[]>;

  /** Traffic of one stream (or all when stream is null) over [from, to) for one tier. */
  traffic(stream: string | null, tier: 'proxy' | 'web', from: Date, to: Date): Promise<TrafficSummary>;

  /** @timestamp of the newest stored record (pipeline lag = now − this), null when empty. */
  newestRecordTime(): Promise<Date | null>;

  /** Total records stored (for tests and figures). */
  count(): Promise<number>;

  /** Deletes records older than `before`; returns how many (Elasticsearch: ILM does it, returns 0). */
  applyRetention(before: Date): Promise<number>;
}
