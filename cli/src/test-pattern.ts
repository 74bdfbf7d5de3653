import { spawn, type ChildProcess } from 'node:child_process';

/**
 * A synthetic broadcaster: ffmpeg draws a test pattern with a running wall clock (human-readable,
 * and as a machine-readable frame clock, see FRAME_CLOCK below), encodes it the way we tell OBS
 * users to (H.264, fixed keyframe interval, no B-frames, CBR; AAC audio) and publishes it over
 * RTMP. Used by `onair up`'s demo, by the tests and by the latency bench.
 */
export interface TestPatternOptions {
  /** rtmp://host:port/live/<stream>?key=<secret>, or a file with `format`. */
  url: string;
  /** Output container (default flv, for RTMP). */
  format?: string;
  width?: number;
  height?: number;
  fps?: number;
  keyframeSeconds?: number;
  videoKbps?: number;
  /** Stop after this many seconds; unset = until stopped. */
  durationSeconds?: number;
  /** Draw the clock overlays (costs a little CPU): the text and, unless frameClock is false, the frame clock. */
  clock?: boolean;
  /** The machine-readable frame clock (bottom band); default: on when `clock` is. */
  frameClock?: boolean;
  label?: string;
  /** Pace the input at real time (default); false encodes as fast as possible, e.g. into a file. */
  realtime?: boolean;
}

// --- the frame clock ------------------------------------------------------------------------------
//
// Each frame carries the wall clock at which ffmpeg generated it: the UTC millisecond of the day
// (0 … 86 399 999, 27 bits) plus a CRC-6 over those bits, as black/white cells in a band across the
// bottom 27 % of the picture: 3 rows × 13 columns. Per row, two reference cells (one white, one
// black; the order alternates from row to row, so a misplaced or flipped read fails) give that
// row's white and black levels, and the 11 data cells are read against their midpoint. A cell
// whose level is too close to the midpoint (a block caught half-way through a change by a starved
// encoder) makes the whole frame undecodable instead of wrong; the CRC (x^6 + x + 1, primitive:
// every 1- and 2-bit error and every burst ≤ 6 cells in the 33 is detected) catches what gets through.
//
// Everything is in fractions of the picture, so the code survives any scaling (the player's, the
// quality ladder's); cells are ~W/13 × H/11 (25 × 16 px at 320×180, 49 × 33 px at 640×360) and
// are read in their central half only.
//
// How the time gets there: with -re the lavfi source is paced at real time; in the output filter
// chain (testPatternVideoFilter), `settb=1/1000000,setpts=RTCTIME` makes each frame's t the wall
// clock (µs) as it passes, i.e. when it is due in real time; each cell is a drawbox whose `enable`
// tests its bit of floor(t*1000) mod 86400000; then `setpts=N/(fps*TB),settb=1/fps` gives the
// frames back their regular timestamps, so the stream's timing is exactly that of the plain
// pattern. Measured (e2e/frame-clock.test.ts): the times follow the real-time schedule within
// ~5 ms (p95), and ffmpeg hands the frame on about one frame interval after its time (ffmpeg's
// own pipeline: it is part of the publisher's latency, as a camera's would be). Cost: ~0.02–0.03
// cores more than the plain pattern at 640×360 30 fps.

export interface FrameClockCell {
  col: number;
  row: number;
  role: 'white' | 'black' | 'bit';
  /** 0–26: bit of the millisecond of the day; 27–32: CRC bit (bit − 27). */
  bit?: number;
}

export interface FrameClockLayout {
  version: 1;
  /** The value is the UTC millisecond of the day: it wraps at midnight. */
  modulus: number;
  valueBits: number;
  checkBits: number;
  /** checkMasks[j]: which value bits CRC bit j is the parity of. */
  checkMasks: number[];
  /** The band, in fractions of the picture height. */
  bandTop: number;
  bandBottom: number;
  columns: number;
  rows: number;
  cells: FrameClockCell[];
  /** Fraction of a cell (each way, centred) that is drawn, and the (smaller) one that is read. */
  drawFraction: number;
  readFraction: number;
  /** A row whose white and black references differ by less than this (0–255) has no code. */
  minSpan: number;
  /** A data cell whose level is within this fraction of the span around the midpoint is unreadable. */
  ambiguity: number;
}

const CRC_POLY = 0b1000011; // x^6 + x + 1

