/**
 * Glass-to-glass latency, measured by machine: the publisher burns the wall clock at which each
 * frame was made into the picture (cli/src/test-pattern.ts FRAME_CLOCK); onair's own page plays the
 * stream in headless Chromium through the proxy, and every presented frame's code is read against
 * the wall clock at display (common/testing/frame-clock.ts). Same machine, same clock: no sync error.
 *
 * One case = keyframe interval (1 s / 2 s) × LL-HLS on/off (HLS_LOW_LATENCY=on|off in ingest's
 * environment) × passthrough or a quality ladder; publisher 640×360 30 fps 2 Mbit/s with the frame
 * clock; stack = ingest + 3 web replicas + proxy. Per case:
 *  - glass-to-glass median / p95 over the playback window (frame clock, every presented frame),
 *    with hls.js's own `hls.latency` and now − PDT alongside;
 *  - stalls once playing: `waiting` events, hls.js BUFFER_STALLED_ERROR, seconds stalled;
 *  - startup: page open → first presented frame;
 *  - first frame → first playable: the proxy's playlist is polled from before the publisher starts;
 *    the first part (#EXT-X-PART) or segment it lists is fetched through the proxy and its first
 *    frame's clock decoded in Node: fetch completed − that frame's generation time;
 *  - the page's requests to /live/ per second; CPU (cores) of ingest (with its ffmpeg), web (sum),
 *    proxy, and of the machine as a whole (other work on it shows there);
 *  - held viewers (LL only): 100 Node clients doing what hls.js does in LL mode (blocking reload
 *    `?_HLS_msn=&_HLS_part=` for the next part, then the newest part) through the proxy for 20 s:
 *    the proxy's upstream requests per second (its /metrics before and after) and failed requests.
 * Anything that needs parts reads "n/a" when the stream has none (LL off, or not built yet).
 *
 * Environment: LATENCY_CASES (comma list, default all: 2s-ll,2s-classic,1s-ll,1s-classic,ladder-ll,
 * ladder-classic), LATENCY_WINDOW_S (playback window, default 60), LATENCY_SETTLE_S (playback
 * before the window, default 10), LATENCY_LADDER (default 360p,240p), LATENCY_HELD_VIEWERS (100),
 * LATENCY_HELD_S (20). Results: bench/results/latency.{json,md} (cases merged into what is there).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { addStream } from '../common/src/stream-registry.ts';
import { installPlaybackMonitor, launchChromium, readHlsLatency, readPlaybackMonitor, resetPlaybackMonitor } from '../common/testing/browser.ts';
import { firstFrameGeneratedAt, installFrameClock, latencyStats, readFrameClock, resetFrameClock, type LatencyStats } from '../common/testing/frame-clock.ts';
import { metricValue, scrapeMetrics } from '../common/testing/metrics.ts';
import { REPO_ROOT, sleep, waitFor, type ManagedProcess } from '../common/testing/processes.ts';
import { publish, startStack, type Stack } from '../common/testing/stack.ts';
import { viewerAddress } from '../loadtest/node/http-viewer.ts';
import { cpuSnapshot } from './proc-cpu.ts';

const WINDOW_S = Number(process.env.LATENCY_WINDOW_S ?? 60);
const SETTLE_S = Number(process.env.LATENCY_SETTLE_S ?? 10);
const LADDER = process.env.LATENCY_LADDER ?? '360p,240p';
const HELD_VIEWERS = Number(process.env.LATENCY_HELD_VIEWERS ?? 100);
const HELD_S = Number(process.env.LATENCY_HELD_S ?? 20);
const PUBLISHER = { width: 640, height: 360, fps: 30, videoKbps: 2000 } as const;
const RESULTS = path.join(REPO_ROOT, 'bench', 'results');

export interface LatencyCase {
  id: string;
  keyframeSeconds: 1 | 2;
  lowLatency: boolean;
  ladder: string | null;
}

export const LATENCY_CASES: LatencyCase[] = [
  { id: '2s-ll', keyframeSeconds: 2, lowLatency: true, ladder: null },
  { id: '2s-classic', keyframeSeconds: 2, lowLatency: false, ladder: null },
  { id: '1s-ll', keyframeSeconds: 1, lowLatency: true, ladder: null },
  { id: '1s-classic', keyframeSeconds: 1, lowLatency: false, ladder: null },
  { id: 'ladder-ll', keyframeSeconds: 2, lowLatency: true, ladder: LADDER },
  { id: 'ladder-classic', keyframeSeconds: 2, lowLatency: false, ladder: LADDER },
];

export function selectedCases(spec = process.env.LATENCY_CASES): LatencyCase[] {
  if (!spec || spec.trim() === '' || spec.trim() === 'all') return LATENCY_CASES;
  return spec.split(',').map((id) => {
    const found = LATENCY_CASES.find((c) => c.id === id.trim());
    if (!found) throw new Error(`LATENCY_CASES: unknown case ${JSON.stringify(id)} (known: ${LATENCY_CASES.map((c) => c.id).join(', ')})`);
    return found;
  });
}

export interface FirstPlayable {
  kind: 'part' | 'segment';
  uri: string;
  /** ms from the publisher's start to its first frame (the decoded clock of the first listed media). */
  spawnToFirstFrameMs: number | null;
  /** ms from that frame's generation to the fetch of its part/segment completing through the proxy. */
  firstFrameToPlayableMs: number | null;
  /** ms from the publisher's start to that fetch completing. */
  spawnToPlayableMs: number;
}

