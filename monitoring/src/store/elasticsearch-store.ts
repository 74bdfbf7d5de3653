/**
 * The Elasticsearch store (docker-compose / production), with the official client only
 * (@elastic/elasticsearch 9.4.x: Node 20, Elasticsearch 9 servers; request bodies are top-level).
 *
 * Layout: a DATA STREAM `onair-access` (not an index alias with a write index). Access records are
 * append-only, time-stamped and never updated, which is exactly what data streams are for:
 * Elasticsearch creates and rolls the backing indices itself, ILM manages them without a
 * bootstrap index or `rollover_alias` setting, Kibana picks them up as-is, and fluentd's
 * Elasticsearch output writes to a data stream with `create` operations. The price: only `create`
 * operations are accepted (fine: we never overwrite), and a document id is unique per backing
 * index only. A record replayed after its first copy's backing index rolled over (rollover at most
 * once a day, replays come within minutes) would be stored twice; viewer counts are distinct counts
 * and do not change, only request/byte totals would count it twice.
 *
 * Mappings are explicit and `dynamic: false` (not `strict`): a field we did not declare is kept in
 * `_source` but neither indexed nor added to the mapping. `strict` would reject the WHOLE record
 * when any writer (fluentd adds its own fields depending on its configuration; a newer web/ may add
 * one) sends an extra field, which turns a harmless schema drift into lost viewer records; `true`
 * would let such fields change the mapping by guesswork (e.g. text + keyword for every string).
 *
 * Retention is ILM's job (`applyRetention` returns 0): rollover by primary shard size or age,
 * then delete N days after rollover. So a record lives between N and N + max_age days.
 */
import { Client, errors } from '@elastic/elasticsearch';
import type { estypes } from '@elastic/elasticsearch';
import { VIEWER_COUNTING_TIER } from '../../../common/src/access-record.ts';
import type { AccessRecord } from '../../../common/src/access-record.ts';
import { REFUSED_STATUSES, type AccessStore, type InsertResult, type RecordingViewers, type TrafficSummary, type ViewerCount, type ViewerHistoryPoint } from './access-store.ts';
import { ARCHIVE_PATH_PREFIX, RECORDING_MEDIA_PATH_LUCENE } from './recording-paths.ts';
import { bucketSeries, prepareBatch } from './record-validation.ts';
import type { StoredAccessRecord } from './record-validation.ts';

/** The default data stream; the index template and ILM policy are named after it. */
export const ACCESS_DATA_STREAM = 'onair-access';
export const DEFAULT_RETENTION_DAYS = 7;
/** Cardinality is exact (in practice, see access-store.ts) below this many distinct values; 40 000 is Elasticsearch's maximum. */
export const CARDINALITY_PRECISION_THRESHOLD = 40_000;
/** Most streams one viewersNow answer holds; more raises an error instead of silently truncating. */
const MAX_STREAMS = 10_000;
/** Most recordings one recordingsWatched answer holds; more raises an error, as for streams. */
const MAX_RECORDINGS = 10_000;

/**
 * A runtime field of the search request ("Define runtime fields in a search request"): the
 * `<stream>/<session>` part of a recording request's path, for a terms aggregation. Only documents
 * that matched the `regexp` query (RECORDING_MEDIA_PATH_LUCENE) reach it, so the path has the
 * shape `/archive/<stream>/<session>/<file>` and plain string calls suffice (no Painless regex,
 * which clusters may restrict with `script.painless.regex.enabled`).
 */
const RECORDING_RUNTIME_FIELD = 'onair_recording';
const RECORDING_SCRIPT = `
if (doc['path'].size() == 0) { return; }
String p = doc['path'].value;
int start = ${ARCHIVE_PATH_PREFIX.length};
int slash = p.indexOf('/', start);
if (slash < 0) { return; }
int end = p.indexOf('/', slash + 1);
if (end < 0) { return; }
emit(p.substring(start, end));`;

export function indexTemplateName(dataStream: string): string {
  return `${dataStream}-template`;
}
export function ilmPolicyName(dataStream: string): string {
  return `${dataStream}-policy`;
}

