import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's Chromium (or CHROMIUM_PATH), headless with the flags our machines need. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--autoplay-policy=no-user-gesture-required'],
  });
}

/**
 * Records in the page what the player's hls.js reports: fatal errors (`window.__fatal`, their
 * details) and level switches (`window.__switched`, level indexes). Follows whichever Hls instance
 * the player uses (it makes a new one when a stream comes back).
 */
export async function recordHlsEvents(page: Page): Promise<void> {
  await page.evaluate(() => {
    type HlsEvents = { on: (event: string, listener: (event: string, data: { fatal?: boolean; details?: string; level?: number }) => void) => void };
    const w = window as unknown as { __fatal: string[]; __switched: number[]; __hooked?: unknown; onairPlayer?: { hls?: HlsEvents | null } };
    w.__fatal = [];
    w.__switched = [];
    setInterval(() => {
      const hls = w.onairPlayer?.hls;
      if (!hls || w.__hooked === hls) return;
      w.__hooked = hls;
      hls.on('hlsLevelSwitched', (_e, data) => w.__switched.push(data.level!));
      hls.on('hlsError', (_e, data) => {
        if (data.fatal) w.__fatal.push(data.details!);
      });
    }, 50);
  });
}

export interface PlaybackMonitorReading {
  /** Wall clock (epoch ms) of the first `playing` event, null before playback started. */
  firstPlayingWall: number | null;
  /** `waiting` events after playback started (since the last reset). */
  waiting: number;
  /** Time spent waiting (from a `waiting` event to the next `playing`), ms, including a stall still under way. */
  stallMs: number;
  stalledNow: boolean;
  /** hls.js BUFFER_STALLED_ERROR reports (since the last reset). */
  bufferStalledErrors: number;
  /** hls.js fatal errors (details), since the last reset. */
  fatal: string[];
  sinceWall: number;
}

/**
 * Watches playback in the page (installed in every document the page loads, and in the current
 * one): the <video>'s `waiting`/`playing` events once playback has started, and hls.js's
 * BUFFER_STALLED_ERROR and fatal errors (following whichever Hls instance onairPlayer uses).
 */
export async function installPlaybackMonitor(page: Page, selector = 'video'): Promise<void> {
  const script = `(() => {
    if (window.__playback) return;
    const s = { firstPlayingWall: null, waiting: 0, stallMs: 0, stallStart: null, bufferStalledErrors: 0, fatal: [], sinceWall: Date.now() };
    window.__playback = s;
    let video = null;
    let hooked = null;
    setInterval(() => {
      const v = document.querySelector(${JSON.stringify(selector)});
      if (v && v !== video) {
        video = v;
        v.addEventListener('playing', () => {
          if (s.firstPlayingWall === null) s.firstPlayingWall = Date.now();
          if (s.stallStart !== null) { s.stallMs += Date.now() - s.stallStart; s.stallStart = null; }
        });
        v.addEventListener('waiting', () => {
          if (s.firstPlayingWall === null || s.stallStart !== null) return;
          s.waiting++;
          s.stallStart = Date.now();
        });
      }
      const hls = window.onairPlayer && window.onairPlayer.hls;
      if (hls && hls !== hooked) {
        hooked = hls;
        hls.on('hlsError', (_e, data) => {
          if (data.details === 'bufferStalledError') s.bufferStalledErrors++;
          if (data.fatal) s.fatal.push(data.details);
        });
      }
    }, 50);
  })();`;
  await page.addInitScript({ content: script });
  await page.evaluate(script).catch(() => undefined);
}

export async function readPlaybackMonitor(page: Page): Promise<PlaybackMonitorReading> {
  return page.evaluate(() => {
    const s = (window as unknown as { __playback?: PlaybackMonitorReading & { stallStart: number | null } }).__playback;
    if (!s) throw new Error('the playback monitor is not installed in this page (installPlaybackMonitor)');
    const ongoing = s.stallStart !== null ? Date.now() - s.stallStart : 0;
    return { firstPlayingWall: s.firstPlayingWall, waiting: s.waiting, stallMs: s.stallMs + ongoing, stalledNow: s.stallStart !== null, bufferStalledErrors: s.bufferStalledErrors, fatal: [...s.fatal], sinceWall: s.sinceWall };
  });
}

/** Starts a new window: counts cleared (a stall under way counts from now). */
export async function resetPlaybackMonitor(page: Page): Promise<void> {
  await page.evaluate(() => {
    const s = (window as unknown as { __playback?: PlaybackMonitorReading & { stallStart: number | null } }).__playback;
    if (!s) return;
    s.waiting = 0;
    s.stallMs = 0;
    if (s.stallStart !== null) s.stallStart = Date.now();
    s.bufferStalledErrors = 0;
    s.fatal = [];
    s.sinceWall = Date.now();
  });
}

/** hls.js's own view of the player, read in the page: latency (s, live edge − playhead) and the playing frame's date. */
export async function readHlsLatency(page: Page): Promise<{ hlsLatencyS: number | null; pdtLatencyS: number | null; targetDuration: number | null }> {
  return page.evaluate(() => {
    const hls = (window as unknown as { onairPlayer?: { hls?: { latency?: number; playingDate?: Date | null; levels?: Array<{ details?: { targetduration?: number } }>; currentLevel?: number } | null } }).onairPlayer?.hls;
    if (!hls) return { hlsLatencyS: null, pdtLatencyS: null, targetDuration: null };
    const latency = typeof hls.latency === 'number' && hls.latency > 0 ? hls.latency : null;
    const date = hls.playingDate instanceof Date ? hls.playingDate.getTime() : NaN;
    const level = hls.levels?.[hls.currentLevel ?? -1];
    return { hlsLatencyS: latency, pdtLatencyS: Number.isFinite(date) ? (Date.now() - date) / 1000 : null, targetDuration: level?.details?.targetduration ?? null };
  });
}