export interface HeldViewersResult {
  viewers: number;
  seconds: number;
  requests: number;
  failed: number;
  failures: Record<string, number>;
  blockingReloadMs: LatencyStats;
  /** Requests the proxy sent to the web replicas, per second (onair_proxy_backend_requests_total). */
  upstreamRequestsPerSecond: number;
  /** Playlist cache fills (upstream playlist fetches) per second, all and with LL directives. */
  playlistFillsPerSecond: number;
  directivePlaylistFillsPerSecond: number;
  segmentFillsPerSecond: number;
  proxyCores: number;
}

export interface CaseResult {
  case: LatencyCase;
  measuredAt: string;
  windowSeconds: number;
  settleSeconds: number;
  /** The media playlist advertised parts (#EXT-X-PART). */
  parts: boolean;
  partTarget: number | null;
  targetDuration: number | null;
  glassToGlassMs: LatencyStats;
  frames: number;
  decodeFailures: number;
  decodeFailureRate: number;
  failureReasons: Record<string, number>;
  /** Frames the compositor presented without a frame callback (not read; not failures). */
  missedCallbacks: number;
  /** getVideoPlaybackQuality() over the window: frames the player dropped, and all it handled. */
  droppedFrames: number;
  decodedByPlayer: number;
  hlsLatencyMs: LatencyStats;
  pdtLatencyMs: LatencyStats;
  startupMs: number | null;
  /** Over the measurement window; startup*: between the page opening and the window. */
  stalls: { waiting: number; bufferStalledErrors: number; seconds: number; fatal: string[]; startupWaiting: number; startupSeconds: number };
  firstPlayable: FirstPlayable | null;
  requestsPerViewerPerSecond: { all: number; playlists: number; media: number };
  cpuCores: Record<string, number>;
  videoHeight: number | null;
  heldViewers: HeldViewersResult | null;
  notes: string[];
}

// --- playlists ---------------------------------------------------------------------------------------

interface MediaPlaylistView {
  mediaSequence: number;
  targetDuration: number | null;
  partTarget: number | null;
  map: { uri: string; byterange: string | null } | null;
  segments: string[];
  /** Every part listed, in order, with the media sequence number of its segment and its index in it. */
  parts: Array<{ uri: string; byterange: string | null; msn: number; index: number }>;
}

function attribute(line: string, name: string): string | null {
  const m = new RegExp(`(?:^|[:,])${name}=("([^"]*)"|[^,]*)`).exec(line);
  return m ? (m[2] ?? m[1] ?? null) : null;
}

