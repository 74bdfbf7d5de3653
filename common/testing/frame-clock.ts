/**
 * Decoders of the test pattern's frame clock (the wall clock at which ffmpeg generated each frame,
 * drawn as black/white cells: cli/src/test-pattern.ts FRAME_CLOCK describes the code, and both
 * decoders here read that description):
 *
 *  - in a Playwright page: installFrameClock(page) puts a requestVideoFrameCallback loop (timer
 *    fallback) on the page's <video>; each presented frame is drawn to a small canvas, its cells are
 *    read, and latency = wall clock at display (metadata.expectedDisplayTime) − generation time is
 *    recorded; readFrameClock(page) returns the statistics and recent raw samples;
 *  - in Node: decodeFrameClockFile(file or bytes) runs ffmpeg to get gray raw frames (the first, or
 *    several) and reads their cells, e.g. to timestamp the first frame of a segment.
 *
 * The functions that turn cell levels into a time (frameClockLevels, decodeFrameClockLevels,
 * resolveMsOfDay) are self-contained so that the very same code runs in the page (serialised).
 */
import { spawn } from 'node:child_process';
import type { Page } from 'playwright-core';
import { FRAME_CLOCK, type FrameClockLayout } from '../../cli/src/test-pattern.ts';

export type FrameClockDecode = { ok: true; msOfDay: number } | { ok: false; reason: 'no-code' | 'ambiguous' | 'crc' | 'range' };

// --- the shared decoder core (must stay self-contained: it is serialised into the page) -----------

/**
 * Mean levels (0–255) of the cells' read areas, in layout.cells order. `mean(x0, y0, x1, y1)` gives
 * the mean luma over a rectangle in fractions of the picture.
 */
export function frameClockLevels(mean: (x0: number, y0: number, x1: number, y1: number) => number, layout: FrameClockLayout): number[] {
  const cw = 1 / layout.columns;
  const ch = (layout.bandBottom - layout.bandTop) / layout.rows;
  const inset = (1 - layout.readFraction) / 2;
  return layout.cells.map((cell) => {
    const x0 = (cell.col + inset) * cw;
    const y0 = layout.bandTop + (cell.row + inset) * ch;
    return mean(x0, y0, x0 + cw * layout.readFraction, y0 + ch * layout.readFraction);
  });
}

/** The millisecond of the day the cells say, or why they say nothing. */
export function decodeFrameClockLevels(levels: number[], layout: FrameClockLayout): FrameClockDecode {
  const white: number[] = [];
  const black: number[] = [];
  layout.cells.forEach((cell, i) => {
    if (cell.role === 'white') white[cell.row] = levels[i]!;
    if (cell.role === 'black') black[cell.row] = levels[i]!;
  });
  for (let row = 0; row < layout.rows; row++) {
    if (!(white[row]! - black[row]! >= layout.minSpan)) return { ok: false, reason: 'no-code' };
  }
  const bits: number[] = [];
  let ambiguous = false;
  layout.cells.forEach((cell, i) => {
    if (cell.role !== 'bit') return;
    const n = (levels[i]! - black[cell.row]!) / (white[cell.row]! - black[cell.row]!);
    if (Math.abs(n - 0.5) < layout.ambiguity) ambiguous = true;
    bits[cell.bit!] = n > 0.5 ? 1 : 0;
  });
  if (ambiguous) return { ok: false, reason: 'ambiguous' };
  let value = 0;
  for (let k = 0; k < layout.valueBits; k++) value += bits[k]! * 2 ** k;
  for (let j = 0; j < layout.checkBits; j++) {
    let parity = 0;
    for (let k = 0; k < layout.valueBits; k++) if (Math.floor(layout.checkMasks[j]! / 2 ** k) % 2) parity ^= bits[k]!;
    if (parity !== bits[layout.valueBits + j]) return { ok: false, reason: 'crc' };
  }
  if (value >= layout.modulus) return { ok: false, reason: 'range' };
  return { ok: true, msOfDay: value };
}

/**
 * The epoch millisecond of a millisecond of the (UTC) day: the one nearest to `aroundEpochMs`
 * (e.g. the display time), so a frame from just before midnight seen just after it is right.
 */
export function resolveMsOfDay(msOfDay: number, aroundEpochMs: number, modulus = 86_400_000): number {
  const dayStart = aroundEpochMs - (((aroundEpochMs % modulus) + modulus) % modulus);
  let best = dayStart + msOfDay;
  for (const candidate of [best - modulus, best + modulus]) {
    if (Math.abs(candidate - aroundEpochMs) < Math.abs(best - aroundEpochMs)) best = candidate;
  }
  return best;
}

