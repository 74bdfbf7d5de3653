/**
 * Glass-to-glass latency in headless Chromium with the player's settings, through the proxy.
 * Three readings once playback has settled:
 *  - hls.js's own estimate (hls.latency: live edge − playhead);
 *  - wall clock − hls.playingDate: the playing frame's EXT-X-PROGRAM-DATE-TIME (stamped when its
 *    keyframe reached ingest) versus now, i.e. ingest arrival → display;
 *  - screenshots of the test pattern, whose overlay prints the millisecond of the day at which
 *    ffmpeg generated the frame, saved with the wall clock at capture: capture − overlay is the
 *    true glass-to-glass figure (read the PNGs in test-artifacts/).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { REPO_ROOT, sleep, waitFor } from '../common/testing/processes.ts';
import { createStream, publish, startStack } from '../common/testing/stack.ts';

function msOfDay(d: Date): number {
  return ((d.getHours() * 60 + d.getMinutes()) * 60 + d.getSeconds()) * 1000 + d.getMilliseconds();
}

export async function benchLatency(): Promise<Record<string, number>> {
  const artifacts = path.join(REPO_ROOT, 'test-artifacts');
  await mkdir(artifacts, { recursive: true });
  const stack = await startStack({ webReplicas: 3, proxy: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--autoplay-policy=no-user-gesture-required'],
  });
  const key = await createStream(stack, 'latency');
  const publisher = publish(stack.publishUrl('latency', key), { width: 1280, height: 720, fps: 30, videoKbps: 2500, keyframeSeconds: 1, clock: true, label: 'latency' });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${stack.proxyUrl}/watch/latency`);
    await waitFor('playback', () => page.evaluate(() => ((window as any).onairPlayer?.video?.currentTime ?? 0) > 1), 40_000, 200);
    await sleep(15_000); // let the catch-up settle
    const samples: Array<{ hlsLatency: number; pdtLatency: number }> = [];
    for (let i = 0; i < 10; i++) {
      samples.push(
        await page.evaluate(() => {
          const hls = (window as any).onairPlayer.hls;
          return { hlsLatency: hls.latency as number, pdtLatency: (Date.now() - (hls.playingDate as Date).getTime()) / 1000 };
        }),
      );
      await sleep(500);
    }
    const captures: Array<{ file: string; beforeMsOfDay: number; afterMsOfDay: number }> = [];
    for (let i = 0; i < 3; i++) {
      const file = path.join(artifacts, `latency-${i}.png`);
      const before = msOfDay(new Date());
      const buffer = await page.screenshot({ clip: { x: 0, y: 0, width: 900, height: 260 } });
      captures.push({ file, beforeMsOfDay: before, afterMsOfDay: msOfDay(new Date()) });
      await writeFile(file, buffer);
      await sleep(1000);
    }
    await writeFile(path.join(artifacts, 'latency-captures.json'), JSON.stringify(captures, null, 2));
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    return {
      hlsJsLatencySeconds: mean(samples.map((s) => s.hlsLatency)),
      ingestToDisplaySeconds: mean(samples.map((s) => s.pdtLatency)),
      screenshots: captures.length,
    };
  } finally {
    await browser.close();
    await publisher.stop();
    await stack.stop();
  }
}