/** The ESM entry of the 9.4 client does not export the ClientOptions type. */
type ClientOptions = NonNullable<ConstructorParameters<typeof Client>[0]>;

export interface RolloverOptions {
  /** Roll over when the primary shard reaches this size (default '10gb'). */
  maxPrimaryShardSize?: string;
  /** Roll over at this age (default '1d'). */
  maxAge?: string;
}

/** Explicit mappings of an access record (DESIGN.md schema + session_id, record_id, backend, request_id, refusal). */
export const ACCESS_MAPPINGS = {
  dynamic: false,
  properties: {
    '@timestamp': { type: 'date', format: 'strict_date_optional_time||epoch_millis' },
    client_ip: { type: 'ip' },
    stream: { type: 'keyword' },
    session_id: { type: 'keyword', ignore_above: 1024 },
    kind: { type: 'keyword' },
    tier: { type: 'keyword' },
    instance: { type: 'keyword' },
    backend: { type: 'keyword' },
    method: { type: 'keyword' },
    path: { type: 'keyword', ignore_above: 2048 },
    status: { type: 'short' },
    bytes: { type: 'long' },
    duration_ms: { type: 'float' },
    // keyword, not text: ops aggregate on it ("top user agents"); over-long values are kept in
    // _source but not indexed.
    user_agent: { type: 'keyword', ignore_above: 1024 },
    record_id: { type: 'keyword' },
    request_id: { type: 'keyword' },
    // Why the proxy refused the request (absent when it did not): refused requests are not viewers.
    refusal: { type: 'keyword' },
  },
} as const satisfies estypes.MappingTypeMapping;

/** ILM policy body (`PUT _ilm/policy/<name>` with `{ "policy": … }`). */
export function accessIlmPolicy(retentionDays = DEFAULT_RETENTION_DAYS, rollover: RolloverOptions = {}): estypes.IlmPolicy {
  if (!Number.isInteger(retentionDays) || retentionDays < 1) throw new RangeError('retentionDays must be a positive integer');
  return {
    _meta: { description: 'onair access records: rollover, then delete after the retention period', managed_by: 'onair' },
    phases: {
      hot: {
        min_age: '0ms',
        actions: {
          rollover: {
            max_primary_shard_size: rollover.maxPrimaryShardSize ?? '10gb',
            max_age: rollover.maxAge ?? '1d',
          },
        },
      },
      delete: { min_age: `${retentionDays}d`, actions: { delete: {} } },
    },
  };
}

/** Composable index template body (`PUT _index_template/<name>`) for the data stream. */
export function accessIndexTemplate(dataStream = ACCESS_DATA_STREAM, policyName = ilmPolicyName(dataStream)) {
  return {
    // The exact name, no wildcard: a test run's `onair-test-…` stream must not match the
    // production template and vice versa (two templates of equal priority matching is an error).
    index_patterns: [dataStream],
    data_stream: {},
    // Above the built-in templates (priority 100, e.g. `logs-*-*`) in case a pattern ever overlaps.
    priority: 200,
    _meta: { description: 'onair access records (DESIGN.md "Access record")', managed_by: 'onair' },
    template: {
      settings: {
        'index.lifecycle.name': policyName,
        'index.number_of_shards': 1,
        // One node in docker-compose: no replica there (green health), one where a second node exists.
        'index.auto_expand_replicas': '0-1',
        // Explicit, so a shard never goes "search idle" and new records are visible within ~1 s.
        'index.refresh_interval': '1s',
      },
      mappings: ACCESS_MAPPINGS,
    },
  } satisfies Omit<estypes.IndicesPutIndexTemplateRequest, 'name'>;
}

/** Default bodies, for docker-compose provisioning and docs. */
export const ACCESS_ILM_POLICY = accessIlmPolicy();
export const ACCESS_INDEX_TEMPLATE = accessIndexTemplate();

/**
 * The REST calls `open()` makes, for provisioning without this program (curl in docker-compose):
 * `curl -X PUT "$ES$path" -H 'Content-Type: application/json' -d "$body"`, in this order.
 */
