/**
 * Elasticsearch-only checks beyond the shared contract (store-contract.test.ts).
 * - The provisioning bodies (pure data: checked here without a server).
 * - Behaviour with no server at all (a closed port: the real client, no mock).
 * - Provisioning against a real server: only with ELASTICSEARCH_URL, otherwise reported as skipped.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import {
  ACCESS_DATA_STREAM,
  ACCESS_ILM_POLICY,
  ACCESS_INDEX_TEMPLATE,
  ACCESS_MAPPINGS,
  ElasticsearchAccessStore,
  accessIlmPolicy,
  elasticsearchProvisioning,
  ilmPolicyName,
  indexTemplateName,
} from '../src/store/elasticsearch-store.ts';
import { T0, recordMaker } from './fixtures/access-records.ts';

test('index template: data stream, explicit mappings, ILM policy attached', () => {
  assert.deepEqual(ACCESS_INDEX_TEMPLATE.index_patterns, [ACCESS_DATA_STREAM]);
  assert.deepEqual(ACCESS_INDEX_TEMPLATE.data_stream, {});
  assert.equal(ACCESS_INDEX_TEMPLATE.template.settings['index.lifecycle.name'], ilmPolicyName(ACCESS_DATA_STREAM));
  assert.equal(ACCESS_MAPPINGS.dynamic, false);
  const p = ACCESS_MAPPINGS.properties;
  assert.equal(p['@timestamp'].type, 'date');
  assert.equal(p.client_ip.type, 'ip');
  for (const field of ['stream', 'session_id', 'kind', 'tier', 'instance', 'method', 'backend', 'record_id', 'request_id', 'refusal', 'path', 'user_agent'] as const) {
    assert.equal(p[field].type, 'keyword', field);
  }
  assert.equal(p.status.type, 'short');
  assert.equal(p.bytes.type, 'long');
  assert.equal(p.duration_ms.type, 'float');
});

test('ILM policy: rollover, then delete after the configured days', () => {
  assert.equal(ACCESS_ILM_POLICY.phases.delete?.min_age, '7d');
  assert.deepEqual(ACCESS_ILM_POLICY.phases.delete?.actions, { delete: {} });
  assert.deepEqual(ACCESS_ILM_POLICY.phases.hot?.actions?.rollover, { max_primary_shard_size: '10gb', max_age: '1d' });
  const custom = accessIlmPolicy(30, { maxAge: '12h', maxPrimaryShardSize: '5gb' });
  assert.equal(custom.phases.delete?.min_age, '30d');
  assert.deepEqual(custom.phases.hot?.actions?.rollover, { max_primary_shard_size: '5gb', max_age: '12h' });
  assert.throws(() => accessIlmPolicy(0), RangeError);
  assert.deepEqual(
    elasticsearchProvisioning().map((r) => `${r.method} ${r.path}`),
    [`PUT /_ilm/policy/${ilmPolicyName(ACCESS_DATA_STREAM)}`, `PUT /_index_template/${indexTemplateName(ACCESS_DATA_STREAM)}`, `PUT /_data_stream/${ACCESS_DATA_STREAM}`],
  );
});

test('with no server, ping is false and insert fails loudly (the batch is not reported as stored or rejected)', async () => {
  // A port that was free a moment ago: nothing listens there.
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
  const store = new ElasticsearchAccessStore({ node: `http://127.0.0.1:${port}`, clientOptions: { maxRetries: 0, requestTimeout: 2000 } });
  try {
    assert.equal(await store.ping(), false);
    await assert.rejects(store.insert([recordMaker('down')({ at: T0 })]), { name: 'ConnectionError' });
    await assert.rejects(store.open(), { name: 'ConnectionError' });
    // Malformed records are still refused locally, before any request.
    assert.deepEqual(await store.insert([{} as never]), { inserted: 0, duplicates: 0, rejected: [{ record_id: null, reason: 'record_id: missing or not a non-empty string' }] });
  } finally {
    await store.close();
  }
});

const esUrl = process.env['ELASTICSEARCH_URL'];
test(
  'open() provisions policy, template and data stream on a real server, idempotently',
  { skip: esUrl ? false : 'ELASTICSEARCH_URL not set: no Elasticsearch server on this machine' },
  async () => {
    const dataStream = `onair-test-${process.pid}-${randomBytes(4).toString('hex')}`;
    const store = new ElasticsearchAccessStore({
      node: esUrl!,
      ...(process.env['ELASTICSEARCH_API_KEY'] ? { apiKey: process.env['ELASTICSEARCH_API_KEY'] } : {}),
      ...(process.env['ELASTICSEARCH_USERNAME'] ? { username: process.env['ELASTICSEARCH_USERNAME'], password: process.env['ELASTICSEARCH_PASSWORD'] ?? '' } : {}),
      dataStream,
      retentionDays: 3,
      refresh: 'wait_for',
    });
    try {
      await store.open();
      await store.open();
      const policy = await store.client.ilm.getLifecycle({ name: ilmPolicyName(dataStream) });
      assert.equal(policy[ilmPolicyName(dataStream)]?.policy.phases.delete?.min_age, '3d');
      const ds = await store.client.indices.getDataStream({ name: dataStream });
      assert.equal(ds.data_streams.length, 1);
      assert.equal(ds.data_streams[0]?.template, indexTemplateName(dataStream));
      assert.equal(ds.data_streams[0]?.ilm_policy, ilmPolicyName(dataStream));
      const mapping = await store.client.indices.getMapping({ index: dataStream });
      const properties = Object.values(mapping)[0]?.mappings.properties ?? {};
      assert.equal(properties['client_ip']?.type, 'ip');
      assert.equal(properties['stream']?.type, 'keyword');
      // dynamic: false — a document with a field we never declared is stored, not refused, and
      // the mapping does not grow.
      await store.client.create({ index: dataStream, id: 'extra-field', document: { '@timestamp': new Date(T0).toISOString(), added_by_fluentd: 'x' }, refresh: 'wait_for' });
      const after = await store.client.indices.getMapping({ index: dataStream });
      assert.equal(Object.values(after)[0]?.mappings.properties?.['added_by_fluentd'], undefined);
      assert.equal(await store.count(), 1);
    } finally {
      await store.removeAll().catch(() => undefined);
      await store.close();
    }
  },
);
