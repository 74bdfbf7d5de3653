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