export function elasticsearchProvisioning(
  dataStream = ACCESS_DATA_STREAM,
  retentionDays = DEFAULT_RETENTION_DAYS,
  rollover: RolloverOptions = {},
): Array<{ method: 'PUT'; path: string; body?: unknown }> {
  return [
    { method: 'PUT', path: `/_ilm/policy/${ilmPolicyName(dataStream)}`, body: { policy: accessIlmPolicy(retentionDays, rollover) } },
    { method: 'PUT', path: `/_index_template/${indexTemplateName(dataStream)}`, body: accessIndexTemplate(dataStream) },
    { method: 'PUT', path: `/_data_stream/${dataStream}` },
  ];
}

export interface ElasticsearchStoreOptions {
  /** An existing client (its owner closes it), or the settings to make one. */
  client?: Client;
  node?: string | string[];
  apiKey?: string;
  username?: string;
  password?: string;
  /** More client settings (tls, requestTimeout, …) when the store makes the client. */
  clientOptions?: Omit<ClientOptions, 'node' | 'nodes' | 'auth'>;
  /** Data stream name (default `onair-access`); tests use a unique one per run. */
  dataStream?: string;
  retentionDays?: number;
  rollover?: RolloverOptions;
  /**
   * Bulk `refresh` parameter. Default false: records become searchable with the next periodic
   * refresh (≤ 1 s, `index.refresh_interval`), and ingestion never waits for it. 'wait_for'
   * makes each insert resolve only once its records are searchable (read-your-writes, used by
   * the contract tests) at the cost of up to one refresh interval of latency per bulk request;
   * true forces a refresh per request (small segments, expensive; avoid in production).
   */
  refresh?: boolean | 'wait_for';
  /** Bulk helper tuning. */
  bulk?: { flushBytes?: number; concurrency?: number; retries?: number; waitMs?: number };
}

/**
 * Records Elasticsearch could not take right now (429 after the helper's retries, 5xx). Not a
 * verdict on the records: the caller keeps them and inserts the batch again later. Deterministic
 * ids make that safe: the copies already stored come back as duplicates.
 */
export class StoreUnavailableError extends Error {
  constructor(
    message: string,
    readonly result: InsertResult & { unavailable: number },
  ) {
    super(message);
    this.name = 'StoreUnavailableError';
  }
}

/** The document as indexed: the stored record with @timestamp back as an ISO string (ms). */
type AccessDocument = Omit<StoredAccessRecord, 'ts'> & { '@timestamp': string };

function toDocument(record: StoredAccessRecord): AccessDocument {
  const { ts, ...rest } = record;
  return { '@timestamp': new Date(ts).toISOString(), ...rest };
}

interface CardinalityAgg { value: number | null }
interface CountBuckets { ips: CardinalityAgg; sessions: CardinalityAgg }
interface StreamBucket extends CountBuckets { key: string; doc_count: number }
interface HistoryBucket extends CountBuckets { key: number; doc_count: number }

const viewerCountAggs = {
  ips: { cardinality: { field: 'client_ip', precision_threshold: CARDINALITY_PRECISION_THRESHOLD } },
  sessions: { cardinality: { field: 'session_id', precision_threshold: CARDINALITY_PRECISION_THRESHOLD } },
} satisfies Record<string, estypes.AggregationsAggregationContainer>;

/** Counting tier, refused requests left out (access-store.ts): shared by viewer and recording questions. */
function countedRequestFilters(): estypes.QueryDslQueryContainer[] {
  return [
    { term: { tier: VIEWER_COUNTING_TIER } },
    { bool: { must_not: [{ exists: { field: 'refusal' } }, { terms: { status: [...REFUSED_STATUSES] } }] } },
  ];
}

function viewerFilters(): estypes.QueryDslQueryContainer[] {
  return [...countedRequestFilters(), { terms: { kind: ['playlist', 'segment'] } }, { exists: { field: 'stream' } }];
}

interface RecordingBucket extends CountBuckets { key: string; doc_count: number; last: { value: number | null } }

function isStatus(err: unknown, status: number, type?: string): boolean {
  if (!(err instanceof errors.ResponseError) || err.meta.statusCode !== status) return false;
  if (type === undefined) return true;
  const body = err.meta.body as { error?: { type?: string } } | undefined;
  return body?.error?.type === type;
}

