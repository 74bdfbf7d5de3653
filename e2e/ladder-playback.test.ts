/**
 * A quality ladder in a real browser: headless Chromium opens /watch/<stream> through the proxy,
 * hls.js gets a master playlist with three levels, the page's quality selector lists them, and a
 * forced level switch (the selector, then hls.currentLevel) lands on the new rendition:
 * LEVEL_SWITCHED for it, video.videoHeight its height, playback still advancing.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { addStream } from '../common/src/stream-registry.ts';
import { launchChromium, recordHlsEvents } from '../common/testing/browser.ts';
import { REPO_ROOT, waitFor, type ManagedProcess } from '../common/testing/processes.ts';
import { publish, startStack, type Stack } from '../common/testing/stack.ts';

const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

let stack: Stack;
let browser: Browser;
let publisher: ManagedProcess | null = null;

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  stack = await startStack({ webReplicas: 1, proxy: true, monitoring: true, ingestEnv: { LADDER_PRESET: 'ultrafast' } });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await publisher?.stop();
  await stack?.stop();
});

interface View {
  state: string;
  currentTime: number;
  videoHeight: number;
  levels: number[];
  currentLevel: number;
  switched: number[];
  fatal: string[];
  selector: { hidden: boolean; options: string[] } | null;
}

function view(page: Page): Promise<View> {
  return page.evaluate(() => {
    type Hls = { levels: Array<{ height: number }>; currentLevel: number };
    const w = window as unknown as { onairPlayer?: { state: string; video: HTMLVideoElement; hls: Hls | null }; __switched?: number[]; __fatal?: string[] };
    const p = w.onairPlayer;
    const box = document.getElementById('quality-box');
    const select = document.getElementById('quality') as HTMLSelectElement | null;
    return {
      state: p?.state ?? 'missing',
      currentTime: p?.video.currentTime ?? 0,
      videoHeight: p?.video.videoHeight ?? 0,
      levels: p?.hls?.levels.map((l) => l.height) ?? [],
      currentLevel: p?.hls?.currentLevel ?? -2,
      switched: w.__switched ?? [],
      fatal: w.__fatal ?? [],
      selector: box && select ? { hidden: box.hidden, options: Array.from({ length: select.options.length }, (_, i) => select.options.item(i)?.textContent ?? '') } : null,
    };
  });
}

/** Waits until the player shows level `level` (by LEVEL_SWITCHED and the decoded picture) and keeps playing. */
async function expectLevel(page: Page, level: number, height: number): Promise<void> {
  await waitFor(`LEVEL_SWITCHED to level ${level} and a ${height}-line picture`, async () => {
    const v = await view(page);
    return v.switched.includes(level) && v.videoHeight === height ? v : undefined;
  }, 30_000, 200);
  const before = (await view(page)).currentTime;
  await waitFor(`playback to advance 2 s at level ${level}`, async () => {
    const v = await view(page);
    return v.currentTime > before + 2 && v.videoHeight === height ? v : undefined;
  }, 20_000, 200);
}