function parseMediaPlaylist(text: string): MediaPlaylistView {
  const lines = text.split('\n').map((l) => l.trim());
  const mediaSequence = Number(/^#EXT-X-MEDIA-SEQUENCE:(\d+)/m.exec(text)?.[1] ?? 0);
  const view: MediaPlaylistView = { mediaSequence, targetDuration: null, partTarget: null, map: null, segments: [], parts: [] };
  let msn = mediaSequence;
  let index = 0;
  for (const line of lines) {
    if (line.startsWith('#EXT-X-TARGETDURATION:')) view.targetDuration = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-PART-INF:')) view.partTarget = Number(attribute(line, 'PART-TARGET'));
    else if (line.startsWith('#EXT-X-MAP:') && !view.map) view.map = { uri: attribute(line, 'URI') ?? '', byterange: attribute(line, 'BYTERANGE') };
    else if (line.startsWith('#EXT-X-PART:')) view.parts.push({ uri: attribute(line, 'URI') ?? '', byterange: attribute(line, 'BYTERANGE'), msn, index: index++ });
    else if (line && !line.startsWith('#')) {
      view.segments.push(line);
      msn++;
      index = 0;
    }
  }
  return view;
}

/** The part a client asks for next: the one after the last listed (msn of the open segment, index). */
function nextPart(view: MediaPlaylistView): { msn: number; part: number } {
  const openMsn = view.mediaSequence + view.segments.length;
  const trailing = view.parts.filter((p) => p.msn === openMsn).length;
  return { msn: openMsn, part: trailing };
}

function isMaster(text: string): boolean {
  return text.includes('#EXT-X-STREAM-INF');
}

function firstVariant(text: string, base: string): string | null {
  const lines = text.split('\n').map((l) => l.trim());
  const i = lines.findIndex((l) => l.startsWith('#EXT-X-STREAM-INF'));
  const uri = i >= 0 ? lines.slice(i + 1).find((l) => l && !l.startsWith('#')) : undefined;
  return uri ? new URL(uri, base).toString() : null;
}

/** "length@offset" → a Range header value. */
function rangeHeader(byterange: string | null): Record<string, string> {
  if (!byterange) return {};
  const [length, offset] = byterange.split('@').map(Number);
  return { range: `bytes=${offset ?? 0}-${(offset ?? 0) + length! - 1}` };
}

async function fetchBytes(url: string, byterange: string | null): Promise<Uint8Array> {
  const res = await fetch(url, { headers: rangeHeader(byterange), signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/**
 * Polls the proxy's playlist (started before the publisher): the first part or segment listed is
 * fetched with its init segment; its first frame's clock is decoded.
 */
async function watchFirstPlayable(proxyUrl: string, stream: string, spawnedWall: () => number | null, stop: AbortSignal): Promise<{ first: FirstPlayable; mediaPlaylistUrl: string } | null> {
  let url = `${proxyUrl}/live/${stream}/index.m3u8`;
  while (!stop.aborted) {
    try {
      const res = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(5_000) });
      if (res.ok) {
        const text = await res.text();
        if (isMaster(text)) {
          const variant = firstVariant(text, url);
          if (variant) url = variant;
          continue;
        }
        const view = parseMediaPlaylist(text);
        const part = view.parts[0];
        const media = part ? { kind: 'part' as const, uri: part.uri, byterange: part.byterange } : view.segments[0] ? { kind: 'segment' as const, uri: view.segments[0], byterange: null } : null;
        if (media) {
          const bytes = await fetchBytes(new URL(media.uri, url).toString(), media.byterange);
          const playableWall = Date.now();
          const init = view.map ? await fetchBytes(new URL(view.map.uri, url).toString(), view.map.byterange) : new Uint8Array();
          const joined = new Uint8Array(init.length + bytes.length);
          joined.set(init, 0);
          joined.set(bytes, init.length);
          const generated = await firstFrameGeneratedAt(joined, playableWall).catch(() => null);
          const spawned = spawnedWall() ?? playableWall;
          return {
            mediaPlaylistUrl: url,
            first: {
              kind: media.kind,
              uri: media.uri,
              spawnToFirstFrameMs: generated === null ? null : generated - spawned,
              firstFrameToPlayableMs: generated === null ? null : playableWall - generated,
              spawnToPlayableMs: playableWall - spawned,
            },
          };
        }
      }
    } catch {
      // not there yet
    }
    await sleep(50);
  }
  return null;
}

// --- held viewers (LL-HLS clients in Node) ---------------------------------------------------------

function httpGet(agent: http.Agent, url: string, byterange: string | null, timeoutMs: number): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers: rangeHeader(byterange), timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function heldViewers(stack: Stack, mediaPlaylistUrl: string, count: number, seconds: number): Promise<HeldViewersResult> {
  const proxyUrl = stack.proxyUrl!;
  const failures: Record<string, number> = {};
  const blocking: number[] = [];
  let requests = 0;
  let failed = 0;
  const fail = (why: string): void => {
    failed++;
    failures[why] = (failures[why] ?? 0) + 1;
  };
  const deadline = Date.now() + seconds * 1000;
  const client = async (i: number): Promise<void> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2, localAddress: viewerAddress(i) });
    try {
      let view: MediaPlaylistView | null = null;
      while (Date.now() < deadline) {
        try {
          if (!view) {
            requests++;
            const res = await httpGet(agent, mediaPlaylistUrl, null, 10_000);
            if (res.status !== 200) {
              fail(`playlist ${res.status}`);
              await sleep(500);
              continue;
            }
            view = parseMediaPlaylist(res.body.toString());
          }
          const want = nextPart(view);
          const started = performance.now();
          requests++;
          const res = await httpGet(agent, `${mediaPlaylistUrl}?_HLS_msn=${want.msn}&_HLS_part=${want.part}`, null, 10_000);
          if (res.status !== 200) {
            fail(`blocking reload ${res.status}`);
            view = null;
            await sleep(500);
            continue;
          }
          blocking.push(performance.now() - started);
          const next = parseMediaPlaylist(res.body.toString());
          const advanced = next.parts.some((p) => p.msn > want.msn || (p.msn === want.msn && p.index >= want.part));
          view = next;
          if (!advanced) await sleep(Math.max(50, ((next.partTarget ?? 0.5) * 1000) / 2)); // not held: do not spin
          const newest = next.parts[next.parts.length - 1];
          if (!newest) continue;
          requests++;
          const part = await httpGet(agent, new URL(newest.uri, mediaPlaylistUrl).toString(), newest.byterange, 10_000);
          if (part.status !== 200 && part.status !== 206) fail(`part ${part.status}`);
        } catch (err) {
          fail((err as Error).message === 'timeout' ? 'timeout' : 'network');
          view = null;
          await sleep(200);
        }
      }
    } finally {
      agent.destroy();
    }
  };
  const before = await scrapeMetrics(proxyUrl);
  const cpu0 = await cpuSnapshot({ proxy: [stack.proxy!.pid] });
  const t0 = Date.now();
  await Promise.all(Array.from({ length: count }, (_, i) => client(i)));
  const elapsed = (Date.now() - t0) / 1000;
  const cpu1 = await cpuSnapshot({ proxy: [stack.proxy!.pid] });
  const afterText = await scrapeMetrics(proxyUrl);
  const delta = (name: string, labels = ''): number => (metricValue(afterText, name, labels) - metricValue(before, name, labels)) / elapsed;
  return {
    viewers: count,
    seconds: Math.round(elapsed * 10) / 10,
    requests,
    failed,
    failures,
    blockingReloadMs: roundStats(latencyStats(blocking)),
    upstreamRequestsPerSecond: round(delta('onair_proxy_backend_requests_total'), 1),
    playlistFillsPerSecond: round(delta('onair_proxy_playlist_cache_requests_total', 'outcome="fill"'), 1),
    directivePlaylistFillsPerSecond: round(delta('onair_proxy_playlist_cache_requests_total', 'outcome="fill",directives="yes"'), 1),
    segmentFillsPerSecond: round(delta('onair_proxy_segment_cache_requests_total', 'outcome="fill"'), 1),
    proxyCores: round((cpu1.proxy! - cpu0.proxy!) / elapsed, 3),
  };
}

