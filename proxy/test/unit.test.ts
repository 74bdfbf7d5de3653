import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../common/src/config.ts';
import { Backend, type StateChange } from '../src/backend.ts';
import { BackendPool } from '../src/backend-pool.ts';
import { normalizeBackendUrl } from '../src/backend-url.ts';
import { parseBackendsFile } from '../src/backends-file.ts';
import { LeastInFlightBalancer } from '../src/balancer.ts';
import { DEFAULT_BACKENDS, loadProxyConfig } from '../src/config.ts';
import { classifyUpstreamError, isReplayable } from '../src/forwarder.ts';
import { isValidRequestId, resolveRequestId } from '../src/request-id.ts';
import { isMonitoringPath, Router } from '../src/router.ts';

const thresholds = { healthyThreshold: 1, unhealthyThreshold: 2 };

function healthy(url: string, inFlight = 0): Backend {
  const b = new Backend(url, thresholds);
  b.recordCheck(true, 'HTTP 200');
  b.inFlight = inFlight;
  return b;
}

describe('balancer', () => {
  test('picks the backend with the fewest requests in flight', () => {
    const a = healthy('http://a:1', 3);
    const b = healthy('http://b:1', 1);
    const c = healthy('http://c:1', 2);
    const balancer = new LeastInFlightBalancer();
    for (let i = 0; i < 5; i++) assert.equal(balancer.pick([a, b, c]), b);
  });

  test('round-robins among ties', () => {
    const backends = [healthy('http://a:1'), healthy('http://b:1'), healthy('http://c:1')];
    const balancer = new LeastInFlightBalancer();
    const picks = Array.from({ length: 9 }, () => balancer.pick(backends)!.url);
    assert.deepEqual(picks, ['http://a:1', 'http://b:1', 'http://c:1', 'http://a:1', 'http://b:1', 'http://c:1', 'http://a:1', 'http://b:1', 'http://c:1']);
  });

  test('ties among the least loaded only', () => {
    const a = healthy('http://a:1', 0);
    const b = healthy('http://b:1', 5);
    const c = healthy('http://c:1', 0);
    const balancer = new LeastInFlightBalancer();
    const picks = new Set(Array.from({ length: 6 }, () => balancer.pick([a, b, c])!.url));
    assert.deepEqual([...picks].sort(), ['http://a:1', 'http://c:1']);
  });

  test('never picks draining, unhealthy, pending or excluded backends', () => {
    const draining = healthy('http://d:1');
    draining.inFlight = 1; // stays draining while a request is in flight
    draining.drain();
    assert.equal(draining.state, 'draining');
    const unhealthy = healthy('http://u:1');
    unhealthy.eject('test');
    const pending = new Backend('http://p:1', thresholds);
    const ok = healthy('http://ok:1', 100);
    const balancer = new LeastInFlightBalancer();
    for (let i = 0; i < 4; i++) assert.equal(balancer.pick([draining, unhealthy, pending, ok]), ok);
    assert.equal(balancer.pick([draining, unhealthy, pending, ok], ok), null);
    assert.equal(balancer.pick([]), null);
  });

  test('the pool keeps its rotation in step with backend states', () => {
    const pool = new BackendPool('web', thresholds);
    const a = pool.add('http://127.0.0.1:1').backend;
    const b = pool.add('http://127.0.0.1:2/').backend;
    assert.equal(pool.add('HTTP://127.0.0.1:2').created, false, 'same origin written differently is the same backend');
    assert.equal(pool.pick(), null, 'pending backends are not in rotation');
    a.recordCheck(true, 'ok');
    b.recordCheck(true, 'ok');
    assert.equal(pool.healthyCount, 2);
    assert.equal(pool.pick(a), b);
    pool.drain(b.url);
    assert.equal(pool.get(b.url), undefined, 'drained with nothing in flight → removed');
    assert.equal(pool.pick(a), null);
    pool.remove(a.url);
    assert.equal(pool.size, 0);
    assert.equal(pool.healthyCount, 0);
  });
});