/** CRC-6 (x^6 + x + 1, no init, no final xor) of a 27-bit value; linear, so it is also a sum of masks. */
export function frameClockCrc(value: number, bits = 27): number {
  let reg = 0;
  for (let i = bits - 1; i >= 0; i--) {
    const top = ((reg >> 5) & 1) ^ ((value >> i) & 1);
    reg = (reg << 1) & 0x3f;
    if (top) reg ^= CRC_POLY & 0x3f;
  }
  return reg;
}

function buildLayout(): FrameClockLayout {
  const valueBits = 27;
  const checkBits = 6;
  const columns = 13;
  const rows = 3;
  const checkMasks = Array.from({ length: checkBits }, (_, j) => {
    let mask = 0;
    for (let k = 0; k < valueBits; k++) if ((frameClockCrc(2 ** k, valueBits) >> j) & 1) mask |= 2 ** k;
    return mask;
  });
  const cells: FrameClockCell[] = [];
  let bit = 0;
  for (let row = 0; row < rows; row++) {
    const firstWhite = row % 2 === 0;
    cells.push({ col: 0, row, role: firstWhite ? 'white' : 'black' });
    cells.push({ col: 1, row, role: firstWhite ? 'black' : 'white' });
    for (let col = 2; col < columns; col++) cells.push({ col, row, role: 'bit', bit: bit++ });
  }
  if (bit !== valueBits + checkBits) throw new Error('frame clock layout: cell count');
  return { version: 1, modulus: 86_400_000, valueBits, checkBits, checkMasks, bandTop: 0.73, bandBottom: 1, columns, rows, cells, drawFraction: 0.84, readFraction: 0.5, minSpan: 48, ambiguity: 0.2 };
}

/** The one description of the code: the encoder below and both decoders (common/testing/frame-clock.ts) read it. */
export const FRAME_CLOCK: FrameClockLayout = buildLayout();

/** The cells' values for a millisecond of the day (what the encoder draws): index = layout bit. */
export function frameClockBits(msOfDay: number, layout: FrameClockLayout = FRAME_CLOCK): number[] {
  const crc = frameClockCrc(msOfDay, layout.valueBits);
  return Array.from({ length: layout.valueBits + layout.checkBits }, (_, b) => (b < layout.valueBits ? Math.floor(msOfDay / 2 ** b) % 2 : (crc >> (b - layout.valueBits)) & 1));
}

/** The cell's rectangle in pixels (the drawn part) in a width × height picture. */
export function frameClockCellRect(cell: FrameClockCell, width: number, height: number, fraction: number, layout: FrameClockLayout = FRAME_CLOCK): { x: number; y: number; w: number; h: number } {
  const cw = width / layout.columns;
  const ch = ((layout.bandBottom - layout.bandTop) * height) / layout.rows;
  const x0 = cell.col * cw + (cw * (1 - fraction)) / 2;
  const y0 = layout.bandTop * height + cell.row * ch + (ch * (1 - fraction)) / 2;
  const x = Math.round(x0);
  const y = Math.round(y0);
  return { x, y, w: Math.max(1, Math.round(x0 + cw * fraction) - x), h: Math.max(1, Math.round(y0 + ch * fraction) - y) };
}

/**
 * Filters (for a filter chain, joined with commas) drawing the frame clock on frames whose t is
 * the wall clock in seconds (after settb=1/1000000,setpts=RTCTIME).
 */
export function frameClockFilters(width: number, height: number, layout: FrameClockLayout = FRAME_CLOCK): string[] {
  const msOfDay = `mod(floor(t*1000),${layout.modulus})`;
  const bitOf = (k: number): string => `mod(floor(${msOfDay}/${2 ** k}),2)`;
  const bandY = Math.round(layout.bandTop * height);
  const filters = [`drawbox=x=0:y=${bandY}:w=${width}:h=${height - bandY}:color=black:t=fill`];
  for (const cell of layout.cells) {
    if (cell.role === 'black') continue;
    const r = frameClockCellRect(cell, width, height, layout.drawFraction, layout);
    let enable = '';
    if (cell.role === 'bit') {
      const b = cell.bit!;
      if (b < layout.valueBits) {
        enable = `eq(${bitOf(b)},1)`;
      } else {
        const mask = layout.checkMasks[b - layout.valueBits]!;
        const terms: string[] = [];
        for (let k = 0; k < layout.valueBits; k++) if (Math.floor(mask / 2 ** k) % 2) terms.push(bitOf(k));
        enable = `eq(mod(${terms.join('+')},2),1)`;
      }
    }
    filters.push(`drawbox=x=${r.x}:y=${r.y}:w=${r.w}:h=${r.h}:color=white:t=fill${enable ? `:enable='${enable}'` : ''}`);
  }
  return filters;
}

