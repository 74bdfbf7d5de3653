import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import type { Logger } from '../../common/src/logger.ts';
import { waitFor } from '../../common/testing/processes.ts';
import { PlaylistFeedClient, type PlaylistFeedOptions } from '../src/playlist-feed.ts';

/** The feed reader against an in-process server: line framing, refusals, backoff and its log lines. */

function recordingLogger(): { logger: Logger; lines: Array<{ level: string; msg: string; reason?: unknown }> } {
  const lines: Array<{ level: string; msg: string; reason?: unknown }> = [];
  const at = (level: string) => (fields: object, msg: string) => lines.push({ level, msg, ...(fields as { reason?: unknown }) });
  return { logger: { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') } as unknown as Logger, lines };
}

async function feedServer(handle: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server = createServer((req, res) => handle(req, res, ++n));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/playlists/feed`,
    connections: () => n,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

const FAST: PlaylistFeedOptions = { deadAfterMs: 1_000, firstRetryMs: 20, maxRetryMs: 100, maxLineChars: 1_000 };

describe('PlaylistFeedClient', () => {
  it('reassembles lines split anywhere, multi-byte characters included', async () => {
    const line = `${JSON.stringify({ type: 'playlist', file: 'live/a/index.m3u8', text: '#EXTM3U\n# é ✓ 🎥\n' })}\n`;
    const bytes = Buffer.from(line + line, 'utf8');
    const server = await feedServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      // One byte at a time: every possible split, inside JSON and inside UTF-8 sequences.
      let i = 0;
      const timer = setInterval(() => {
        if (i >= bytes.length) return clearInterval(timer);
        res.write(bytes.subarray(i, i + 1));
        i++;
      }, 0);
    });
    const versions: Array<[string, string]> = [];
    const { logger } = recordingLogger();
    const client = new PlaylistFeedClient(server.url, { version: (f, t) => versions.push([f, t]), connected: () => {}, disconnected: () => {} }, logger, FAST);
    try {
      client.start();
      await waitFor('two versions', () => versions.length === 2, 5_000, 10);
      assert.deepEqual(versions[0], ['live/a/index.m3u8', '#EXTM3U\n# é ✓ 🎥\n']);
      assert.deepEqual(versions[1], versions[0]);
    } finally {
      client.stop();
      await server.close();
    }
  });

  it('skips what is not a playlist line, drops a connection with an over-long line, logs once per change', async () => {
    const server = await feedServer((_req, res, n) => {
      res.writeHead(200);
      res.write('not json\n[1,2]\n{"type":"playlist","file":7,"text":"x"}\n{"type":"heartbeat","at":"now"}\n\n');
      res.write(`${JSON.stringify({ type: 'playlist', file: `live/n${n}/index.m3u8`, text: '#EXTM3U\n' })}\n`);
      if (n === 1) res.write('x'.repeat(2_000)); // no newline, longer than maxLineChars
    });
    const versions: string[] = [];
    let ups = 0;
    let downs = 0;
    const { logger, lines } = recordingLogger();
    const client = new PlaylistFeedClient(server.url, { version: (f) => versions.push(f), connected: () => ups++, disconnected: () => downs++ }, logger, FAST);
    try {
      client.start();
      await waitFor('reconnected after the long line', () => versions.length === 2, 5_000, 10);
      assert.deepEqual(versions, ['live/n1/index.m3u8', 'live/n2/index.m3u8']);
      assert.equal(ups, 2);
      assert.equal(downs, 1);
      assert.equal(client.connected, true);
      const warned = lines.filter((l) => l.level === 'warn');
      assert.equal(warned.length, 1);
      assert.equal(warned[0]!.reason, 'line too long');
    } finally {
      client.stop();
      await server.close();
    }
  });

  it('retries an unreachable or refusing feed with a capped backoff, logging it once', async () => {
    const server = await feedServer((_req, res) => {
      res.writeHead(503);
      res.end('not yet\n');
    });
    const { logger, lines } = recordingLogger();
    let ups = 0;
    const client = new PlaylistFeedClient(server.url, { version: () => {}, connected: () => ups++, disconnected: () => {} }, logger, FAST);
    try {
      const startedAt = performance.now();
      client.start();
      await waitFor('several attempts', () => server.connections() >= 6, 5_000, 10);
      const elapsed = performance.now() - startedAt;
      // 20, 40, 80, 100, 100 ms (± 25 %): the fifth retry comes after ≥ 0.25 s, not at once.
      assert.ok(elapsed >= 200, `backed off (${elapsed.toFixed(0)} ms for 6 attempts)`);
      assert.equal(ups, 0);
      assert.equal(client.connected, false);
      assert.deepEqual(lines.filter((l) => l.level === 'warn').map((l) => [l.msg, l.reason]), [['playlist feed unreachable, following the files until it connects', 'HTTP 503']]);
    } finally {
      client.stop();
      await server.close();
    }
  });
});
