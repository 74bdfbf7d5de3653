/**
 * A viewer in a real browser: headless Chromium opens /watch/<stream> through the proxy and the
 * video plays (currentTime advances ≥ 5 s, no fatal hls.js error); the page says when the
 * broadcast ends and picks it up again without a reload.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { REPO_ROOT, waitFor, type ManagedProcess } from '../common/testing/processes.ts';
import { createStream, publish, startStack, type Stack } from '../common/testing/stack.ts';
import { launchChromium, recordHlsEvents } from '../common/testing/browser.ts';

const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

let stack: Stack;
let browser: Browser;
let key: string;
const publishers: ManagedProcess[] = [];

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  stack = await startStack({ webReplicas: 3, proxy: true });
  key = await createStream(stack, 'town-hall');
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  for (const p of publishers) await p.stop();
  await stack?.stop();
});

interface PlayerView {
  state: string;
  currentTime: number;
  latency: number | null;
  fatal: string[];
  marker: unknown;
}

async function playerView(page: Page): Promise<PlayerView> {
  return page.evaluate(() => {
    const w = window as unknown as { onairPlayer?: { state: string; video: HTMLVideoElement; hls?: { latency?: number } }; __fatal?: string[]; __marker?: unknown };
    return {
      state: w.onairPlayer?.state ?? 'missing',
      currentTime: w.onairPlayer?.video?.currentTime ?? 0,
      latency: typeof w.onairPlayer?.hls?.latency === 'number' ? w.onairPlayer.hls.latency : null,
      fatal: w.__fatal ?? [],
      marker: w.__marker,
    };
  });
}

test('video plays in Chromium through the proxy, ends, and resumes without a reload', async () => {
  const first = publish(stack.publishUrl('town-hall', key), { width: 640, height: 360, fps: 25, videoKbps: 800, clock: true, label: 'onair e2e' });
  publishers.push(first);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const consoleErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  try {
    await page.goto(`${stack.proxyUrl}/watch/town-hall`);
    await recordHlsEvents(page);
    await page.evaluate(() => {
      (window as unknown as { __marker: number }).__marker = 42; // gone if the page reloads
    });
    const start = await waitFor('playback to start', async () => {
      const v = await playerView(page);
      return v.currentTime > 0.2 ? v : undefined;
    }, 30_000, 200);
    const playing = await waitFor('currentTime to advance by 5 s', async () => {
      const v = await playerView(page);
      return v.currentTime >= start.currentTime + 5 ? v : undefined;
    }, 30_000, 250);
    assert.equal(playing.state, 'live');
    assert.deepEqual(playing.fatal, [], 'no fatal hls.js error');
    await page.screenshot({ path: path.join(ARTIFACTS, 'playback.png') });
    console.log(`# playing: currentTime ${playing.currentTime.toFixed(1)} s, hls.js latency ${playing.latency?.toFixed(2)} s`);

    await first.stop(); // OBS "Stop Streaming": a clean end
    await waitFor('the page to say the broadcast ended', async () => (await playerView(page)).state === 'ended', 30_000, 250);
    await page.screenshot({ path: path.join(ARTIFACTS, 'ended.png') });

    const second = publish(stack.publishUrl('town-hall', key), { width: 640, height: 360, fps: 25, videoKbps: 800, clock: true, label: 'onair e2e again' });
    publishers.push(second);
    const resumed = await waitFor('playback to resume', async () => {
      const v = await playerView(page);
      return v.state === 'live' && v.currentTime > 1 ? v : undefined;
    }, 40_000, 250);
    assert.equal(resumed.marker, 42, 'same page: no reload');
    assert.deepEqual(resumed.fatal, []);
    await page.screenshot({ path: path.join(ARTIFACTS, 'resumed.png') });
  } catch (err) {
    await page.screenshot({ path: path.join(ARTIFACTS, 'playback-failure.png') }).catch(() => undefined);
    (err as Error).message += `\nbrowser console errors: ${consoleErrors.join('\n')}\n${stack.diagnostics()}`;
    throw err;
  } finally {
    await page.close();
  }
});

test('a publisher that drops and reconnects: the same player keeps playing across the discontinuity', async () => {
  const streamKey = await createStream(stack, 'field-report');
  const options = { width: 640, height: 360, fps: 25, videoKbps: 800, clock: true, label: 'reconnect' } as const;
  const first = publish(stack.publishUrl('field-report', streamKey), options);
  publishers.push(first);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    await page.goto(`${stack.proxyUrl}/watch/field-report`);
    await waitFor('playback to start', async () => (await playerView(page)).currentTime > 2, 30_000, 200);
    await page.evaluate(() => {
      const w = window as unknown as { __hlsAtStart: unknown; __fatal: string[]; onairPlayer: { hls: { on: (e: string, f: (ev: string, d: { fatal: boolean; details: string }) => void) => void } } };
      w.__hlsAtStart = w.onairPlayer.hls;
      w.__fatal = [];
      w.onairPlayer.hls.on('hlsError', (_e, data) => {
        if (data.fatal) w.__fatal.push(data.details);
      });
    });
    first.kill('SIGKILL'); // the connection drops: no deleteStream, OBS would reconnect
    await first.exited;
    const droppedAt = (await playerView(page)).currentTime;
    const second = publish(stack.publishUrl('field-report', streamKey), options);
    publishers.push(second);
    const after = await waitFor('playback past the join', async () => {
      const v = await playerView(page);
      return v.currentTime > droppedAt + 6 ? v : undefined;
    }, 40_000, 250);
    const sameInstance = await page.evaluate(() => {
      const w = window as unknown as { __hlsAtStart: unknown; onairPlayer: { hls: unknown } };
      return w.__hlsAtStart === w.onairPlayer.hls;
    });
    assert.ok(sameInstance, 'the player did not need a new hls.js instance');
    assert.deepEqual(after.fatal, [], 'no fatal hls.js error across the discontinuity');
    assert.equal(after.state, 'live');
    const playlist = await stack.readPlaylist('field-report');
    assert.ok(playlist.includes('#EXT-X-DISCONTINUITY') || /#EXT-X-DISCONTINUITY-SEQUENCE:[1-9]/.test(playlist));
    await page.screenshot({ path: path.join(ARTIFACTS, 'reconnected.png') });
  } catch (err) {
    await page.screenshot({ path: path.join(ARTIFACTS, 'reconnect-failure.png') }).catch(() => undefined);
    (err as Error).message += `\n${stack.diagnostics()}`;
    throw err;
  } finally {
    await page.close();
  }
});
