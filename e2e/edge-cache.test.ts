/**
 * The proxy's segment cache against the real tiers (ingest writing real fMP4 segments, web
 * replicas, proxy): a crowd asking for one segment costs one request to the web tier; every viewer
 * gets the same bytes as the file on disk; each viewer request still has its own access record.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { AccessRecord } from '../common/src/access-record.ts';
import { waitFor } from '../common/testing/processes.ts';
import type { ManagedProcess } from '../common/testing/processes.ts';
import { createStream, publish, startStack, waitForSegments, type Stack } from '../common/testing/stack.ts';

describe('segment cache at the proxy', () => {
  let stack: Stack;
  let publisher: ManagedProcess;
  before(async () => {
    stack = await startStack({ webReplicas: 2, proxy: true });
    const key = await createStream(stack, 'crowd');
    publisher = publish(stack.publishUrl('crowd', key));
    await waitForSegments(stack, 'crowd', 2);
  });
  after(async () => {
    await publisher?.stop();
    await stack?.stop();
  });

  const webRecords = (segmentPath: string): AccessRecord[] =>
    stack.webs.flatMap((w) => w.process.jsonLogs()).filter((l) => l.msg === 'access').map((l) => l.access as AccessRecord).filter((r) => r.path === segmentPath);
  const proxyRecords = (segmentPath: string): AccessRecord[] =>
    stack.proxy!.jsonLogs().filter((l) => l.msg === 'access').map((l) => l.access as AccessRecord).filter((r) => r.path === segmentPath);

  test('50 viewers asking for one new segment at once: one request to the web tier, 50 identical answers, 50 records', async () => {
    const name = (await waitForSegments(stack, 'crowd', 3)).segments.at(-1)!;
    const segmentPath = `/live/crowd/${name}`;
    const onDisk = await readFile(path.join(stack.mediaDir, 'live', 'crowd', name));
    const answers = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const res = await fetch(`${stack.proxyUrl}${segmentPath}?CMCD=${encodeURIComponent(`sid="viewer-${i}"`)}`);
        return { status: res.status, cache: res.headers.get('x-cache'), type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
      }),
    );
    assert.ok(answers.every((a) => a.status === 200 && a.body.equals(onDisk) && a.type === 'video/iso.segment'), 'the bytes on disk, for everyone');
    assert.equal(answers.filter((a) => a.cache === 'MISS').length, 1, 'one request filled the cache');
    const records = await waitFor('50 proxy records', () => {
      const found = proxyRecords(segmentPath);
      return found.length === 50 && found;
    });
    assert.equal(records.filter((r) => r.backend !== 'cache').length, 1, 'one record names the web replica that was asked');
    assert.equal(new Set(records.map((r) => r.session_id)).size, 50, 'each viewer keeps its own record and session');
    await waitFor('the web tier answered', () => webRecords(segmentPath).length === 1);
    assert.equal(webRecords(segmentPath).length, 1, 'the web tier saw one request');
    const hits = await (await fetch(`${stack.proxyUrl}/metrics`)).text();
    assert.match(hits, /onair_proxy_segment_cache_requests_total\{[^}]*outcome="fill"[^}]*\} [1-9]/);
  });

  test('50 viewers reloading the playlist at once: one request to the web tier, the current playlist for all', async () => {
    const playlistPath = '/live/crowd/index.m3u8';
    const before = webRecords(playlistPath).length;
    await new Promise((resolve) => setTimeout(resolve, 150)); // whatever the proxy held has expired
    const answers = await Promise.all(Array.from({ length: 50 }, async () => {
      const res = await fetch(`${stack.proxyUrl}${playlistPath}`);
      return { status: res.status, type: res.headers.get('content-type'), cache: res.headers.get('x-cache'), text: await res.text() };
    }));
    assert.ok(answers.every((a) => a.status === 200 && a.type === 'application/vnd.apple.mpegurl' && a.text === answers[0]!.text));
    assert.equal(answers.filter((a) => a.cache === 'MISS').length, 1);
    await waitFor('the web tier answered', () => webRecords(playlistPath).length > before);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(webRecords(playlistPath).length - before, 1, 'one playlist request reached the web tier');
    // Held for 100 ms only: a later reload sees the next segment.
    const first = answers[0]!.text;
    const next = await waitFor('the playlist to advance through the proxy', async () => {
      const text = await (await fetch(`${stack.proxyUrl}${playlistPath}`)).text();
      return text !== first && text;
    }, 10_000, 100);
    assert.ok(next.includes('#EXTINF'));
  });

  test('HEAD, If-None-Match and Range are answered correctly', async () => {
    const name = (await waitForSegments(stack, 'crowd', 3)).segments.at(-1)!;
    const url = `${stack.proxyUrl}/live/crowd/${name}`;
    const full = await fetch(url);
    const body = Buffer.from(await full.arrayBuffer());
    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(body.length));
    assert.equal(head.headers.get('x-cache'), 'HIT');
    const etag = full.headers.get('etag');
    if (etag) assert.equal((await fetch(url, { headers: { 'if-none-match': etag } })).status, 304);
    const range = await fetch(url, { headers: { range: 'bytes=0-99' } });
    assert.equal(range.status, 206, 'a range goes to the web tier, which answers it');
    assert.deepEqual(Buffer.from(await range.arrayBuffer()), body.subarray(0, 100));
  });
});
