import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { addStream } from '../src/stream-registry.ts';
import { testPatternArgs, type TestPatternOptions } from '../../cli/src/test-pattern.ts';
import { freePort, makeTempDir, ManagedProcess, startService, waitFor, waitForHttpOk } from './processes.ts';

/** Real processes for integration tests: ingest, N web replicas, the proxy, ffmpeg publishers. */
export interface Stack {
  mediaDir: string;
  dataDir: string;
  rtmpPort: number;
  controlUrl: string;
  ingest: ManagedProcess;
  webs: Array<{ port: number; url: string; process: ManagedProcess }>;
  proxyUrl: string | null;
  proxy: ManagedProcess | null;
  /** Present with `monitoring: true`: the service, its URL and its Fluent receiver port. */
  monitoring: MonitoringProcess | null;
  opsToken: string;
  publishUrl(stream: string, key: string): string;
  playlistPath(stream: string): string;
  /** Reads the public playlist from disk ('' when missing). */
  readPlaylist(stream: string): Promise<string>;
  /** Every process's recent output, for a failing test's message. */
  diagnostics(): string;
  stop(): Promise<void>;
}

export interface StackOptions {
  webReplicas?: number;
  proxy?: boolean;
  ingestEnv?: Record<string, string>;
  webEnv?: Record<string, string>;
  proxyEnv?: Record<string, string>;
  /** Start monitoring (embedded store, Fluent receiver) and ship web/proxy access records to it. */
  monitoring?: boolean;
  monitoringEnv?: Record<string, string>;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const temp = await makeTempDir('stack');
  const mediaDir = path.join(temp.dir, 'media');
  const dataDir = path.join(temp.dir, 'data');
  const rtmpPort = await freePort();
  const controlPort = await freePort();
  const opsToken = 'test-ops-token-0123456789';
  const processes: ManagedProcess[] = [];
  let monitoring: Stack['monitoring'] = null;
  const shippingEnv: Record<string, string> = {};
  const proxyPort = await freePort();
  if (options.monitoring) {
    monitoring = await startMonitoring({ mediaDir, dataDir, opsToken, env: { PROXY_URL: `http://127.0.0.1:${proxyPort}`, INGEST_URL: `http://127.0.0.1:${controlPort}`, ...options.monitoringEnv } });
    processes.push(monitoring.process);
    Object.assign(shippingEnv, { FLUENT_HOST: '127.0.0.1', FLUENT_PORT: String(monitoring.fluentPort), DATA_DIR: dataDir });
  }
  const ingest = startService('ingest', {
    MEDIA_DIR: mediaDir,
    DATA_DIR: dataDir,
    RTMP_HOST: '127.0.0.1',
    RTMP_PORT: String(rtmpPort),
    CONTROL_HOST: '127.0.0.1',
    CONTROL_PORT: String(controlPort),
    ...options.ingestEnv,
  });
  processes.push(ingest);
  const webs: Stack['webs'] = [];
  for (let i = 0; i < (options.webReplicas ?? 0); i++) {
    const port = await freePort();
    const proc = startService('web', { MEDIA_DIR: mediaDir, WEB_HOST: '127.0.0.1', WEB_PORT: String(port), INSTANCE: `web-${i + 1}`, ...shippingEnv, ...options.webEnv }, `web-${i + 1}`);
    processes.push(proc);
    webs.push({ port, url: `http://127.0.0.1:${port}`, process: proc });
  }
  let proxy: ManagedProcess | null = null;
  let proxyUrl: string | null = null;
  if (options.proxy && webs.length > 0) {
    proxy = startService('proxy', {
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: String(proxyPort),
      BACKENDS: webs.map((w) => w.url).join(','),
      HEALTH_INTERVAL_MS: '250',
      OPS_TOKEN: opsToken,
      INGEST_URL: `http://127.0.0.1:${controlPort}`,
      ...shippingEnv,
      ...(monitoring ? { MONITORING_URL: monitoring.url } : {}),
      ...options.proxyEnv,
    });
    processes.push(proxy);
    proxyUrl = `http://127.0.0.1:${proxyPort}`;
  }
  // restartMonitoring() replaces stack.monitoring.process: stop (and show) the current one too.
  const withCurrentMonitoring = (): ManagedProcess[] =>
    monitoring && !processes.includes(monitoring.process) ? [...processes, monitoring.process] : processes;
  const stack: Stack = {
    mediaDir,
    dataDir,
    rtmpPort,
    controlUrl: `http://127.0.0.1:${controlPort}`,
    ingest,
    webs,
    proxy,
    proxyUrl,
    monitoring,
    opsToken,
    publishUrl: (stream, key) => `rtmp://127.0.0.1:${rtmpPort}/live/${stream}?key=${key}`,
    playlistPath: (stream) => path.join(mediaDir, 'live', stream, 'index.m3u8'),
    readPlaylist: async (stream) => readFile(path.join(mediaDir, 'live', stream, 'index.m3u8'), 'utf8').catch(() => ''),
    diagnostics: () => withCurrentMonitoring().map((p) => p.tail(40)).join('\n'),
    stop: async () => {
      await Promise.all(withCurrentMonitoring().map((p) => p.stop()));
      await temp.remove();
    },
  };
  try {
    await waitForHttpOk(`${stack.controlUrl}/readyz`);
    for (const w of webs) await waitForHttpOk(`${w.url}/readyz`);
    if (proxyUrl) await waitForHttpOk(`${proxyUrl}/readyz`);
    if (monitoring) await waitForHttpOk(`${monitoring.url}/readyz`);
  } catch (err) {
    const diag = stack.diagnostics();
    await stack.stop();
    throw new Error(`${(err as Error).message}\n${diag}`);
  }
  return stack;
}