// --- CPU ------------------------------------------------------------------------------------------

/** Every descendant of `pid` (from /proc's parent links). */
async function descendants(pid: number): Promise<number[]> {
  const parents = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(entry));
      parents.set(ppid, list);
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    for (const child of parents.get(queue.shift()!) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** Chromium's processes started by this process (Playwright launches it as our child). */
async function chromiumPids(): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await descendants(process.pid)) {
    const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
    if (/^chrom/i.test(comm.trim())) out.push(pid);
  }
  return out;
}

/** Busy CPU seconds of the whole machine (all cores), from /proc/stat. */
async function machineBusySeconds(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const [user, nice, system, , , irq, softirq, steal] = line.split(/\s+/).slice(1).map(Number) as number[];
  return (user! + nice! + system! + irq! + softirq! + steal!) / 100;
}

// --- one case ---------------------------------------------------------------------------------------

function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

async function runCase(c: LatencyCase): Promise<CaseResult> {
  const notes: string[] = [];
  const stream = `latency-${c.id}`;
  const stack = await startStack({ webReplicas: 3, proxy: true, ingestEnv: { HLS_LOW_LATENCY: c.lowLatency ? 'on' : 'off' } });
  let publisher: ManagedProcess | null = null;
  let browser: Browser | null = null;
  const stopPoll = new AbortController();
  try {
    const key = await addStream(stack.dataDir, stream, new Date(), c.ladder ? { ladder: c.ladder } : {});
    let spawnedWall: number | null = null;
    const firstPlayable = watchFirstPlayable(stack.proxyUrl!, stream, () => spawnedWall, stopPoll.signal);
    await sleep(300); // the poll is running before the publisher starts
    spawnedWall = Date.now();
    publisher = publish(stack.publishUrl(stream, key), { ...PUBLISHER, keyframeSeconds: c.keyframeSeconds, clock: true, label: `latency ${c.id}` });
    const first = await Promise.race([firstPlayable, sleep(40_000).then(() => null)]);
    stopPoll.abort();
    if (!first) throw new Error(`no playable part or segment through the proxy within 40 s\n${stack.diagnostics()}`);
    const mediaPlaylistUrl = first.mediaPlaylistUrl;
    // A viewer joins a broadcast under way: let the playlist fill its window first.
    const established = await waitFor('three segments listed', async () => {
      const view = parseMediaPlaylist(await (await fetch(mediaPlaylistUrl, { cache: 'no-store' })).text());
      return view.segments.length >= 3 ? view : undefined;
    }, 40_000, 250);
    const parts = established.parts.length > 0;
    if (!parts) notes.push('no #EXT-X-PART in the playlist: LL figures n/a');
    if (c.lowLatency && !parts) notes.push('HLS_LOW_LATENCY=on but the stream has no parts (LL-HLS not built, or not enabled)');

    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const counts = { all: 0, playlists: 0, media: 0 };
    page.on('request', (req) => {
      const u = new URL(req.url());
      if (!u.pathname.startsWith('/live/')) return;
      counts.all++;
      if (u.pathname.endsWith('.m3u8')) counts.playlists++;
      else counts.media++;
    });
    await installFrameClock(page);
    await installPlaybackMonitor(page);
    const openedWall = Date.now();
    await page.goto(`${stack.proxyUrl}/watch/${stream}`);
    await waitFor('the first decoded frame', async () => ((await readFrameClock(page)).firstDecodedWall !== null ? true : undefined), 60_000, 100);
    const startup = await readFrameClock(page);
    await sleep(SETTLE_S * 1000);

    // The window.
    const pids = async (): Promise<Record<string, number[]>> => ({
      ingest: [stack.ingest.pid, ...(await descendants(stack.ingest.pid))],
      web: stack.webs.map((w) => w.process.pid),
      proxy: [stack.proxy!.pid],
      publisher: [publisher!.pid],
      chromium: await chromiumPids(),
    });
    const windowPids = await pids();
    const cpu0 = await cpuSnapshot(windowPids);
    const machine0 = await machineBusySeconds();
    const counts0 = { ...counts };
    const quality = (): Promise<{ dropped: number; total: number }> =>
      page.evaluate(() => {
        const q = document.querySelector('video')?.getVideoPlaybackQuality();
        return { dropped: q?.droppedVideoFrames ?? 0, total: q?.totalVideoFrames ?? 0 };
      });
    const quality0 = await quality();
    // Stalls are counted over the window, like the latency; the start-up's own are kept apart.
    const startupStalls = await readPlaybackMonitor(page);
    await resetFrameClock(page);
    await resetPlaybackMonitor(page);
    const t0 = Date.now();
    const hlsSamples: number[] = [];
    const pdtSamples: number[] = [];
    let targetDuration: number | null = null;
    while (Date.now() - t0 < WINDOW_S * 1000) {
      const h = await readHlsLatency(page);
      if (h.hlsLatencyS !== null) hlsSamples.push(h.hlsLatencyS * 1000);
      if (h.pdtLatencyS !== null) pdtSamples.push(h.pdtLatencyS * 1000);
      targetDuration = h.targetDuration ?? targetDuration;
      await sleep(1000);
    }
    const elapsed = (Date.now() - t0) / 1000;
    const clock = await readFrameClock(page);
    const playback = await readPlaybackMonitor(page);
    const quality1 = await quality();
    const cpu1 = await cpuSnapshot(windowPids);
    const machine1 = await machineBusySeconds();
    const videoHeight = await page.evaluate(() => document.querySelector('video')?.videoHeight ?? null);
    await page.screenshot({ path: path.join(REPO_ROOT, 'test-artifacts', `latency-${c.id}.png`) }).catch(() => undefined);
    await browser.close();
    browser = null;

    const cpuCores: Record<string, number> = {};
    for (const name of Object.keys(cpu1)) cpuCores[name] = round((cpu1[name]! - cpu0[name]!) / elapsed, 3);
    cpuCores.machine = round((machine1 - machine0) / elapsed, 2);
    if (clock.failureRate > 0.05) notes.push(`${(clock.failureRate * 100).toFixed(1)} % of frames unreadable`);
    if (cpuCores.machine > os.cpus().length * 0.85) notes.push(`machine nearly saturated (${cpuCores.machine} of ${os.cpus().length} cores busy): figures inflated`);

    let held: HeldViewersResult | null = null;
    if (parts) held = await heldViewers(stack, mediaPlaylistUrl, HELD_VIEWERS, HELD_S);

    return {
      case: c,
      measuredAt: new Date().toISOString(),
      windowSeconds: round(elapsed, 1),
      settleSeconds: SETTLE_S,
      parts,
      partTarget: established.partTarget,
      targetDuration: targetDuration ?? established.targetDuration,
      glassToGlassMs: roundStats(clock),
      frames: clock.frames,
      decodeFailures: clock.failures,
      decodeFailureRate: round(clock.failureRate, 4),
      failureReasons: clock.failureReasons,
      missedCallbacks: clock.missed,
      droppedFrames: quality1.dropped - quality0.dropped,
      decodedByPlayer: quality1.total - quality0.total,
      hlsLatencyMs: roundStats(latencyStats(hlsSamples)),
      pdtLatencyMs: roundStats(latencyStats(pdtSamples)),
      startupMs: startup.firstPresentedWall === null ? null : Math.round(startup.firstPresentedWall - openedWall),
      stalls: { waiting: playback.waiting, bufferStalledErrors: playback.bufferStalledErrors, seconds: round(playback.stallMs / 1000, 2), fatal: playback.fatal, startupWaiting: startupStalls.waiting, startupSeconds: round(startupStalls.stallMs / 1000, 2) },
      firstPlayable: first.first,
      requestsPerViewerPerSecond: {
        all: round((counts.all - counts0.all) / elapsed, 2),
        playlists: round((counts.playlists - counts0.playlists) / elapsed, 2),
        media: round((counts.media - counts0.media) / elapsed, 2),
      },
      cpuCores,
      videoHeight,
      heldViewers: held,
      notes,
    };
  } finally {
    stopPoll.abort();
    await browser?.close().catch(() => undefined);
    await publisher?.stop();
    await stack.stop();
  }
}

