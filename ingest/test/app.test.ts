/**
 * Ingest built in-process (buildIngest): a real ffmpeg publisher over RTMP, the low-latency
 * playlist and its parts on disk, the playlist feed (GET /playlists/feed) pushing every version as
 * it is renamed into place, and close() ending the broadcast (ENDLIST on disk and in the feed).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { parseMediaPlaylist, playlistPosition } from '../../common/src/hls/media-playlist.ts';
import { addStream } from '../../common/src/stream-registry.ts';
import { makeTempDir, waitFor } from '../../common/testing/processes.ts';
import { publish } from '../../common/testing/stack.ts';
import { buildIngest } from '../src/app.ts';
import { loadIngestConfig } from '../src/config.ts';

interface FeedLine {
  type: string;
  file?: string;
  text?: string;
  at?: string;
}

/** Reads the feed's NDJSON lines as they come. */
function readFeed(url: string): { lines: FeedLine[]; close: () => void; contentType: Promise<string> } {
  const lines: FeedLine[] = [];
  let resolveType!: (t: string) => void;
  const contentType = new Promise<string>((r) => (resolveType = r));
  const req = http.get(url, (res) => {
    resolveType(String(res.headers['content-type']));
    let rest = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop()!;
      for (const line of parts) if (line) lines.push(JSON.parse(line) as FeedLine);
    });
  });
  req.on('error', () => undefined);
  return { lines, close: () => req.destroy(), contentType };
}

test('built in-process: parts on disk, every playlist version pushed on the feed, close() ends the broadcast', { timeout: 60_000 }, async (t) => {
  const temp = await makeTempDir('ingest-app');
  t.after(temp.remove);
  const mediaDir = path.join(temp.dir, 'media');
  const dataDir = path.join(temp.dir, 'data');
  const config = loadIngestConfig({ MEDIA_DIR: mediaDir, DATA_DIR: dataDir, RTMP_HOST: '127.0.0.1', RTMP_PORT: '0', CONTROL_HOST: '127.0.0.1', CONTROL_PORT: '0', ARCHIVE: 'false', LOG_LEVEL: 'silent' });
  const app = buildIngest(config, pino({ level: 'silent' }));
  const { rtmpPort, controlPort } = await app.start();
  t.after(() => app.close());
  const key = await addStream(dataDir, 'inproc');
  const feed = readFeed(`http://127.0.0.1:${controlPort}/playlists/feed`);
  t.after(feed.close);
  assert.equal(await feed.contentType, 'application/x-ndjson');
  const publisher = publish(`rtmp://127.0.0.1:${rtmpPort}/live/inproc?key=${key}`, { fps: 30, keyframeSeconds: 1 });
  t.after(() => publisher.stop());

  const file = path.join(mediaDir, 'live', 'inproc', 'index.m3u8');
  const versions = () => feed.lines.filter((l) => l.type === 'playlist' && l.file === 'live/inproc/index.m3u8');
  await waitFor('two complete segments in the feed', () => versions().some((l) => parseMediaPlaylist(l.text!).segments.length >= 2), 30_000, 50);
  // Every version the feed sent lists only parts that exist, and the feed's order is the playlist's order.
  let previous = { lastMsn: -Infinity, openParts: 0 };
  for (const line of versions()) {
    const parsed = parseMediaPlaylist(line.text!);
    const position = playlistPosition(parsed);
    assert.ok(position.lastMsn > previous.lastMsn || (position.lastMsn === previous.lastMsn && position.openParts > previous.openParts), 'each version is ahead of the one before');
    previous = position;
    for (const part of [...parsed.segments.flatMap((s) => s.parts), ...parsed.openParts]) assert.ok(existsSync(path.join(mediaDir, 'live', 'inproc', part.uri)), `${part.uri} is on disk`);
  }
  assert.ok(versions().length >= 8, `a version per part (${versions().length})`);
  const onDisk = await readFile(file, 'utf8');
  assert.ok(versions().some((l) => l.text === onDisk), 'the file on disk is one of the versions sent');
  const status = app.broadcasts.status()[0]!;
  assert.equal(status.lowLatency, true);
  assert.equal(status.playlist?.partTarget, 0.336);

  // A second reader gets the current version at once.
  const late = readFeed(`http://127.0.0.1:${controlPort}/playlists/feed`);
  t.after(late.close);
  await waitFor('the current version for a new reader', () => late.lines.some((l) => l.file === 'live/inproc/index.m3u8'), 5_000, 20);

  await app.close();
  const ended = parseMediaPlaylist(await readFile(file, 'utf8'));
  assert.ok(ended.ended, 'ENDLIST written by close()');
  assert.ok(versions().at(-1)!.text!.includes('#EXT-X-ENDLIST'), 'and pushed on the feed');
});
