import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../common/src/config.ts';
import { loadWebConfig } from '../src/config.ts';

describe('loadWebConfig', () => {
  it('has working defaults', () => {
    const config = loadWebConfig({});
    assert.equal(config.port, 3001);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.mediaDir, path.resolve('var/media'));
    assert.equal(config.instance, `web-${os.hostname()}-3001`);
    assert.deepEqual(config.trustedProxies, ['127.0.0.1', '::1']);
    assert.equal(config.mediaCacheBytes, 256 * 1024 * 1024);
    assert.equal(config.logLevel, 'info');
    assert.equal(config.shutdownTimeoutMs, 10_000);
    assert.equal(config.records, null, 'record shipping is off without FLUENT_HOST');
    assert.equal(config.ingestFeedUrl, null, 'no playlist feed without INGEST_FEED_URL');
  });

  it('reads every variable', () => {
    const config = loadWebConfig({
      WEB_PORT: '3002',
      WEB_HOST: '127.0.0.1',
      MEDIA_DIR: '/srv/media',
      INSTANCE: 'web-b',
      TRUSTED_PROXIES: ' 10.0.0.0/8, fd00::/8 ',
      MEDIA_CACHE_MB: '16',
      LOG_LEVEL: 'warn',
      SHUTDOWN_TIMEOUT_MS: '2000',
      INGEST_FEED_URL: 'http://ingest:8001/playlists/feed',
    });
    assert.deepEqual(config, {
      port: 3002,
      host: '127.0.0.1',
      mediaDir: '/srv/media',
      instance: 'web-b',
      trustedProxies: ['10.0.0.0/8', 'fd00::/8'],
      mediaCacheBytes: 16 * 1024 * 1024,
      logLevel: 'warn',
      shutdownTimeoutMs: 2000,
      ingestFeedUrl: 'http://ingest:8001/playlists/feed',
      records: null,
    });
  });

  it('ships records when FLUENT_HOST is set; the spool defaults to DATA_DIR/spool/<instance>', () => {
    const config = loadWebConfig({ FLUENT_HOST: '127.0.0.1', DATA_DIR: '/srv/data', INSTANCE: 'web-b' });
    assert.deepEqual(config.records, { host: '127.0.0.1', port: 24224, spoolDir: '/srv/data/spool/web-b', maxQueuedRecords: 20_000, maxSpoolBytes: 1024 ** 3 });
    assert.equal(loadWebConfig({ FLUENT_HOST: 'fluentd', FLUENT_PORT: '24225', SPOOL_DIR: '/spool' }).records?.spoolDir, '/spool');
    assert.throws(() => loadWebConfig({ FLUENT_HOST: 'fluentd', FLUENT_PORT: 'x' }), /FLUENT_PORT/);
  });

  it('an empty TRUSTED_PROXIES trusts nobody; the default instance follows the port', () => {
    const config = loadWebConfig({ TRUSTED_PROXIES: '', WEB_PORT: '3003' });
    assert.deepEqual(config.trustedProxies, []);
    assert.equal(config.instance, `web-${os.hostname()}-3003`);
  });

  it('INGEST_FEED_URL: empty is off, anything but an http(s) URL is refused with an example', () => {
    assert.equal(loadWebConfig({ INGEST_FEED_URL: '' }).ingestFeedUrl, null);
    assert.equal(loadWebConfig({ INGEST_FEED_URL: 'https://ingest.internal/playlists/feed' }).ingestFeedUrl, 'https://ingest.internal/playlists/feed');
    for (const value of ['ingest:8001/playlists/feed', 'ftp://ingest/feed', 'not a url', 'http://']) {
      assert.throws(() => loadWebConfig({ INGEST_FEED_URL: value }), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /INGEST_FEED_URL: must be an http:\/\/ or https:\/\/ URL like http:\/\/ingest:8001\/playlists\/feed/);
        return true;
      }, value);
    }
  });

  it('reports every problem at once, by variable name', () => {
    assert.throws(
      () => loadWebConfig({ WEB_PORT: 'http', TRUSTED_PROXIES: '10.0.0.0/40', MEDIA_CACHE_MB: '-1', LOG_LEVEL: 'loud' }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        for (const name of ['WEB_PORT', 'TRUSTED_PROXIES', 'MEDIA_CACHE_MB', 'LOG_LEVEL']) assert.match(err.message, new RegExp(name));
        return true;
      },
    );
  });
});