describe('backend state machine', () => {
  function make(h = 1, u = 2): { b: Backend; changes: string[] } {
    const changes: string[] = [];
    const b = new Backend('http://127.0.0.1:3001', { healthyThreshold: h, unhealthyThreshold: u }, (c: StateChange) => changes.push(`${c.from}->${c.to}`));
    return { b, changes };
  }

  test('pending joins rotation only after passing checks', () => {
    const { b, changes } = make(2, 2);
    assert.equal(b.state, 'pending');
    assert.equal(b.available, false);
    b.recordCheck(true, 'ok');
    assert.equal(b.state, 'pending', 'HEALTHY_THRESHOLD=2 needs two passes');
    b.recordCheck(true, 'ok');
    assert.equal(b.state, 'healthy');
    assert.equal(b.available, true);
    assert.deepEqual(changes, ['pending->healthy']);
  });

  test('a pending backend that keeps failing becomes unhealthy', () => {
    const { b } = make();
    b.recordCheck(false, 'ECONNREFUSED');
    assert.equal(b.state, 'pending');
    b.recordCheck(false, 'ECONNREFUSED');
    assert.equal(b.state, 'unhealthy');
  });

  test('healthy → unhealthy after UNHEALTHY_THRESHOLD consecutive failures, back after a pass', () => {
    const { b, changes } = make(1, 2);
    b.recordCheck(true, 'ok');
    b.recordCheck(false, 'HTTP 503');
    assert.equal(b.state, 'healthy', 'one failure is below the threshold');
    b.recordCheck(true, 'ok');
    b.recordCheck(false, 'HTTP 503');
    assert.equal(b.state, 'healthy', 'failures must be consecutive');
    b.recordCheck(false, 'HTTP 503');
    assert.equal(b.state, 'unhealthy');
    b.recordCheck(true, 'ok');
    assert.equal(b.state, 'healthy');
    assert.deepEqual(changes, ['pending->healthy', 'healthy->unhealthy', 'unhealthy->healthy']);
  });

  test('passive ejection takes a healthy backend out at once; an active pass brings it back', () => {
    const { b } = make(1, 3);
    b.recordCheck(true, 'ok');
    b.eject('refused');
    assert.equal(b.state, 'unhealthy');
    b.recordCheck(true, 'ok');
    assert.equal(b.state, 'healthy');
  });

  test('draining waits for in-flight requests, then the backend is removed', () => {
    const { b, changes } = make();
    b.recordCheck(true, 'ok');
    b.startRequest();
    b.startRequest();
    b.drain();
    assert.equal(b.state, 'draining');
    assert.equal(b.available, false);
    b.recordCheck(true, 'ok');
    assert.equal(b.state, 'draining', 'checks do not change a draining backend');
    b.finishRequest();
    assert.equal(b.state, 'draining');
    b.finishRequest();
    assert.equal(b.state, 'removed');
    assert.deepEqual(changes, ['pending->healthy', 'healthy->draining', 'draining->removed']);
  });

  test('a draining backend added again starts over as pending; remove is terminal', () => {
    const { b } = make();
    b.recordCheck(true, 'ok');
    b.startRequest();
    b.drain();
    b.restore();
    assert.equal(b.state, 'pending');
    b.remove();
    assert.equal(b.state, 'removed');
    b.recordCheck(true, 'ok');
    b.restore();
    b.drain();
    assert.equal(b.state, 'removed');
  });
});

