/**
 * Replay viewers for ops, end to end: a real broadcast is recorded; a real player (hls.js in
 * Chromium) plays the recording through the proxy; its requests become access records in
 * monitoring, and both GET /api/recordings (through the proxy, ops token) and the /monitor
 * dashboard show that recording as being watched, with one IP and one player session.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { waitForEndedRecording } from '../common/testing/archive.ts';
import { launchChromium } from '../common/testing/browser.ts';
import { REPO_ROOT, sleep, waitFor } from '../common/testing/processes.ts';
import { createStream, publish, startStack, waitForSegments, type Stack } from '../common/testing/stack.ts';

const STREAM = 'briefing';
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

let stack: Stack;
let browser: Browser;

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  stack = await startStack({ webReplicas: 1, proxy: true, monitoring: true, monitoringEnv: { VIEWER_WINDOW_MS: '10000', REFRESH_MS: '500' } });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

interface RecordingRow {
  stream: string;
  session: string;
  viewers: { ips: number; sessions: number };
  lastRequestAt: string;
}

async function recordingsApi(): Promise<RecordingRow[]> {
  const res = await fetch(`${stack.proxyUrl}/api/recordings`, { headers: { authorization: `Bearer ${stack.opsToken}` } });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { windowSeconds: number; recordings: RecordingRow[] };
  assert.equal(body.windowSeconds, 10, 'the default window is the viewer window');
  return body.recordings;
}

test('a replay played in Chromium shows on /api/recordings and on the dashboard', async () => {
  try {
    const key = await createStream(stack, STREAM);
    const publisher = publish(stack.publishUrl(STREAM, key));
    try {
      await waitForSegments(stack, STREAM, 4, 30_000);
      await sleep(2000);
    } finally {
      await publisher.stop();
    }
    const session = await waitForEndedRecording(stack.mediaDir, STREAM);
    assert.deepEqual(await recordingsApi(), [], 'nobody watches yet');
    assert.equal((await fetch(`${stack.proxyUrl}/api/recordings`)).status, 401, 'ops only');

    const player = await browser.newPage();
    await player.goto(`${stack.proxyUrl}/vod/${STREAM}/${session}`);
    await waitFor('the replay to play', async () => player.evaluate(() => (window as unknown as { onairPlayer?: { video?: HTMLVideoElement } }).onairPlayer?.video?.currentTime ?? 0).then((t) => t > 0.5), 30_000, 200);

    const row = await waitFor('the API to list the replay', async () => (await recordingsApi()).find((r) => r.session === session), 15_000, 200);
    assert.equal(row.stream, STREAM);
    assert.deepEqual(row.viewers, { ips: 1, sessions: 1 }, 'one browser on 127.0.0.1: one IP, one CMCD session');

    const dashboard = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    await dashboard.goto(`${stack.proxyUrl}/monitor`);
    await dashboard.fill('#token', stack.opsToken);
    await Promise.all([dashboard.waitForURL(/\/monitor$/), dashboard.click('button[type=submit]')]);
    const cells = await waitFor('the dashboard row of the replay', async () => {
      const texts = await dashboard.locator(`#recordings tr[data-recording="${STREAM}/${session}"] td`).allTextContents();
      return texts.length === 5 ? texts : undefined;
    }, 20_000, 250);
    assert.deepEqual(cells.slice(0, 4), [STREAM, session, '1', '1']);
    await dashboard.screenshot({ path: path.join(ARTIFACTS, 'monitor-recordings.png') });
    console.log(`# replay ${STREAM}/${session} on the dashboard: ${cells.join(' | ')}`);

    // The player closes: after the viewer window the recording is no longer "watched now".
    await player.close();
    await waitFor('the replay to leave the API', async () => !(await recordingsApi()).some((r) => r.session === session), 30_000, 500);
    await waitFor('the dashboard to show nobody', async () => (await dashboard.locator('#recordings tbody').textContent())?.startsWith('nobody watched a recording'), 20_000, 250);
    await dashboard.close();
  } catch (err) {
    (err as Error).message += `\n${stack.diagnostics()}`;
    throw err;
  }
});
