/**
 * Recordings in a real browser, through the proxy: while a broadcast is live, the watch page
 * offers "watch from the start", which plays the growing recording from its beginning (DVR);
 * after the broadcast, /vod/<stream>/<session> plays the whole recording to its end.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { readArchive, waitForEndedRecording } from '../common/testing/archive.ts';
import { REPO_ROOT, sleep, waitFor, type ManagedProcess } from '../common/testing/processes.ts';
import { createStream, publish, startStack, waitForSegments, type Stack } from '../common/testing/stack.ts';
import { launchChromium, recordHlsEvents } from '../common/testing/browser.ts';

const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');
const STREAM = 'all-hands';

let stack: Stack;
let browser: Browser;
let publisher: ManagedProcess | null = null;

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  stack = await startStack({ webReplicas: 2, proxy: true });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await publisher?.stop();
  await stack?.stop();
});

interface PlayerView {
  state: string;
  currentTime: number;
  duration: number;
  latency: number | null;
  fatal: string[];
}

async function playerView(page: Page): Promise<PlayerView> {
  return page.evaluate(() => {
    const w = window as unknown as { onairPlayer?: { state: string; video: HTMLVideoElement; hls?: { latency?: number } }; __fatal?: string[] };
    return {
      state: w.onairPlayer?.state ?? 'missing',
      currentTime: w.onairPlayer?.video?.currentTime ?? 0,
      duration: w.onairPlayer?.video?.duration ?? NaN,
      latency: typeof w.onairPlayer?.hls?.latency === 'number' ? w.onairPlayer.hls.latency : null,
      fatal: w.__fatal ?? [],
    };
  });
}

async function withDiagnostics(page: Page, name: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}-failure.png`) }).catch(() => undefined);
    (err as Error).message += `\n${stack.diagnostics()}`;
    throw err;
  } finally {
    await page.close();
  }
}

test('during the broadcast, "watch from the start" plays the growing recording from its beginning', async () => {
  const key = await createStream(stack, STREAM);
  publisher = publish(stack.publishUrl(STREAM, key), { width: 640, height: 360, fps: 25, videoKbps: 800, clock: true, label: 'onair recording' });
  await waitForSegments(stack, STREAM, 6, 30_000);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await withDiagnostics(page, 'dvr', async () => {
    await page.goto(`${stack.proxyUrl}/watch/${STREAM}`);
    const link = page.locator('#from-start');
    await link.waitFor({ state: 'visible', timeout: 20_000 });
    assert.match((await link.getAttribute('href')) ?? '', new RegExp(`^/vod/${STREAM}/\\d{8}-\\d{6}-[a-z0-9]{6}$`));
    await link.click();
    await page.waitForURL(/\/vod\//);
    await recordHlsEvents(page);
    const playing = await waitFor('the recording to play from its start', async () => {
      const v = await playerView(page);
      return v.state === 'playing' && v.currentTime > 1 ? v : undefined;
    }, 30_000, 200);
    // Started at the beginning, not at the live edge: far behind live.
    assert.ok(playing.currentTime < 5, `started near 0 (currentTime ${playing.currentTime})`);
    assert.ok((playing.latency ?? 0) > 4, `behind live (${playing.latency} s)`);
    assert.equal(await page.locator('#to-live').isVisible(), true, '"back to live" offered');
    assert.deepEqual(playing.fatal, []);
    await page.screenshot({ path: path.join(ARTIFACTS, 'recording-dvr.png') });
    console.log(`# from the start while live: currentTime ${playing.currentTime.toFixed(1)} s, ${playing.latency?.toFixed(1)} s behind live`);
    await page.locator('#to-live').click();
    await page.waitForURL(new RegExp(`/watch/${STREAM}$`));
  });
});

test('after the broadcast, the recording is listed and plays from start to end', async () => {
  await sleep(2000);
  await publisher!.stop(); // OBS "Stop Streaming"
  const session = await waitForEndedRecording(stack.mediaDir, STREAM, { thumbnail: true });
  const { playlist, info } = await readArchive(stack.mediaDir, STREAM, session);

  // The listing and the files, through the proxy.
  const base = stack.proxyUrl!;
  const listing = (await (await fetch(`${base}/vod.json?stream=${STREAM}`)).json()) as { recordings: Array<Record<string, unknown>> };
  assert.equal(listing.recordings.length, 1);
  assert.deepEqual(listing.recordings[0], {
    stream: STREAM, session, started: info.started, ended: info.ended, live: false, durationSeconds: info.durationSeconds, segments: info.segments,
    page: `/vod/${STREAM}/${session}`, playlist: `/archive/${STREAM}/${session}/index.m3u8`, thumbnail: `/archive/${STREAM}/${session}/thumbnail.jpg`,
  });
  const m3u8 = await fetch(`${base}/archive/${STREAM}/${session}/index.m3u8`);
  assert.equal(m3u8.status, 200);
  assert.equal(m3u8.headers.get('content-type'), 'application/vnd.apple.mpegurl');
  assert.equal(m3u8.headers.get('cache-control'), 'public, max-age=3600', 'an ended recording may be cached');
  assert.match(await m3u8.text(), /#EXT-X-ENDLIST/);
  const segment = await fetch(`${base}/archive/${STREAM}/${session}/${playlist.segments[0]!.uri}`);
  assert.equal(segment.status, 200);
  assert.equal(segment.headers.get('content-type'), 'video/iso.segment');
  assert.match(segment.headers.get('cache-control') ?? '', /immutable/);
  const thumb = await fetch(`${base}/archive/${STREAM}/${session}/thumbnail.jpg`);
  assert.equal(thumb.headers.get('content-type'), 'image/jpeg');
  assert.equal((await fetch(`${base}/archive/${STREAM}/${session}/session.json`)).status, 404, 'only media and the thumbnail are served');
  assert.equal((await fetch(`${base}/archive/${STREAM}/${session}/..%2f..%2flive`)).status, 400);
  assert.equal((await fetch(`${base}/vod/${STREAM}/20990101-000000-abcdef`)).status, 404);
  const listPage = await (await fetch(`${base}/vod/${STREAM}`)).text();
  assert.ok(listPage.includes(`href="/vod/${STREAM}/${session}"`));

  // The player page, from the list page, in Chromium.
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await withDiagnostics(page, 'vod', async () => {
    await page.goto(`${base}/vod/${STREAM}`);
    await page.locator(`a[href="/vod/${STREAM}/${session}"]`).click();
    await recordHlsEvents(page);
    const started = await waitFor('playback to start', async () => {
      const v = await playerView(page);
      return v.currentTime > 0.2 ? v : undefined;
    }, 30_000, 200);
    assert.ok(started.currentTime < 3, 'plays from the start');
    let maxTime = 0;
    const ended = await waitFor('the recording to play to its end', async () => {
      const v = await playerView(page);
      maxTime = Math.max(maxTime, v.currentTime);
      return v.state === 'ended' ? v : undefined;
    }, (info.durationSeconds + 30) * 1000, 250);
    await page.screenshot({ path: path.join(ARTIFACTS, 'recording-ended.png') });
    console.log(`# recording ${session}: ${info.durationSeconds} s, ${info.segments} segments; played to currentTime ${ended.currentTime.toFixed(2)} s (video.duration ${ended.duration.toFixed(2)}), state ${ended.state}`);
    assert.deepEqual(ended.fatal, []);
    assert.ok(ended.currentTime > info.durationSeconds - 1.5, `reached the end: ${ended.currentTime} of ${info.durationSeconds} s`);
    assert.equal(await page.locator('#status').textContent(), 'end of the recording');
    assert.equal(await page.locator('#to-live').isVisible(), false, 'no "back to live" for a finished recording');
  });
});