test('the master playlist plays in Chromium, and a forced level switch lands on the new rendition', async () => {
  const key = await addStream(stack.dataDir, 'ladder-e2e', new Date(), { ladder: '240p,144p' });
  publisher = publish(stack.publishUrl('ladder-e2e', key), { width: 640, height: 360, fps: 15, videoKbps: 600, clock: true, label: 'ladder' });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    await page.goto(`${stack.proxyUrl}/watch/ladder-e2e`);
    await recordHlsEvents(page);
    const playing = await waitFor('the ladder to play', async () => {
      const v = await view(page);
      return v.state === 'live' && v.currentTime > 1 && v.levels.length === 3 ? v : undefined;
    }, 60_000, 250);
    assert.deepEqual([...playing.levels].sort((a, b) => b - a), [360, 240, 144]);
    assert.equal(await page.evaluate(() => (window as unknown as { onairPlayer: { lowLatency: boolean; hls: { config: { lowLatencyMode: boolean } } } }).onairPlayer.hls.config.lowLatencyMode), true, 'hls.js in low-latency mode');
    // Low latency: every rendition lists the same parts (numbers and count) at the same media
    // sequence, and reports the other two. Fetched one after the other, they can be a part apart,
    // so look until one fetch of the three catches them in the same state.
    const partsOf = (text: string) => text.split('\n').filter((l) => l.startsWith('#EXT-X-PART:')).map((l) => /URI="[a-z0-9]+-(p\d+)\.m4s"/.exec(l)![1]);
    const aligned = await waitFor('the renditions\' parts to line up', async () => {
      const texts = await Promise.all(['source', '240p', '144p'].map(async (r) => (await fetch(`${stack.proxyUrl}/live/ladder-e2e/${r}/index.m3u8`)).text()));
      const states = texts.map((t) => JSON.stringify({ sequence: /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(t)?.[1], parts: partsOf(t) }));
      return states.every((x) => x === states[0]) ? texts : undefined;
    }, 20_000, 50);
    assert.ok(partsOf(aligned[0]!).length >= 3, 'the renditions list parts');
    assert.ok(aligned.every((t) => (t.match(/#EXT-X-RENDITION-REPORT:/g) ?? []).length === 2), 'each rendition reports the other two');
    assert.ok(playing.selector && !playing.selector.hidden, 'the quality selector is shown with several levels');
    assert.deepEqual(playing.selector.options.slice(1), ['360p (source)', '240p', '144p']);
    assert.match(playing.selector.options[0]!, /^Auto/);

    // 1) Through the page's selector: pick the lowest rendition.
    const lowest = playing.levels.indexOf(144);
    await page.selectOption('#quality', String(lowest));
    await expectLevel(page, lowest, 144);

    // 2) Forced on hls.js itself: the highest other level than the current one.
    const target = playing.levels.indexOf(360);
    await page.evaluate((level) => {
      (window as unknown as { onairPlayer: { hls: { currentLevel: number } } }).onairPlayer.hls.currentLevel = level;
    }, target);
    await expectLevel(page, target, 360);
    const after = await view(page);
    assert.equal(after.currentLevel, target);
    assert.match(after.selector!.options[0]!, /^Auto/);
    assert.deepEqual(after.fatal, [], 'no fatal hls.js error');
    await page.screenshot({ path: path.join(ARTIFACTS, 'ladder-playback.png') });

    // Rendition files through the proxy: right types and caching.
    const media = await fetch(`${stack.proxyUrl}/live/ladder-e2e/240p/index.m3u8`);
    assert.equal(media.status, 200);
    assert.equal(media.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    assert.doesNotMatch(media.headers.get('cache-control') ?? '', /immutable|max-age=[1-9]/);
    const text = await media.text();
    const segment = text.split('\n').filter((l) => l && !l.startsWith('#')).at(-1)!;
    const seg = await fetch(`${stack.proxyUrl}/live/ladder-e2e/240p/${segment}`);
    assert.equal(seg.status, 200);
    assert.equal(seg.headers.get('content-type'), 'video/iso.segment');
    assert.equal(seg.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal((await fetch(`${stack.proxyUrl}/live/ladder-e2e/999x/index.m3u8`)).status, 404);

    // Ops see the ladder and what it costs on the stream's dashboard card (monitoring asks ingest).
    const dashboard = await browser.newPage({ viewport: { width: 1366, height: 820 } });
    try {
      await dashboard.goto(`${stack.proxyUrl}/monitor`);
      await dashboard.fill('#token', stack.opsToken);
      await Promise.all([dashboard.waitForURL(/\/monitor$/), dashboard.click('button[type=submit]')]);
      const card = await waitFor('the ladder and ffmpeg CPU on the stream card', async () => {
        const text = await dashboard.textContent('[data-stream="ladder-e2e"] [data-field="transcode"]').catch(() => null);
        return text && /ffmpeg \d+\.\d\d cores/.test(text) ? text : undefined;
      }, 20_000, 250);
      console.log(`dashboard card: ${card}`);
      assert.match(card, /^ladder source · 240p · 144p · ffmpeg (\d+\.\d\d) cores/);
      assert.ok(Number(/ffmpeg (\d+\.\d\d) cores/.exec(card)![1]) > 0, 'transcoding costs CPU');
      await dashboard.screenshot({ path: path.join(ARTIFACTS, 'ladder-dashboard.png') });
    } finally {
      await dashboard.close();
    }
  } catch (err) {
    await page.screenshot({ path: path.join(ARTIFACTS, 'ladder-playback-failed.png') }).catch(() => undefined);
    (err as Error).message += `\n${JSON.stringify(await view(page).catch(() => null))}\n${stack.diagnostics()}`;
    throw err;
  } finally {
    await page.close();
  }
});