// --- Node: gray raw frames ------------------------------------------------------------------------

/** Decodes one 8-bit gray frame (row-major, `width` bytes per row). */
export function decodeFrameClockGray(gray: Uint8Array, width: number, height: number, layout: FrameClockLayout = FRAME_CLOCK): FrameClockDecode {
  const mean = (x0: number, y0: number, x1: number, y1: number): number => {
    const px0 = Math.max(0, Math.round(x0 * width));
    const px1 = Math.min(width, Math.max(px0 + 1, Math.round(x1 * width)));
    const py0 = Math.max(0, Math.round(y0 * height));
    const py1 = Math.min(height, Math.max(py0 + 1, Math.round(y1 * height)));
    let sum = 0;
    for (let y = py0; y < py1; y++) for (let x = px0; x < px1; x++) sum += gray[y * width + x]!;
    return sum / ((px1 - px0) * (py1 - py0));
  };
  return decodeFrameClockLevels(frameClockLevels(mean, layout), layout);
}

export interface FileDecodeOptions {
  /** Frames to decode from the start (default 1). */
  frames?: number;
  /** The size ffmpeg scales the picture to before reading (any: the code is relative). */
  width?: number;
  height?: number;
  ffmpegPath?: string;
  timeoutMs?: number;
}

/**
 * Decodes the frame clock of the first `frames` frames of a media file (a path, or its bytes, e.g.
 * an fMP4 init segment followed by a media segment or part) with ffmpeg.
 */