/** The lavfi source of the picture (the clock is drawn by testPatternVideoFilter, on the output side). */
export function testPatternVideoSource(options: Omit<TestPatternOptions, 'url'>): string {
  return `testsrc2=size=${options.width ?? 1280}x${options.height ?? 720}:rate=${options.fps ?? 30}`;
}

/**
 * The output filter chain drawing the clock text and the frame clock, or null without `clock`.
 * It runs on ffmpeg's main thread, after -re has paced the frame: RTCTIME there is the moment the
 * frame is due in real time and goes on to the encoder. (Inside the lavfi input graph it would be
 * earlier than that: with two inputs ffmpeg reads each one on its own thread, ahead of -re's pacing
 * by its thread queue — ~10 frames, 0.3–0.7 s — and the probe reads a burst of frames at start.)
 */
export function testPatternVideoFilter(options: Omit<TestPatternOptions, 'url'>): string | null {
  if (options.clock === false) return null;
  const width = options.width ?? 1280;
  const height = options.height ?? 720;
  const fps = options.fps ?? 30;
  const big = Math.max(16, Math.round(height / 14));
  const label = (options.label ?? 'onair demo').replace(/[^A-Za-z0-9 _-]/g, '');
  // From here to the last setpts, t is the wall clock (s) at which the frame came through.
  let chain =
    'settb=1/1000000,setpts=RTCTIME' +
    `,drawtext=font=monospace:fontsize=${big}:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=8:x=24:y=24:text='${label}  %{localtime\\:%X}'` +
    `,drawtext=font=monospace:fontsize=${Math.round(big * 0.7)}:fontcolor=yellow:box=1:boxcolor=black@0.6:boxborderw=6:x=24:y=${24 + big + 24}:text='UTC ms of day %{eif\\:mod(floor(t*1000)\\,86400000)\\:d\\:8}'`;
  if (options.frameClock !== false) chain += `,${frameClockFilters(width, height).join(',')}`;
  // Regular timestamps again (those of testsrc2: frame N at N/fps), so the stream's timing is untouched.
  return `${chain},setpts=N/(${fps}*TB),settb=1/${fps}`;
}

/** The video encoder's arguments (what OBS users are told to use). */
export function testPatternVideoCodecArgs(options: Omit<TestPatternOptions, 'url'>): string[] {
  const fps = options.fps ?? 30;
  const keyframeSeconds = options.keyframeSeconds ?? 1;
  const kbps = options.videoKbps ?? 2500;
  const gop = Math.max(1, Math.round(fps * keyframeSeconds));
  return [
    '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-profile:v', 'high', '-pix_fmt', 'yuv420p',
    '-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0', '-bf', '0',
    '-b:v', `${kbps}k`, '-maxrate', `${kbps}k`, '-bufsize', `${kbps}k`, '-x264-params', 'nal-hrd=cbr',
  ];
}

export function testPatternArgs(options: TestPatternOptions): string[] {
  const pace = options.realtime === false ? [] : ['-re'];
  const args = ['-hide_banner', '-loglevel', 'error', '-nostats', ...pace, '-f', 'lavfi', '-i', testPatternVideoSource(options), ...pace, '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'];
  if (options.durationSeconds !== undefined) args.push('-t', String(options.durationSeconds));
  const filter = testPatternVideoFilter(options);
  if (filter) args.push('-vf', filter);
  args.push(
    ...testPatternVideoCodecArgs(options),
    '-c:a', 'aac', '-b:a', '128k', '-ar', '48000', '-ac', '2',
    '-f', options.format ?? 'flv', options.url,
  );
  return args;
}

export function spawnTestPattern(options: TestPatternOptions, ffmpegPath = 'ffmpeg'): ChildProcess {
  return spawn(ffmpegPath, testPatternArgs(options), { stdio: ['ignore', 'pipe', 'pipe'] });
}