function roundStats(s: LatencyStats): LatencyStats {
  const r = (x: number | null): number | null => (x === null ? null : Math.round(x));
  return { count: s.count, median: r(s.median), p95: r(s.p95), min: r(s.min), max: r(s.max) };
}

// --- report ---------------------------------------------------------------------------------------

const s1 = (ms: number | null | undefined): string => (ms === null || ms === undefined ? 'n/a' : (ms / 1000).toFixed(2));

function markdown(results: CaseResult[], machine: Record<string, string | number>, failed: Array<{ case: string; error: string }> = []): string {
  const lines = [
    `# Glass-to-glass latency (${machine.date}, ${machine.cpus} × ${machine.cpu}, Node ${machine.node}, commit ${machine.commit})`,
    '',
    `Publisher ${PUBLISHER.width}×${PUBLISHER.height} ${PUBLISHER.fps} fps ${PUBLISHER.videoKbps} kbit/s (x264 veryfast zerolatency CBR, no B-frames) with the frame clock; ingest + 3 web replicas + proxy; onair's /watch page in headless Chromium through the proxy; everything on this one machine (shared: see "machine" CPU).`,
    `Glass-to-glass = wall clock when a frame is presented (requestVideoFrameCallback expectedDisplayTime) − wall clock when ffmpeg made it (read from the picture), every presented frame over the window. Figures in seconds unless named.`,
    '',
    '| case | keyframes | LL | ladder | parts | g2g median | g2g p95 | hls.latency median | now − PDT median | startup | first frame → playable | stalls in the window (waiting / buffer-stalled / s; at start-up) | req/viewer/s | CPU ingest / web / proxy (cores) | machine busy | frames (unreadable) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    const fp = r.firstPlayable;
    lines.push(
      `| ${r.case.id} | ${r.case.keyframeSeconds} s | ${r.case.lowLatency ? 'on' : 'off'} | ${r.case.ladder ?? 'passthrough'} | ${r.parts ? `yes (${r.partTarget} s)` : 'no'} | **${s1(r.glassToGlassMs.median)}** | ${s1(r.glassToGlassMs.p95)} | ${s1(r.hlsLatencyMs.median)} | ${s1(r.pdtLatencyMs.median)} | ${s1(r.startupMs)} | ${fp ? `${s1(fp.firstFrameToPlayableMs)} (${fp.kind})` : 'n/a'} | ${r.stalls.waiting} / ${r.stalls.bufferStalledErrors} / ${r.stalls.seconds}; ${r.stalls.startupWaiting ?? 'n/a'} | ${r.requestsPerViewerPerSecond.all} | ${r.cpuCores.ingest} / ${r.cpuCores.web} / ${r.cpuCores.proxy} | ${r.cpuCores.machine} of ${machine.cpus} | ${r.frames} (${(r.decodeFailureRate * 100).toFixed(2)} %) |`,
    );
  }
  lines.push('', '## Held viewers (LL-HLS blocking reloads through the proxy)', '');
  lines.push('| case | viewers × s | requests | failed | blocking reload median / p95 ms | upstream req/s | playlist fills/s (with directives) | segment fills/s | proxy cores |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) {
    const h = r.heldViewers;
    lines.push(h ? `| ${r.case.id} | ${h.viewers} × ${h.seconds} | ${h.requests} | ${h.failed} ${Object.keys(h.failures).length ? JSON.stringify(h.failures) : ''} | ${h.blockingReloadMs.median?.toFixed(0)} / ${h.blockingReloadMs.p95?.toFixed(0)} | ${h.upstreamRequestsPerSecond} | ${h.playlistFillsPerSecond} (${h.directivePlaylistFillsPerSecond}) | ${h.segmentFillsPerSecond} | ${h.proxyCores} |` : `| ${r.case.id} | n/a (no parts) | | | | | | | |`);
  }
  lines.push('', '## Details', '');
  for (const r of results) {
    const fp = r.firstPlayable;
    lines.push(
      `- **${r.case.id}** (${r.measuredAt}, window ${r.windowSeconds} s after ${r.settleSeconds} s of playback): g2g min/median/p95/max ${s1(r.glassToGlassMs.min)} / ${s1(r.glassToGlassMs.median)} / ${s1(r.glassToGlassMs.p95)} / ${s1(r.glassToGlassMs.max)} s over ${r.glassToGlassMs.count} frames (${r.missedCallbacks} presented without a callback, ${r.droppedFrames} of ${r.decodedByPlayer} dropped by the player); target duration ${r.targetDuration} s; picture ${r.videoHeight}p; ` +
        `first playable: ${fp ? `${fp.kind} ${fp.uri}, publisher start → first frame ${s1(fp.spawnToFirstFrameMs)} s, → playable ${s1(fp.spawnToPlayableMs)} s` : 'n/a'}; ` +
        `requests/viewer/s playlists ${r.requestsPerViewerPerSecond.playlists}, media ${r.requestsPerViewerPerSecond.media}; CPU publisher ${r.cpuCores.publisher}, chromium ${r.cpuCores.chromium}` +
        `${r.stalls.fatal.length ? `; fatal hls.js errors ${r.stalls.fatal.join(', ')}` : ''}${r.notes.length ? `; notes: ${r.notes.join('; ')}` : ''}.`,
    );
  }
  for (const f of failed) lines.push(`- **${f.case}: failed in the last run**: ${f.error.split('\n')[0]}`);
  lines.push('', 'The machine is shared (2 cores; other work runs on it): latency and CPU figures are noisy, compare runs with their "machine busy" column in mind.', '');
  return lines.join('\n');
}