export interface MonitoringProcess {
  process: ManagedProcess;
  url: string;
  port: number;
  fluentPort: number;
  /** The environment it was started with (to start it again on the same data). */
  env: Record<string, string>;
}

/** monitoring (embedded store, Fluent receiver) on free loopback ports. */
export async function startMonitoring(options: { mediaDir: string; dataDir: string; opsToken: string; env?: Record<string, string> }): Promise<MonitoringProcess> {
  const port = await freePort();
  const fluentPort = await freePort();
  const env = {
    MEDIA_DIR: options.mediaDir,
    DATA_DIR: options.dataDir,
    MONITORING_HOST: '127.0.0.1',
    MONITORING_PORT: String(port),
    FLUENT_RECEIVER_PORT: String(fluentPort),
    OPS_TOKEN: options.opsToken,
    ...options.env,
  };
  return { process: startService('monitoring', env), url: `http://127.0.0.1:${port}`, port, fluentPort, env };
}

/**
 * Starts the stack's monitoring again after it was stopped or killed: same environment, so the same
 * ports (HTTP and Fluent receiver) and the same DATA_DIR (its DuckDB store). Waits until /readyz
 * answers; the new process becomes `stack.monitoring.process` and is stopped by `stack.stop()`.
 */
export async function restartMonitoring(stack: Stack, timeoutMs = 30_000): Promise<ManagedProcess> {
  const monitoring = stack.monitoring;
  if (!monitoring) throw new Error('the stack was started without monitoring');
  if (monitoring.process.running) throw new Error(`monitoring (pid ${monitoring.process.pid}) is still running: stop or kill it first`);
  await monitoring.process.closed;
  monitoring.process = startService('monitoring', monitoring.env, 'monitoring (restarted)');
  try {
    await waitForHttpOk(`${monitoring.url}/readyz`, timeoutMs);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${monitoring.process.tail()}`);
  }
  return monitoring.process;
}

export async function createStream(stack: Stack, stream: string): Promise<string> {
  return addStream(stack.dataDir, stream);
}

/** A small, cheap test pattern (the tests run on 2 cores next to everything else). */
export function publish(url: string, options: Partial<TestPatternOptions> = {}): ManagedProcess {
  const args = testPatternArgs({ url, width: 320, height: 180, fps: 15, videoKbps: 400, keyframeSeconds: 1, clock: false, ...options });
  const child: ChildProcess = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return new ManagedProcess('publisher', child);
}

export interface PlaylistView {
  text: string;
  mediaSequence: number;
  discontinuitySequence: number;
  targetDuration: number;
  segments: string[];
  discontinuities: number;
  ended: boolean;
}

export function viewPlaylist(text: string): PlaylistView {
  const num = (tag: string): number => Number(new RegExp(`^#${tag}:(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return {
    text,
    mediaSequence: num('EXT-X-MEDIA-SEQUENCE'),
    discontinuitySequence: num('EXT-X-DISCONTINUITY-SEQUENCE'),
    targetDuration: num('EXT-X-TARGETDURATION'),
    segments: text.split('\n').filter((l) => l && !l.startsWith('#')),
    discontinuities: text.split('\n').filter((l) => l === '#EXT-X-DISCONTINUITY').length,
    ended: text.includes('#EXT-X-ENDLIST'),
  };
}

export async function waitForSegments(stack: Stack, stream: string, count: number, timeoutMs = 20_000): Promise<PlaylistView> {
  return waitFor(`${stream} playlist with ${count} segments`, async () => {
    const view = viewPlaylist(await stack.readPlaylist(stream));
    return view.segments.length >= count ? view : undefined;
  }, timeoutMs);
}

export async function ingestStreams(stack: Stack): Promise<Array<Record<string, any>>> {
  const res = await fetch(`${stack.controlUrl}/streams`);
  return ((await res.json()) as { streams: Array<Record<string, any>> }).streams;
}