export class ElasticsearchAccessStore implements AccessStore {
  readonly client: Client;
  readonly dataStream: string;
  private readonly ownsClient: boolean;

  constructor(private readonly options: ElasticsearchStoreOptions) {
    if (options.client) {
      this.client = options.client;
      this.ownsClient = false;
    } else {
      if (!options.node) throw new Error('ElasticsearchAccessStore: give a client or a node URL');
      const auth = options.apiKey
        ? { apiKey: options.apiKey }
        : options.username !== undefined
          ? { username: options.username, password: options.password ?? '' }
          : undefined;
      this.client = new Client({ ...options.clientOptions, node: options.node, ...(auth ? { auth } : {}) });
      this.ownsClient = true;
    }
    this.dataStream = options.dataStream ?? ACCESS_DATA_STREAM;
  }

  /** ILM policy, index template, data stream. Each step is an idempotent PUT (or "already exists"). */
  async open(): Promise<void> {
    await this.client.ilm.putLifecycle({
      name: ilmPolicyName(this.dataStream),
      policy: accessIlmPolicy(this.options.retentionDays ?? DEFAULT_RETENTION_DAYS, this.options.rollover),
    });
    await this.client.indices.putIndexTemplate({
      name: indexTemplateName(this.dataStream),
      ...accessIndexTemplate(this.dataStream),
    });
    try {
      // Created up front (not on the first record) so that queries on an empty store answer
      // "nothing" instead of index_not_found.
      await this.client.indices.createDataStream({ name: this.dataStream });
    } catch (err) {
      if (!isStatus(err, 400, 'resource_already_exists_exception')) throw err;
      // An existing data stream keeps the mappings its backing indices were created with until it
      // rolls over; fields added since (e.g. `refusal`) are put on them now, or a record written
      // before the rollover would keep that field unindexed (dynamic: false) and escape filters on it.
      // Adding fields is allowed on live indices; unchanged ones are a no-op.
      await this.client.indices.putMapping({ index: this.dataStream, properties: ACCESS_MAPPINGS.properties });
    }
  }

  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }

  async ping(): Promise<boolean> {
    try {
      return await this.client.ping();
    } catch {
      return false;
    }
  }

  /**
   * Bulk `create` with `_id = record_id`. Per document: 2xx → inserted; 409 (version conflict:
   * the id exists) → duplicate; 429 after the helper's retries, or 5xx → not stored now, and the
   * whole call throws StoreUnavailableError after the rest of the batch went through; any other
   * 4xx (mapping/parsing refused the document) → rejected with Elasticsearch's reason. A transport
   * failure (no connection) rejects the returned promise: nothing is known to be stored.
   */
  async insert(records: readonly AccessRecord[]): Promise<InsertResult> {
    const { valid, duplicates, rejected } = prepareBatch(records);
    let dup = duplicates;
    let unavailable = 0;
    const unavailableReasons = new Set<string>();
    if (valid.length === 0) return { inserted: 0, duplicates: dup, rejected };
    const bulk = this.options.bulk ?? {};
    const stats = await this.client.helpers.bulk<AccessDocument>({
      datasource: valid.map(toDocument),
      onDocument: (doc) => ({ create: { _index: this.dataStream, _id: doc.record_id } }),
      onDrop: (drop) => {
        if (drop.status === 409) {
          dup++;
        } else if (drop.status === 429 || drop.status >= 500) {
          unavailable++;
          unavailableReasons.add(`${drop.status} ${drop.error?.type ?? ''}`.trim());
        } else {
          const reason = drop.error ? `${drop.error.type}: ${drop.error.reason ?? ''}` : 'refused';
          rejected.push({ record_id: drop.document.record_id, reason: `elasticsearch ${drop.status} ${reason}` });
        }
      },
      ...(this.options.refresh !== undefined ? { refresh: this.options.refresh } : {}),
      ...(bulk.flushBytes !== undefined ? { flushBytes: bulk.flushBytes } : {}),
      ...(bulk.concurrency !== undefined ? { concurrency: bulk.concurrency } : {}),
      ...(bulk.retries !== undefined ? { retries: bulk.retries } : {}),
      ...(bulk.waitMs !== undefined ? { wait: bulk.waitMs } : {}),
    });
    const result = { inserted: stats.successful, duplicates: dup, rejected };
    if (unavailable > 0) {
      throw new StoreUnavailableError(
        `elasticsearch could not store ${unavailable} of ${valid.length} records now (${[...unavailableReasons].join(', ')}); insert them again`,
        { ...result, unavailable },
      );
    }
    return result;
  }

  private async aggregate<A>(query: estypes.QueryDslQueryContainer, aggs: Record<string, estypes.AggregationsAggregationContainer>, trackTotalHits = false) {
    const response = await this.client.search({
      index: this.dataStream,
      size: 0,
      track_total_hits: trackTotalHits,
      query,
      aggs,
    });
    const total = response.hits.total;
    return {
      aggs: response.aggregations as unknown as A,
      total: typeof total === 'number' ? total : (total?.value ?? 0),
    };
  }

  async viewersNow(at: Date, windowMs: number): Promise<Map<string, ViewerCount>> {
    const t = at.getTime();
    const { aggs } = await this.aggregate<{ streams: { buckets: StreamBucket[]; sum_other_doc_count?: number } }>(
      {
        bool: {
          filter: [
            ...viewerFilters(),
            { range: { '@timestamp': { gt: t - windowMs, lte: t, format: 'epoch_millis' } } },
          ],
        },
      },
      { streams: { terms: { field: 'stream', size: MAX_STREAMS }, aggs: viewerCountAggs } },
    );
    if ((aggs.streams.sum_other_doc_count ?? 0) > 0) throw new Error(`more than ${MAX_STREAMS} streams with viewers`);
    const result = new Map<string, ViewerCount>();
    for (const b of aggs.streams.buckets) result.set(b.key, { ips: b.ips.value ?? 0, sessions: b.sessions.value ?? 0 });
    return result;
  }

  /**
   * `regexp` on the keyword `path` (Lucene syntax: anchored; its literal `/archive/` prefix lets
   * Lucene seek straight to those terms), then a terms aggregation on a runtime field holding
   * `<stream>/<session>`, with the same cardinality sub-aggregations as viewersNow. Elasticsearch
   * counts regexp queries as "expensive": they run unless the cluster sets
   * `search.allow_expensive_queries: false` (default true), in which case this question fails and
   * ingest's retention defers deletions (it never guesses).
   */
  async recordingsWatched(at: Date, windowMs: number): Promise<RecordingViewers[]> {
    const t = at.getTime();
    const response = await this.client.search({
      index: this.dataStream,
      size: 0,
      track_total_hits: false,
      runtime_mappings: { [RECORDING_RUNTIME_FIELD]: { type: 'keyword', script: { source: RECORDING_SCRIPT } } },
      query: {
        bool: {
          filter: [
            ...countedRequestFilters(),
            { regexp: { path: { value: RECORDING_MEDIA_PATH_LUCENE } } },
            { range: { '@timestamp': { gt: t - windowMs, lte: t, format: 'epoch_millis' } } },
          ],
        },
      },
      aggs: {
        recordings: {
          terms: { field: RECORDING_RUNTIME_FIELD, size: MAX_RECORDINGS },
          aggs: { ...viewerCountAggs, last: { max: { field: '@timestamp' } } },
        },
      },
    });
    const recordings = (response.aggregations as unknown as { recordings: { buckets: RecordingBucket[]; sum_other_doc_count?: number } }).recordings;
    if ((recordings.sum_other_doc_count ?? 0) > 0) throw new Error(`more than ${MAX_RECORDINGS} recordings watched`);
    const result: RecordingViewers[] = [];
    for (const b of recordings.buckets) {
      const slash = b.key.indexOf('/');
      result.push({
        stream: b.key.slice(0, slash),
        session: b.key.slice(slash + 1),
        viewers: { ips: b.ips.value ?? 0, sessions: b.sessions.value ?? 0 },
        lastRequestAt: new Date(b.last.value ?? 0),
      });
    }
    // The same order as DuckDB's ORDER BY (byte order: names are ASCII).
    return result.sort((a, b) => (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : a.session < b.session ? -1 : a.session > b.session ? 1 : 0));
  }

  async viewerHistory(stream: string, from: Date, to: Date, bucketMs: number): Promise<ViewerHistoryPoint[]> {
    const series = bucketSeries(from, to, bucketMs);
    if (series.length === 0) return [];
    const { aggs } = await this.aggregate<{ history: { buckets: HistoryBucket[] } }>(
      {
        bool: {
          filter: [
            ...viewerFilters(),
            { term: { stream } },
            { range: { '@timestamp': { gte: from.getTime(), lt: to.getTime(), format: 'epoch_millis' } } },
          ],
        },
      },
      {
        history: {
          date_histogram: {
            field: '@timestamp',
            // Fixed intervals are aligned to multiples of the interval since the epoch (UTC, offset 0).
            fixed_interval: `${bucketMs}ms`,
            min_doc_count: 0,
            extended_bounds: { min: series[0]!, max: series[series.length - 1]! },
          },
          aggs: viewerCountAggs,
        },
      },
    );
    // extended_bounds + min_doc_count 0 already give a continuous series; the series is still
    // laid out here so both stores return exactly the same buckets.
    const byBucket = new Map<number, ViewerCount>();
    for (const b of aggs.history.buckets) byBucket.set(b.key, { ips: b.ips.value ?? 0, sessions: b.sessions.value ?? 0 });
    return series.map((start) => ({ t: new Date(start), ...(byBucket.get(start) ?? { ips: 0, sessions: 0 }) }));
  }

  async traffic(stream: string | null, tier: 'proxy' | 'web', from: Date, to: Date): Promise<TrafficSummary> {
    const filter: estypes.QueryDslQueryContainer[] = [
      { term: { tier } },
      { range: { '@timestamp': { gte: from.getTime(), lt: to.getTime(), format: 'epoch_millis' } } },
    ];
    if (stream !== null) filter.push({ term: { stream } });
    const { aggs, total } = await this.aggregate<{
      bytes: { value: number | null };
      status: { buckets: { server: { doc_count: number }; client: { doc_count: number } } };
      backends: { buckets: Array<{ key: string; doc_count: number }> };
    }>(
      { bool: { filter } },
      {
        bytes: { sum: { field: 'bytes' } },
        status: {
          filters: {
            filters: {
              server: { range: { status: { gte: 500 } } },
              client: { range: { status: { gte: 400, lt: 500 } } },
            },
          },
        },
        backends: { terms: { field: tier === 'proxy' ? 'backend' : 'instance', size: 1000 } },
      },
      true,
    );
    const byBackend: Record<string, number> = {};
    for (const b of aggs.backends.buckets) byBackend[b.key] = b.doc_count;
    return {
      requests: total,
      bytes: aggs.bytes.value ?? 0,
      serverErrors: aggs.status.buckets.server.doc_count,
      clientErrors: aggs.status.buckets.client.doc_count,
      byBackend,
    };
  }

  async newestRecordTime(): Promise<Date | null> {
    const { aggs } = await this.aggregate<{ newest: { value: number | null } }>(
      { match_all: {} },
      { newest: { max: { field: '@timestamp' } } },
    );
    return aggs.newest.value === null ? null : new Date(aggs.newest.value);
  }

  async count(): Promise<number> {
    return (await this.client.count({ index: this.dataStream })).count;
  }

  /** ILM deletes whole backing indices after the retention period: nothing to do here. */
  async applyRetention(_before: Date): Promise<number> {
    return 0;
  }

  /**
   * Removes the data stream (all its records), the index template and the ILM policy. For test
   * runs and for ops tearing an installation down; never called by the service itself.
   */
  async removeAll(): Promise<void> {
    const ignoreMissing = (err: unknown) => {
      if (!isStatus(err, 404)) throw err;
    };
    await this.client.indices.deleteDataStream({ name: this.dataStream }).catch(ignoreMissing);
    await this.client.indices.deleteIndexTemplate({ name: indexTemplateName(this.dataStream) }).catch(ignoreMissing);
    await this.client.ilm.deleteLifecycle({ name: ilmPolicyName(this.dataStream) }).catch(ignoreMissing);
  }
}
