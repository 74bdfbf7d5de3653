/**
 * Playback tokens in a real browser: a link minted with a short lifetime plays through the proxy
 * (page → cookie → playlists and segments), and when the token expires the proxy refuses the
 * playlist reloads and the page says "access denied" instead of retrying forever.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { signPlaybackToken } from '../common/src/playback-token.ts';
import { waitFor, type ManagedProcess } from '../common/testing/processes.ts';
import { createStream, publish, startStack, waitForSegments, type Stack } from '../common/testing/stack.ts';
import { launchChromium } from '../common/testing/browser.ts';

const SECRET = 'e2e-playback-secret-0123456789abcdef';
const TTL_S = 20; // room to start playing on a busy machine before it expires

let stack: Stack;
let browser: Browser;
let publisher: ManagedProcess;

before(async () => {
  stack = await startStack({ webReplicas: 1, proxy: true, proxyEnv: { PLAYBACK_TOKEN_SECRET: SECRET } });
  const key = await createStream(stack, 'briefing');
  publisher = publish(stack.publishUrl('briefing', key));
  await waitForSegments(stack, 'briefing', 3);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await publisher?.stop();
  await stack?.stop();
});

test('a playback link plays until its token expires, then the page says access denied', async () => {
  assert.equal((await fetch(`${stack.proxyUrl}/live/briefing/index.m3u8`)).status, 403, 'no token, no playlist');
  const token = signPlaybackToken(SECRET, 'briefing', Math.floor(Date.now() / 1000) + TTL_S);
  const page = await browser.newPage();
  try {
    await page.goto(`${stack.proxyUrl}/watch/briefing?token=${encodeURIComponent(token)}`);
    const state = (): Promise<{ state: string; time: number }> =>
      page.evaluate(() => {
        const p = (window as unknown as { onairPlayer: { state: string; video: HTMLVideoElement } }).onairPlayer;
        return { state: p.state, time: p.video.currentTime };
      });
    const playing = await waitFor('playing with the token', async () => {
      const s = await state();
      return s.state === 'live' && s.time > 1 && s;
    }, 40_000, 250);
    const startedAt = Date.now();
    const denied = await waitFor('the page to say access denied after the token expired', async () => {
      const s = await state();
      return s.state === 'denied' && s;
    }, (TTL_S + 20) * 1000, 250);
    const label = await page.textContent('#status');
    assert.match(label ?? '', /access denied/);
    console.log(`played ${playing.time.toFixed(1)} s with the token; "denied" shown ${((Date.now() - startedAt) / 1000).toFixed(1)} s later at ${denied.time.toFixed(1)} s of media`);
    const refusals = stack.proxy!.jsonLogs().filter((l) => l.msg === 'access' && (l.access as { refusal: string | null }).refusal !== null);
    assert.ok(refusals.some((l) => ['token-missing', 'token-expired'].includes((l.access as { refusal: string }).refusal)), 'the refused reloads are recorded with the reason');
  } finally {
    await page.close();
  }
});