export async function decodeFrameClockFile(input: string | Uint8Array, options: FileDecodeOptions = {}): Promise<FrameClockDecode[]> {
  const width = options.width ?? 320;
  const height = options.height ?? 180;
  const frames = options.frames ?? 1;
  const args = ['-hide_banner', '-v', 'error', '-i', typeof input === 'string' ? input : 'pipe:0', '-map', '0:v:0'];
  if (Number.isFinite(frames)) args.push('-frames:v', String(frames));
  args.push('-vf', `scale=${width}:${height}:flags=area`, '-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:1');
  const child = spawn(options.ffmpegPath ?? 'ffmpeg', args, { stdio: [typeof input === 'string' ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => chunks.push(c));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  if (typeof input !== 'string') {
    child.stdin!.on('error', () => undefined); // ffmpeg may stop reading once it has its frames
    child.stdin!.end(input);
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  clearTimeout(timer);
  const out = Buffer.concat(chunks);
  const frameBytes = width * height;
  if (out.length < frameBytes) throw new Error(`ffmpeg gave no frame (exit ${code}): ${stderr.trim().slice(-500)}`);
  const results: FrameClockDecode[] = [];
  for (let off = 0; off + frameBytes <= out.length; off += frameBytes) results.push(decodeFrameClockGray(out.subarray(off, off + frameBytes), width, height));
  return results;
}

/** The generation time (epoch ms) of the first frame of a media file, or null when it carries no readable clock. */
export async function firstFrameGeneratedAt(input: string | Uint8Array, aroundEpochMs = Date.now()): Promise<number | null> {
  const [first] = await decodeFrameClockFile(input, { frames: 1 });
  return first?.ok ? resolveMsOfDay(first.msOfDay, aroundEpochMs) : null;
}

// --- statistics -------------------------------------------------------------------------------------

export interface LatencyStats {
  count: number;
  median: number | null;
  p95: number | null;
  min: number | null;
  max: number | null;
}

/** Nearest-rank quantile of sorted values. */
export function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function latencyStats(values: number[]): LatencyStats {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, median: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), min: sorted[0] ?? null, max: sorted[sorted.length - 1] ?? null };
}

// --- in the browser -----------------------------------------------------------------------------

export interface FrameClockSample {
  /** Wall clock (epoch ms) at which the frame was (expected to be) displayed. */
  displayWall: number;
  /** Wall clock (epoch ms) at which ffmpeg generated it; null when its code could not be read. */
  generatedWall: number | null;
  latencyMs: number | null;
  mediaTime: number | null;
  presentedFrames: number | null;
}

export interface FrameClockReading extends LatencyStats {
  /**
   * 'rvfc' (requestVideoFrameCallback: display time = metadata.expectedDisplayTime) or 'timer'
   * (fallback polling every 8 ms: display time = Date.now() when a new code is first seen, which is
   * a little early, the frame may not be composited yet), null before a <video> was found.
   */
  mode: 'rvfc' | 'timer' | null;
  /** Frames read (decoded or not) since the last reset. */
  frames: number;
  failures: number;
  failureRate: number;
  failureReasons: Record<string, number>;
  /** Frames the compositor presented without a callback for them (the page was busy): not read. */
  missed: number;
  /** Wall clock of the first presented frame / first decoded frame since install (not reset). */
  firstPresentedWall: number | null;
  firstDecodedWall: number | null;
  /** Wall clock of the last reset (or install). */
  sinceWall: number;
  latencies: number[];
  /** The most recent samples (up to `recent` of installFrameClock), oldest first. */
  recent: FrameClockSample[];
}

interface PageState {
  mode: 'rvfc' | 'timer' | null;
  sinceWall: number;
  frames: number;
  failures: number;
  reasons: Record<string, number>;
  missed: number;
  latencies: number[];
  recent: FrameClockSample[];
  firstPresentedWall: number | null;
  firstDecodedWall: number | null;
}

interface PageConfig {
  layout: FrameClockLayout;
  selector: string;
  recent: number;
  forceTimer: boolean;
}

/** Runs in the page (serialised): finds the video, reads every presented frame. */
function pageFrameClock(
  cfg: PageConfig,
  levelsOf: typeof frameClockLevels,
  decode: typeof decodeFrameClockLevels,
  resolve: typeof resolveMsOfDay,
): void {
  const w = window as unknown as { __frameClock?: PageState };
  if (w.__frameClock) return;
  const layout = cfg.layout;
  const state: PageState = { mode: null, sinceWall: Date.now(), frames: 0, failures: 0, reasons: {}, missed: 0, latencies: [], recent: [], firstPresentedWall: null, firstDecodedWall: null };
  w.__frameClock = state;
  const cellPx = 12;
  const cw = layout.columns * cellPx;
  const ch = layout.rows * cellPx;
  const bandH = layout.bandBottom - layout.bandTop;
  let ctx: CanvasRenderingContext2D | null = null;
  let current: HTMLVideoElement | null = null;
  // The timer fallback sees the same frame several times: it counts a frame when the code changes
  // (and a run of unreadable reads as one failure).
  let lastRead: number | 'failed' | null = null;

  const keep = (sample: FrameClockSample): void => {
    state.recent.push(sample);
    if (state.recent.length > cfg.recent) state.recent.splice(0, state.recent.length - cfg.recent);
  };

  const read = (video: HTMLVideoElement, displayWall: number, mediaTime: number | null, presentedFrames: number | null, dedupe: boolean): void => {
    const vw = video.videoWidth;
    const vh = video.videoHeight;
    if (!vw || !vh) return;
    if (!ctx) {
      const canvas = document.createElement('canvas');
      canvas.width = cw;
      canvas.height = ch;
      ctx = canvas.getContext('2d', { willReadFrequently: true });
      if (!ctx) return;
    }
    ctx.drawImage(video, 0, layout.bandTop * vh, vw, bandH * vh, 0, 0, cw, ch);
    const data = ctx.getImageData(0, 0, cw, ch).data;
    const mean = (x0: number, y0: number, x1: number, y1: number): number => {
      const px0 = Math.max(0, Math.round(x0 * cw));
      const px1 = Math.min(cw, Math.max(px0 + 1, Math.round(x1 * cw)));
      const py0 = Math.max(0, Math.round(((y0 - layout.bandTop) / bandH) * ch));
      const py1 = Math.min(ch, Math.max(py0 + 1, Math.round(((y1 - layout.bandTop) / bandH) * ch)));
      let sum = 0;
      for (let y = py0; y < py1; y++) {
        for (let x = px0; x < px1; x++) {
          const i = (y * cw + x) * 4;
          sum += 0.299 * data[i]! + 0.587 * data[i + 1]! + 0.114 * data[i + 2]!;
        }
      }
      return sum / ((px1 - px0) * (py1 - py0));
    };
    const result = decode(levelsOf(mean, layout), layout);
    if (state.firstPresentedWall === null) state.firstPresentedWall = displayWall;
    if (dedupe) {
      const key = result.ok ? result.msOfDay : 'failed';
      if (key === lastRead) return;
      lastRead = key;
    }
    state.frames++;
    if (!result.ok) {
      state.failures++;
      state.reasons[result.reason] = (state.reasons[result.reason] ?? 0) + 1;
      keep({ displayWall, generatedWall: null, latencyMs: null, mediaTime, presentedFrames });
      return;
    }
    const generatedWall = resolve(result.msOfDay, displayWall, layout.modulus);
    if (state.firstDecodedWall === null) state.firstDecodedWall = displayWall;
    state.latencies.push(displayWall - generatedWall);
    keep({ displayWall, generatedWall, latencyMs: displayWall - generatedWall, mediaTime, presentedFrames });
  };

  const attach = (video: HTMLVideoElement): void => {
    const rvfc = !cfg.forceTimer && typeof video.requestVideoFrameCallback === 'function';
    state.mode = rvfc ? 'rvfc' : 'timer';
    if (rvfc) {
      let lastPresented: number | null = null;
      const onFrame = (_now: number, meta: VideoFrameCallbackMetadata): void => {
        if (current !== video) return;
        try {
          if (lastPresented !== null && meta.presentedFrames > lastPresented + 1) state.missed += meta.presentedFrames - lastPresented - 1;
          lastPresented = meta.presentedFrames;
          // expectedDisplayTime is on the performance.now() clock: bring it to the wall clock.
          read(video, meta.expectedDisplayTime + (Date.now() - performance.now()), meta.mediaTime, meta.presentedFrames, false);
        } finally {
          video.requestVideoFrameCallback(onFrame);
        }
      };
      video.requestVideoFrameCallback(onFrame);
      return;
    }
    let lastTime = -1;
    const timer = setInterval(() => {
      if (current !== video) return clearInterval(timer);
      if (video.paused || video.currentTime === lastTime) return;
      lastTime = video.currentTime;
      read(video, Date.now(), video.currentTime, null, true);
    }, 8);
  };

  const find = (): void => {
    const video = document.querySelector(cfg.selector) as HTMLVideoElement | null;
    if (video && video !== current) {
      current = video;
      attach(video);
    }
  };
  find();
  setInterval(find, 100);
}

function pageScript(cfg: PageConfig): string {
  // tsx (esbuild keepNames) wraps inner functions in __name(…): give the page a no-op one.
  return `(() => { const __name = (f) => f; (${pageFrameClock.toString()})(${JSON.stringify(cfg)}, ${frameClockLevels.toString()}, ${decodeFrameClockLevels.toString()}, ${resolveMsOfDay.toString()}); })();`;
}

export interface InstallFrameClockOptions {
  /** The <video> to read (default: the first one). */
  selector?: string;
  /** Raw samples kept for readFrameClock's `recent` (default 600). */
  recent?: number;
  /** Use the timer fallback even where requestVideoFrameCallback exists (to test it). */
  forceTimer?: boolean;
}

/**
 * Reads the frame clock of every frame the page's <video> presents. Call before page.goto (it is
 * installed in every document the page loads) or after (it is installed in the current one too).
 */
export async function installFrameClock(page: Page, options: InstallFrameClockOptions = {}): Promise<void> {
  const script = pageScript({ layout: FRAME_CLOCK, selector: options.selector ?? 'video', recent: options.recent ?? 600, forceTimer: options.forceTimer ?? false });
  await page.addInitScript({ content: script });
  await page.evaluate(script).catch(() => undefined); // about:blank before the first goto is fine too
}

/** Statistics since the last reset (or install), latencies in ms. */
export async function readFrameClock(page: Page): Promise<FrameClockReading> {
  const s = await page.evaluate(() => {
    const st = (window as unknown as { __frameClock?: PageState }).__frameClock;
    return st ? { ...st, latencies: [...st.latencies], recent: [...st.recent] } : null;
  });
  if (!s) throw new Error('the frame clock is not installed in this page (installFrameClock)');
  return {
    ...latencyStats(s.latencies),
    mode: s.mode,
    frames: s.frames,
    failures: s.failures,
    failureRate: s.frames > 0 ? s.failures / s.frames : 0,
    failureReasons: s.reasons,
    missed: s.missed,
    firstPresentedWall: s.firstPresentedWall,
    firstDecodedWall: s.firstDecodedWall,
    sinceWall: s.sinceWall,
    latencies: s.latencies,
    recent: s.recent,
  };
}

/** Starts a new measurement window (counts, latencies and recent samples cleared). */
export async function resetFrameClock(page: Page): Promise<void> {
  await page.evaluate(() => {
    const st = (window as unknown as { __frameClock?: PageState }).__frameClock;
    if (!st) return;
    st.sinceWall = Date.now();
    st.frames = 0;
    st.failures = 0;
    st.reasons = {};
    st.missed = 0;
    st.latencies = [];
    st.recent = [];
  });
}