describe('config', () => {
  test('defaults', () => {
    const c = loadProxyConfig({});
    assert.equal(c.port, 8080);
    assert.equal(c.host, '0.0.0.0');
    assert.deepEqual(c.backends, DEFAULT_BACKENDS);
    assert.equal(c.healthIntervalMs, 1000);
    assert.equal(c.healthTimeoutMs, 800);
    assert.equal(c.unhealthyThreshold, 2);
    assert.equal(c.healthyThreshold, 1);
    assert.equal(c.shutdownTimeoutMs, 10000);
    assert.equal(c.maxSocketsPerBackend, 256);
    assert.equal(c.opsToken, undefined);
    assert.equal(c.monitoringUrl, undefined);
    assert.match(c.instance, /^proxy-.+-8080$/);
    assert.equal(c.records, null, 'record shipping is off without FLUENT_HOST');
  });

  test('record shipping: FLUENT_HOST turns it on; the spool defaults to DATA_DIR/spool/<instance>', () => {
    const c = loadProxyConfig({ FLUENT_HOST: 'fluentd', FLUENT_PORT: '24225', DATA_DIR: '/srv/data', INSTANCE: 'edge-1', RECORD_QUEUE_MAX: '1000', SPOOL_MAX_MB: '64' });
    assert.deepEqual(c.records, { host: 'fluentd', port: 24225, spoolDir: '/srv/data/spool/edge-1', maxQueuedRecords: 1000, maxSpoolBytes: 64 * 1024 * 1024 });
    assert.equal(loadProxyConfig({ FLUENT_HOST: 'fluentd', SPOOL_DIR: '/spool/p' }).records?.spoolDir, '/spool/p');
  });

  test('an ops token, when set, has at least 12 characters (as monitoring requires); empty means unset', () => {
    assert.throws(() => loadProxyConfig({ OPS_TOKEN: 'short' }), /OPS_TOKEN.*at least 12 characters/s);
    assert.equal(loadProxyConfig({ OPS_TOKEN: '' }).opsToken, undefined);
    assert.equal(loadProxyConfig({ OPS_TOKEN: 'long-enough-token' }).opsToken, 'long-enough-token');
  });

  test('parses and normalizes backends', () => {
    const c = loadProxyConfig({ BACKENDS: 'http://127.0.0.1:3001/, http://127.0.0.1:3002,http://127.0.0.1:3001', PROXY_PORT: '9090', INSTANCE: 'edge-1', OPS_TOKEN: 'test-ops-token', MONITORING_URL: 'http://127.0.0.1:9000' });
    assert.deepEqual(c.backends, ['http://127.0.0.1:3001', 'http://127.0.0.1:3002']);
    assert.equal(c.port, 9090);
    assert.equal(c.instance, 'edge-1');
    assert.equal(c.monitoringUrl, 'http://127.0.0.1:9000');
  });

  test('BACKENDS_FILE without BACKENDS starts empty; explicit empty BACKENDS means none', () => {
    assert.deepEqual(loadProxyConfig({ BACKENDS_FILE: '/tmp/x' }).backends, []);
    assert.deepEqual(loadProxyConfig({ BACKENDS: '' }).backends, []);
  });

  test('errors name every bad variable', () => {
    let caught: unknown;
    try {
      loadProxyConfig({ BACKENDS: 'http://127.0.0.1:3001,not a url', HEALTH_INTERVAL_MS: '-5', PROXY_PORT: 'eighty', MONITORING_URL: 'ftp://x', LOG_LEVEL: 'loud' });
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof ConfigError, 'a ConfigError');
    const message = (caught as ConfigError).message;
    for (const name of ['BACKENDS', 'HEALTH_INTERVAL_MS', 'PROXY_PORT', 'MONITORING_URL', 'LOG_LEVEL']) assert.match(message, new RegExp(`^  - ${name}: `, 'm'), `${name} listed in:\n${message}`);
    assert.match(message, /not a url/);
  });

  test('backend URLs must be plain http origins', () => {
    assert.equal(normalizeBackendUrl(' http://Example.COM:80/ '), 'http://example.com');
    for (const bad of ['https://x:1', 'http://u:p@x:1', 'http://x:1/path', 'http://x:1/?q=1', '127.0.0.1:3001', '']) {
      assert.throws(() => normalizeBackendUrl(bad), Error, bad);
    }
  });
});

