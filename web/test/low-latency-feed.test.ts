import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http, { type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { streamDir } from '../../common/src/media-layout.ts';
import { metricValue, scrapeMetrics } from '../../common/testing/metrics.ts';
import { freePort, makeTempDir, sleep, startService, waitFor, waitForHttpOk, type ManagedProcess } from '../../common/testing/processes.ts';
import { get, manySocketsAgent } from './http-client.ts';
import { listsPart, LowLatencyPlaylist, LowLatencyWriter } from './ll-fixtures.ts';

/**
 * Web with INGEST_FEED_URL pointing at a fake feed in the test (docs/low-latency-hls.md "Ingest's
 * playlist feed"): versions the feed sends but nobody writes to disk wake held requests; when the
 * feed goes away web follows the files (and stays ready); when it comes back it is used again;
 * a silent connection is given up after 6 s; `file` outside the live playlists is refused.
 */

const STREAM = 'feedy';
const FEED_FILE = `live/${STREAM}/index.m3u8`;

/** Ingest's feed, faked: current versions to every new reader, then each published one; heartbeats every second unless silent. */
class FakeFeed {
  private server: http.Server | null = null;
  private readonly readers = new Set<ServerResponse>();
  private readonly sockets = new Set<Socket>();
  readonly current = new Map<string, string>();
  private heartbeat: NodeJS.Timeout | null = null;
  silent = false;
  connections = 0;

  constructor(readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/playlists/feed`;
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      if (req.url !== '/playlists/feed') return void res.writeHead(404).end();
      this.connections++;
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.flushHeaders();
      this.readers.add(res);
      res.on('close', () => this.readers.delete(res));
      for (const [file, text] of this.current) res.write(`${JSON.stringify({ type: 'playlist', file, text })}\n`);
    });
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.server = server;
    this.heartbeat = setInterval(() => {
      if (!this.silent) this.send({ type: 'heartbeat', at: new Date().toISOString() });
    }, 1_000);
  }

  publish(file: string, text: string): void {
    this.current.set(file, text);
    this.send({ type: 'playlist', file, text });
  }

  /** A line ingest would never send for a live playlist: `file` web must refuse. */
  sendRaw(message: unknown): void {
    this.send(message);
  }

  /** Gone: connections cut, nothing listening. */
  async stop(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private send(message: unknown): void {
    const line = `${JSON.stringify(message)}\n`;
    for (const reader of this.readers) reader.write(line);
  }
}

function showLogsOnFailure(t: object, web: ManagedProcess | undefined): void {
  const context = t as { passed?: boolean; diagnostic?: (message: string) => void };
  if (context.passed === false && web) context.diagnostic?.(web.tail(80));
}

describe('low-latency HLS: ingest\'s playlist feed', () => {
  let media: Awaited<ReturnType<typeof makeTempDir>>;
  let web: ManagedProcess;
  let port: number;
  let base: string;
  let feed: FakeFeed;
  let writer: LowLatencyWriter;
  const agent = manySocketsAgent();
  const playlistUrl = `/live/${STREAM}/index.m3u8`;
  const model = (): LowLatencyPlaylist => writer.playlist;
  const next = (): string => `${playlistUrl}?_HLS_msn=${model().openMsn}&_HLS_part=${model().openParts}`;
  const metric = async (name: string, labels = ''): Promise<number> => metricValue(await scrapeMetrics(base), name, labels);
  const held = (count: number): Promise<unknown> =>
    waitFor(`${count} held`, async () => (await metric('web_held_requests', 'kind="playlist"')) >= count, 10_000, 20);
  const feedLogs = (): string[] => web.jsonLogs().map((l) => String(l.msg)).filter((msg) => msg.startsWith('playlist feed'));
  const onDisk = (): Promise<string> => readFile(path.join(streamDir(media.dir, STREAM), 'index.m3u8'), 'utf8');

  /** Adds a part that exists only in the feed (nothing is written to disk); returns its name. */
  const feedOnlyPart = (): string => {
    const { part } = model().addPart();
    feed.publish(FEED_FILE, model().render());
    return part;
  };

  before(async () => {
    media = await makeTempDir('web-ll-feed');
    writer = new LowLatencyWriter(streamDir(media.dir, STREAM), new LowLatencyPlaylist({ run: 'mfz3k2a1b2c5', targetDuration: 1, partTarget: 0.25, partsPerSegment: 4 }));
    await writer.start(5);
    feed = new FakeFeed(await freePort());
    feed.current.set(FEED_FILE, model().render());
    await feed.start();
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    web = startService('web', { WEB_PORT: String(port), WEB_HOST: '127.0.0.1', MEDIA_DIR: media.dir, INSTANCE: 'web-ll-feed', INGEST_FEED_URL: feed.url });
    try {
      await waitForHttpOk(`${base}/readyz`);
    } catch (err) {
      await web.stop();
      throw new Error(`${String(err)}\n${web.tail()}`);
    }
    await waitFor('feed connected', async () => (await metric('web_playlist_feed_connected')) === 1);
  });

  afterEach((t) => showLogsOnFailure(t, web));

  after(async () => {
    agent.destroy();
    await web?.stop();
    await feed?.stop();
    await media?.remove();
  });

  it('wakes held requests from versions that exist only in the feed', async () => {
    assert.deepEqual(feedLogs(), ['playlist feed connected']);
    const fromFeedBefore = await metric('web_playlist_versions_total', 'source="feed"');
    const pending = Array.from({ length: 20 }, () => get(port, next(), { agent }));
    await held(20);
    const part = feedOnlyPart();
    for (const answer of await Promise.all(pending)) {
      assert.equal(answer.status, 200);
      assert.ok(listsPart(answer.body, part));
    }
    assert.ok(!listsPart(await onDisk(), part), 'the disk never had it');
    assert.equal((await get(port, playlistUrl)).body.toString(), model().render(), 'plain requests get the feed\'s version too');
    assert.ok((await metric('web_playlist_versions_total', 'source="feed"')) > fromFeedBefore);
    assert.ok((await metric('web_playlist_feed_versions_total')) >= 2);
  });

  it('refuses feed lines for anything but a live media playlist path', async () => {
    const before = await metric('web_playlist_feed_versions_total');
    const refusedBefore = await metric('web_playlist_feed_refused_total');
    const text = '#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n';
    for (const file of ['live/Feedy/index.m3u8', `live/${STREAM}/other.m3u8`, `live/${STREAM}/r-0.m4s`, 'live/../secret/index.m3u8', `/live/${STREAM}/index.m3u8`, `live/${STREAM}/a/b/index.m3u8`, `archive/${STREAM}/20261204-100000-abcdef/index.m3u8`, 'live/x%2f/index.m3u8', 'index.m3u8']) {
      feed.sendRaw({ type: 'playlist', file, text });
    }
    feed.sendRaw({ type: 'playlist', file: `live/${STREAM}/index.m3u8`, text: 'not a playlist' });
    feed.sendRaw({ type: 'playlist', file: 42, text });
    feed.sendRaw('just a string');
    feed.sendRaw({ type: 'playlist', file: 'live/ghost/index.m3u8', text });
    await waitFor('the one valid line', async () => (await metric('web_playlist_feed_versions_total')) === before + 1);
    await sleep(100);
    assert.equal(await metric('web_playlist_feed_versions_total'), before + 1);
    assert.equal((await metric('web_playlist_feed_refused_total')) - refusedBefore, 10, 'nine paths and one text refused (not-a-playlist lines are skipped earlier)');
    // A live stream the feed knows and the disk does not (yet): served from the feed.
    const ghost = await get(port, '/live/ghost/index.m3u8');
    assert.equal(ghost.status, 200);
    assert.equal(ghost.body.toString(), text);
    assert.equal((await get(port, '/live/Feedy/index.m3u8')).status, 404);
    assert.equal(await metric('web_playlist_feed_connected'), 1, 'bad lines do not break the connection');
  });

  it('follows the files while the feed is gone (and stays ready), and uses the feed again once it is back', async (t) => {
    const disconnectsBefore = await metric('web_playlist_feed_disconnects_total');
    await feed.stop();
    await waitFor('feed disconnected', async () => (await metric('web_playlist_feed_connected')) === 0);
    assert.equal(await metric('web_playlist_feed_disconnects_total'), disconnectsBefore + 1);
    assert.equal((await get(port, '/readyz')).status, 200, 'the files are the fallback: still ready');

    // From the files now: a part published on disk wakes held requests.
    const fromFile = Array.from({ length: 10 }, () => get(port, next(), { agent }));
    await held(10);
    const part = await writer.publishPart();
    for (const answer of await Promise.all(fromFile)) {
      assert.equal(answer.status, 200);
      assert.ok(listsPart(answer.body, part));
    }
    await sleep(1_000); // a few reconnection attempts while it is down
    assert.deepEqual(feedLogs(), ['playlist feed connected', 'playlist feed disconnected, following the files until it is back'], 'one line per change, not one per retry');

    const connectionsBefore = feed.connections;
    feed.current.set(FEED_FILE, model().render());
    await feed.start();
    const backAt = performance.now();
    await waitFor('feed connected again', async () => (await metric('web_playlist_feed_connected')) === 1, 15_000);
    t.diagnostic(`reconnected ${(performance.now() - backAt).toFixed(0)} ms after the feed came back`);
    assert.equal(feed.connections, connectionsBefore + 1);
    const fromFeed = Array.from({ length: 10 }, () => get(port, next(), { agent }));
    await held(10);
    const feedPart = feedOnlyPart();
    for (const answer of await Promise.all(fromFeed)) {
      assert.equal(answer.status, 200);
      assert.ok(listsPart(answer.body, feedPart));
    }
    assert.ok(!listsPart(await onDisk(), feedPart));
    assert.equal(feedLogs().at(-1), 'playlist feed connected');
  });

  it('gives up a connection that stays silent for 6 s, and reconnects', async (t) => {
    const disconnectsBefore = await metric('web_playlist_feed_disconnects_total');
    const connectionsBefore = feed.connections;
    feed.silent = true;
    const silentAt = performance.now();
    await waitFor('silent feed given up', async () => (await metric('web_playlist_feed_disconnects_total')) === disconnectsBefore + 1, 12_000, 100);
    const after = performance.now() - silentAt;
    t.diagnostic(`silent connection given up after ${after.toFixed(0)} ms`);
    assert.ok(after >= 5_000, `not before ~6 s (${after.toFixed(0)} ms)`);
    feed.silent = false;
    await waitFor('reconnected', async () => (await metric('web_playlist_feed_connected')) === 1 && feed.connections > connectionsBefore, 10_000);
    const line = web.jsonLogs().findLast((l) => l.msg === 'playlist feed disconnected, following the files until it is back');
    assert.match(String(line?.reason), /nothing for 6000 ms/);
  });
});