export interface LatencyReport {
  machine: Record<string, string | number>;
  cases: CaseResult[];
  /** Cases of the last run that failed (their error), not in `cases`. */
  failed?: Array<{ case: string; error: string }>;
}

export async function benchLatency(cases = selectedCases()): Promise<LatencyReport> {
  await mkdir(path.join(REPO_ROOT, 'test-artifacts'), { recursive: true });
  await mkdir(RESULTS, { recursive: true });
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  } catch {
    // not a checkout
  }
  const machine = { date: new Date().toISOString().slice(0, 10), cpus: os.cpus().length, cpu: os.cpus()[0]?.model.trim() ?? 'unknown', node: process.version, commit: `${commit} (+ working tree)` };
  const results: CaseResult[] = [];
  const failed: Array<{ case: string; error: string }> = [];
  for (const c of cases) {
    console.log(`latency case ${c.id}: keyframes ${c.keyframeSeconds} s, HLS_LOW_LATENCY=${c.lowLatency ? 'on' : 'off'}, ${c.ladder ? `ladder ${c.ladder}` : 'passthrough'}, window ${WINDOW_S} s …`);
    let r: CaseResult;
    try {
      r = await runCase(c);
    } catch (err) {
      // One broken case (e.g. LL mid-build) does not cost the others their figures.
      const message = (err as Error).message;
      console.log(`  FAILED: ${message.split('\n')[0]}`);
      failed.push({ case: c.id, error: message.slice(0, 4000) });
      continue;
    }
    results.push(r);
    console.log(`  g2g median ${s1(r.glassToGlassMs.median)} s, p95 ${s1(r.glassToGlassMs.p95)} s (hls.latency ${s1(r.hlsLatencyMs.median)} s); ${r.frames} frames, ${(r.decodeFailureRate * 100).toFixed(2)} % unreadable; machine ${r.cpuCores.machine} cores busy`);
  }
  // Merge with earlier results of other cases (a run may pick a few).
  let previous: CaseResult[] = [];
  try {
    previous = (JSON.parse(await readFile(path.join(RESULTS, 'latency.json'), 'utf8')) as LatencyReport).cases ?? [];
  } catch {
    // first run
  }
  const merged = [...previous.filter((p) => !results.some((r) => r.case.id === p.case.id)), ...results].sort((a, b) => LATENCY_CASES.findIndex((c) => c.id === a.case.id) - LATENCY_CASES.findIndex((c) => c.id === b.case.id));
  const report: LatencyReport = { machine, cases: merged, failed };
  await writeFile(path.join(RESULTS, 'latency.json'), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(path.join(RESULTS, 'latency.md'), markdown(merged, machine, failed));
  return { machine, cases: results, failed };
}