describe('request id', () => {
  test('accepts only [A-Za-z0-9._-]{1,64}', () => {
    for (const ok of ['a', 'abc-123_X.y', 'x'.repeat(64), 'f47ac10b-58cc-4372-a567-0e02b2c3d479']) assert.ok(isValidRequestId(ok), ok);
    for (const bad of ['', 'x'.repeat(65), 'has space', 'semi;colon', 'ünï', 'a/b', '<script>', ['a', 'b'], undefined]) assert.ok(!isValidRequestId(bad), String(bad));
  });

  test('keeps a valid incoming id, otherwise generates one', () => {
    assert.equal(resolveRequestId('trace-1'), 'trace-1');
    const generated = resolveRequestId('bad id!');
    assert.ok(isValidRequestId(generated));
    assert.notEqual(generated, resolveRequestId(undefined));
  });
});

describe('routing and retry rules', () => {
  test('monitoring paths go to the monitoring pool only when it exists', () => {
    const web = new BackendPool('web', thresholds);
    const mon = new BackendPool('monitoring', thresholds);
    for (const p of ['/monitor', '/monitor/app.js', '/api/streams', '/api']) assert.ok(isMonitoringPath(p), p);
    for (const p of ['/', '/live/demo/index.m3u8', '/watch/demo', '/apiary']) assert.ok(!isMonitoringPath(p), p);
    assert.equal(new Router(web, mon).route('/api/streams'), mon);
    assert.equal(new Router(web, mon).route('/live/a/index.m3u8'), web);
    assert.equal(new Router(web, null).route('/api/streams'), web);
  });

  test('only bodiless GET/HEAD are replayed', () => {
    const req = (method: string, headers: Record<string, string> = {}) => ({ method, headers }) as never;
    assert.ok(isReplayable(req('GET')));
    assert.ok(isReplayable(req('HEAD', { 'content-length': '0' })));
    assert.ok(!isReplayable(req('POST')));
    assert.ok(!isReplayable(req('GET', { 'content-length': '5' })));
    assert.ok(!isReplayable(req('GET', { 'transfer-encoding': 'chunked' })));
  });

  test('error classification', () => {
    const err = (code: string) => Object.assign(new Error(code), { code });
    assert.equal(classifyUpstreamError(err('ECONNREFUSED'), null), 'refused');
    assert.equal(classifyUpstreamError(err('ECONNRESET'), null), 'reset');
    assert.equal(classifyUpstreamError(err('ECONNRESET'), { reusedSocket: true } as never), 'stale_socket');
    assert.equal(classifyUpstreamError(err('UPSTREAM_TIMEOUT'), null), 'timeout');
    assert.equal(classifyUpstreamError(err('HPE_INVALID'), null), 'other');
  });
});

describe('backends file', () => {
  test('JSON array, JSON object and line list', () => {
    assert.deepEqual(parseBackendsFile('["http://127.0.0.1:1", "http://127.0.0.1:2/"]'), ['http://127.0.0.1:1', 'http://127.0.0.1:2']);
    assert.deepEqual(parseBackendsFile('{"backends": ["http://127.0.0.1:1"]}'), ['http://127.0.0.1:1']);
    assert.deepEqual(parseBackendsFile('# replicas\nhttp://127.0.0.1:1\n\n  http://127.0.0.1:2  # second\n'), ['http://127.0.0.1:1', 'http://127.0.0.1:2']);
    assert.deepEqual(parseBackendsFile('[]'), []);
    assert.equal(parseBackendsFile('  \n'), null);
  });

  test('any bad entry rejects the whole file', () => {
    assert.throws(() => parseBackendsFile('["http://127.0.0.1:1", 5]'), /JSON array/);
    assert.throws(() => parseBackendsFile('["http://127.0.0.1:1",'), /invalid JSON/);
    assert.throws(() => parseBackendsFile('http://127.0.0.1:1\nnot-a-url'), /not a valid URL/);
  });
});
