import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { createLogger } from '../../common/src/logger.ts';
import { liveRoot, streamDir } from '../../common/src/media-layout.ts';
import { makeTempDir, sleep, waitFor } from '../../common/testing/processes.ts';
import { LivePlaylists, type LivePlaylistLimits } from '../src/live-playlists.ts';
import { LiveSegments } from '../src/live-segments.ts';
import { loadPlaylist } from '../src/media-files.ts';
import { createMediaHandler, sendMedia } from '../src/media-handler.ts';
import { createLowLatencyMetrics, createWebMetrics } from '../src/metrics.ts';
import { SegmentCache } from '../src/segment-cache.ts';
import { get } from './http-client.ts';
import { listsPart, LowLatencyPlaylist, LowLatencyWriter } from './ll-fixtures.ts';

/**
 * The live playlist states in-process (the media handler on a real HTTP server, real files):
 * the memory bounds, the feed's path rules, the ordering of feed and file versions, and the
 * fallback re-read on a file system that gives no change events (as NFS without the feed).
 */

const logger = createLogger('web-test', 'silent');

interface Harness {
  playlists: LivePlaylists;
  port: number;
  reads: () => number;
  close: () => Promise<void>;
}

async function harness(mediaDir: string, options: { events: boolean; limits?: LivePlaylistLimits }): Promise<Harness> {
  const registry = new Registry();
  const segments = new LiveSegments(new SegmentCache(16 * 1024 * 1024));
  let reads = 0;
  const playlists: LivePlaylists = new LivePlaylists(
    mediaDir,
    {
      now: () => performance.now(),
      logger,
      metrics: createLowLatencyMetrics(registry, { livePlaylists: () => playlists.size, held: (kind) => playlists.heldNow(kind) }, true),
      loadPlaylist: (file) => {
        reads++;
        return loadPlaylist(file);
      },
      loadPart: (file) => segments.loadBody(file),
      sendPart: (res, media, body) => sendMedia(res.req, res, media, body),
      // Without events: a file system that never says a file changed.
      ...(options.events ? {} : { watchFolder: () => null }),
    },
    options.limits,
  );
  playlists.start();
  const metrics = createWebMetrics(registry, { segmentCacheBytes: () => 0, segmentCacheEntries: () => 0, segmentCacheEvictions: () => 0, liveStreams: () => 0 });
  const handle = createMediaHandler({ mediaDir, liveSegments: segments, livePlaylists: playlists, metrics, logger });
  const server: Server = createServer((req, res) => handle(req, res, (req.url ?? '/').split('?')[0]!));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    playlists,
    port: (server.address() as AddressInfo).port,
    reads: () => reads,
    close: async () => {
      playlists.close();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

describe('live playlist states', () => {
  let media: Awaited<ReturnType<typeof makeTempDir>>;
  before(async () => {
    media = await makeTempDir('web-live-playlists');
  });
  after(() => media.remove());

  it('made-up stream names never hold more than the bound, and idle ones are dropped', async () => {
    const h = await harness(media.dir, { events: true, limits: { maxPlaylists: 10, idleMs: 200, sweepMs: 50 } });
    try {
      for (let i = 0; i < 100; i++) {
        const answer = await get(h.port, `/live/nobody-${i}/index.m3u8`);
        assert.equal(answer.status, 404);
      }
      assert.equal(h.playlists.size, 10);
      // Invalid names are refused by the path rules before any state exists.
      for (const target of ['/live/Nobody/index.m3u8', '/live/a..b/index.m3u8', '/live/x/y/z/index.m3u8']) assert.notEqual((await get(h.port, target)).status, 200);
      assert.equal(h.playlists.size, 10);
      await waitFor('idle states dropped', () => h.playlists.size === 0, 3_000, 20);
    } finally {
      await h.close();
    }
  });

  it('keeps a playlist the feed keeps updating, even when nobody asks', async () => {
    const h = await harness(media.dir, { events: true, limits: { maxPlaylists: 10, idleMs: 200, sweepMs: 50 } });
    try {
      const model = new LowLatencyPlaylist({ run: 'feedkeep' });
      const timer = setInterval(() => {
        model.addPart();
        h.playlists.feedVersion('live/kept/index.m3u8', model.render());
      }, 50);
      try {
        assert.equal(h.playlists.feedVersion('live/kept/index.m3u8', model.render()), true);
        await sleep(600);
        assert.equal(h.playlists.size, 1);
      } finally {
        clearInterval(timer);
      }
      await waitFor('dropped once the feed stopped', () => h.playlists.size === 0, 3_000, 20);
    } finally {
      await h.close();
    }
  });

  it('takes from the feed only live media playlist paths', async () => {
    const h = await harness(media.dir, { events: true });
    try {
      const text = new LowLatencyPlaylist().render();
      for (const file of ['live/a/index.m3u8', 'live/a/720p/index.m3u8', 'live/a/source/index.m3u8']) assert.equal(h.playlists.feedVersion(file, text), true, file);
      for (const file of ['live/A/index.m3u8', 'live/a/x.m3u8', 'live/a/seg.m4s', 'live/a/big/index.m3u8', 'live/../a/index.m3u8', 'live/a/../b/index.m3u8', 'live//a/index.m3u8', '/live/a/index.m3u8', 'live/a%2f/index.m3u8', 'archive/a/20261204-100000-abcdef/index.m3u8', 'uploads/x/index.m3u8', 'live/a/index.m3u8/x', '', 'live/a\\b/index.m3u8']) {
        assert.equal(h.playlists.feedVersion(file, text), false, JSON.stringify(file));
      }
      assert.equal(h.playlists.feedVersion('live/b/index.m3u8', 'not a playlist'), false);
      assert.equal(h.playlists.size, 3);
    } finally {
      await h.close();
    }
  });

  it('a file read older than the feed\'s version does not undo it; a missing file is believed once the feed is lost', async () => {
    const h = await harness(media.dir, { events: true });
    try {
      const writer = new LowLatencyWriter(streamDir(media.dir, 'order'), new LowLatencyPlaylist({ run: 'order' }));
      await writer.start(3);
      const onDisk = writer.playlist.render();
      writer.playlist.addPart();
      const ahead = writer.playlist.render();
      assert.equal(h.playlists.feedVersion('live/order/index.m3u8', ahead), true);
      const state = h.playlists.forRequest(path.join(liveRoot(media.dir), 'order', 'index.m3u8'))!;
      await state.refresh();
      assert.equal(state.version?.body.toString(), ahead, 'the older file did not replace the feed version');
      assert.notEqual(onDisk, ahead);
      // A stream the feed knows and the disk does not: kept while the feed is connected.
      assert.equal(h.playlists.feedVersion('live/only-feed/index.m3u8', ahead), true);
      const onlyFeed = h.playlists.forRequest(path.join(liveRoot(media.dir), 'only-feed', 'index.m3u8'))!;
      await onlyFeed.refresh();
      assert.equal((await get(h.port, '/live/only-feed/index.m3u8')).status, 200);
      h.playlists.feedLost();
      await onlyFeed.refresh();
      assert.equal((await get(h.port, '/live/only-feed/index.m3u8')).status, 404);
    } finally {
      await h.close();
    }
  });

  it('without file-system events (and no feed) held reloads still wake, by the bounded fallback re-read', async (t) => {
    const h = await harness(media.dir, { events: false });
    try {
      const writer = new LowLatencyWriter(streamDir(media.dir, 'nfs'), new LowLatencyPlaylist({ run: 'nfsrun' }));
      await writer.start(6);
      const model = writer.playlist;
      const target = `/live/nfs/index.m3u8?_HLS_msn=${model.openMsn}&_HLS_part=${model.openParts}`;
      const pending = Array.from({ length: 20 }, () => get(h.port, target));
      await waitFor('held', () => h.playlists.heldNow('playlist') === 20, 5_000, 10);
      const readsBefore = h.reads();
      await sleep(1_000);
      const readsPerSecond = h.reads() - readsBefore;
      const part = await writer.publishPart();
      const renamedAt = performance.now();
      const answers = await Promise.all(pending);
      const latest = Math.max(...answers.map((a) => a.at)) - renamedAt;
      t.diagnostic(`no events: ${readsPerSecond} reads/s while held, woken ${latest.toFixed(0)} ms after the rename`);
      for (const answer of answers) assert.ok(listsPart(answer.body, part));
      assert.ok(readsPerSecond <= 6, `bounded re-reads (${readsPerSecond}/s, ~4 expected)`);
      assert.ok(latest < 1_500, `woken by the re-read (${latest.toFixed(0)} ms)`);

      // Plain requests: never older than about one re-read interval.
      const next = await writer.publishPart();
      const publishedAt = performance.now();
      await waitFor('plain request sees it', async () => listsPart((await get(h.port, '/live/nfs/index.m3u8')).body, next), 3_000, 10);
      const visible = performance.now() - publishedAt;
      t.diagnostic(`no events: a plain request saw the new version after ${visible.toFixed(0)} ms`);
      assert.ok(visible < 1_000);
    } finally {
      await h.close();
    }
  });
});