/** One row per case for run.ts's console table. */
export function latencyTable(report: LatencyReport): Record<string, Record<string, string | number>> {
  return Object.fromEntries(
    report.cases.map((r) => [
      r.case.id,
      {
        'g2g median s': s1(r.glassToGlassMs.median),
        'g2g p95 s': s1(r.glassToGlassMs.p95),
        'hls.latency s': s1(r.hlsLatencyMs.median),
        'startup s': s1(r.startupMs),
        'first frame→playable s': r.firstPlayable ? s1(r.firstPlayable.firstFrameToPlayableMs) : 'n/a',
        stalls: `${r.stalls.waiting}/${r.stalls.bufferStalledErrors}/${r.stalls.seconds}s`,
        'req/viewer/s': r.requestsPerViewerPerSecond.all,
        'cpu ingest/web/proxy': `${r.cpuCores.ingest}/${r.cpuCores.web}/${r.cpuCores.proxy}`,
        'machine busy': r.cpuCores.machine ?? 'n/a',
        unreadable: `${(r.decodeFailureRate * 100).toFixed(2)}%`,
        'held upstream req/s': r.heldViewers ? r.heldViewers.upstreamRequestsPerSecond : 'n/a',
        'held failed': r.heldViewers ? r.heldViewers.failed : 'n/a',
      },
    ]),
  );
}
