import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { AccessRecord } from '../../common/src/access-record.ts';
import type { LiveStream } from '../../common/src/live-state.ts';
import { streamDir } from '../../common/src/media-layout.ts';
import { freePort, makeTempDir, startService, waitFor, waitForHttpOk, type ManagedProcess } from '../../common/testing/processes.ts';
import { keepLiveStateFresh, liveStream, writeLiveState } from './fixtures.ts';

/**
 * The real player in headless Chromium against real fMP4 HLS from ffmpeg: waiting → live → ended →
 * live again without a reload. Skipped where Chromium or ffmpeg is not installed.
 */
const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const HAVE_FFMPEG = spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0;
const skip = !CHROMIUM ? 'chromium is not installed' : !HAVE_FFMPEG ? 'ffmpeg is not installed' : false;

interface PlayerView {
  state: string;
  currentTime: number;
  latency: number | null;
  engine: string | null;
  status: string;
  sameDocument: boolean;
}

/** A live fMP4 HLS broadcast of a test pattern, named like ingest names files (`<run>-<n>.m4s`). */
function broadcast(dir: string, run: string, seconds: number): ChildProcess {
  return spawn('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(seconds),
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '25', '-keyint_min', '25', '-sc_threshold', '0', '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-b:a', '64k',
    '-f', 'hls', '-hls_time', '1', '-hls_list_size', '6', '-hls_segment_type', 'fmp4',
    '-hls_fmp4_init_filename', `${run}-init.mp4`, '-hls_segment_filename', path.join(dir, `${run}-%d.m4s`),
    '-hls_flags', 'temp_file+independent_segments',
    path.join(dir, 'index.m3u8'),
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
}

describe('player in a browser', { skip }, () => {
  let media: Awaited<ReturnType<typeof makeTempDir>>;
  let web: ManagedProcess;
  let base: string;
  let browser: Browser;
  let liveNow: LiveStream[] = [];
  let heartbeat: { stop: () => void } | undefined;
  const encoders: ChildProcess[] = [];

  before(async () => {
    media = await makeTempDir('web-player');
    await mkdir(streamDir(media.dir, 'demo'), { recursive: true });
    await writeLiveState(media.dir, liveNow);
    heartbeat = keepLiveStateFresh(media.dir, () => liveNow);
    const port = await freePort();
    web = startService('web', { WEB_PORT: String(port), WEB_HOST: '127.0.0.1', MEDIA_DIR: media.dir, INSTANCE: 'web-player-test' });
    base = `http://127.0.0.1:${port}`;
    await waitForHttpOk(`${base}/readyz`);
    browser = await chromium.launch({ executablePath: CHROMIUM!, args: ['--autoplay-policy=no-user-gesture-required', '--no-sandbox'] });
  });

  afterEach((t) => {
    const context = t as { passed?: boolean; diagnostic?: (message: string) => void };
    if (context.passed === false && web) context.diagnostic?.(web.tail(40));
  });

  after(async () => {
    heartbeat?.stop();
    for (const encoder of encoders) if (encoder.exitCode === null) encoder.kill('SIGKILL');
    await browser?.close();
    await web?.stop();
    await media?.remove();
  });

  const view = (page: Page): Promise<PlayerView> =>
    page.evaluate(() => {
      const p = (window as unknown as { onairPlayer: { state: string; video: HTMLVideoElement; latency: number | null; engine: string | null } }).onairPlayer;
      return {
        state: p.state,
        currentTime: p.video.currentTime,
        latency: p.latency,
        engine: p.engine,
        status: document.getElementById('status')?.textContent ?? '',
        sameDocument: (window as unknown as { sameDocument?: boolean }).sameDocument === true,
      };
    });

  const waitForState = (page: Page, state: string, timeoutMs = 30_000): Promise<PlayerView> =>
    waitFor(`player state "${state}"`, async () => {
      const v = await view(page);
      return v.state === state && v;
    }, timeoutMs, 200);

  const waitForProgress = async (page: Page): Promise<void> => {
    const start = (await view(page)).currentTime;
    await waitFor('playback to advance', async () => (await view(page)).currentTime > start + 1, 15_000, 200);
  };

  it('waits, plays live, notices the end, plays the next broadcast without a reload, notices a crash', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(String(err)));
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(msg.text());
    });
    await page.goto(`${base}/watch/demo`);

    const waiting = await waitForState(page, 'waiting');
    assert.equal(waiting.engine, 'hls.js', 'hls.js preferred over native HLS');
    assert.equal(waiting.status, 'waiting for the broadcast to start');

    const dir = streamDir(media.dir, 'demo');
    const first = broadcast(dir, 'run1', 8);
    encoders.push(first);
    liveNow = [liveStream('demo')];
    await waitForState(page, 'live');
    await waitForProgress(page);
    const live = await waitFor('a latency reading', async () => {
      const v = await view(page);
      return v.latency !== null && v;
    }, 10_000, 200);
    assert.equal(live.status, 'live');
    assert.ok(live.latency! > 0 && live.latency! < 10, `latency ${live.latency}`);

    await once(first, 'exit');
    liveNow = [];
    const ended = await waitForState(page, 'ended');
    assert.equal(ended.status, 'the broadcast has ended');

    await page.evaluate(() => {
      (window as unknown as { sameDocument: boolean }).sameDocument = true;
    });
    const second = broadcast(dir, 'run2', 30);
    encoders.push(second);
    liveNow = [liveStream('demo')];
    const again = await waitForState(page, 'live', 40_000);
    assert.ok(again.sameDocument, 'no page reload');
    await waitForProgress(page);

    // CMCD: every segment request of both broadcasts (two Hls instances) carried the page's one session id.
    const sessionId = await page.evaluate(() => (window as unknown as { onairPlayer: { sessionId: string } }).onairPlayer.sessionId);
    assert.match(sessionId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const segments = await waitFor('access records for segments of both runs', () => {
      const logged = web.jsonLogs().filter((l) => l.msg === 'access').map((l) => l.access as AccessRecord).filter((r) => r.kind === 'segment');
      return logged.some((r) => r.path.includes('/run1-')) && logged.some((r) => r.path.includes('/run2-')) && logged;
    }, 5000);
    assert.deepEqual([...new Set(segments.map((r) => r.session_id))], [sessionId]);
    assert.ok(segments.every((r) => !r.path.includes('?')), 'the record path has no query string');

    // Ingest dies: no ENDLIST is ever written, the stream just leaves the list and playback runs dry.
    second.kill('SIGKILL');
    liveNow = [];
    await waitForState(page, 'ended');
    assert.deepEqual(errors.filter((e) => !/Failed to load resource/.test(e)), []);
    await page.close();
  });

  it('the stream list updates by itself', async () => {
    liveNow = [];
    await writeLiveState(media.dir, liveNow);
    const page = await browser.newPage();
    await waitFor('nothing live', async () => {
      await page.goto(`${base}/`);
      return page.isVisible('#nothing-live');
    }, 15_000, 500);
    liveNow = [liveStream('demo', { video: { codec: 'h264', width: 640, height: 360, fps: 25 } })];
    await page.waitForSelector('#streams a[href="/watch/demo"]', { timeout: 15_000 });
    assert.equal(await page.isVisible('#nothing-live'), false);
    assert.match((await page.textContent('#streams')) ?? '', /640×360/);
    await page.close();
  });
});
