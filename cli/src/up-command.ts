/**
 * `onair up`: the whole stack as local processes with embedded defaults — ingest, three web
 * replicas, the proxy, monitoring (embedded database, Fluent receiver) — plus a demo publisher,
 * so a newcomer sees a live picture within a minute. Ctrl-C stops everything it started, in
 * order: demo publisher, ingest (ends broadcasts cleanly), proxy, web replicas, monitoring.
 */
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { DEFAULT_DATA_DIR, DEFAULT_MEDIA_DIR } from '../../common/src/config.ts';
import { addStream, readRegistry, rotateStreamKey } from '../../common/src/stream-registry.ts';
import { SupervisedProcess } from './supervised-process.ts';
import { testPatternArgs } from './test-pattern.ts';
import type { CommandIO } from './streams-command.ts';
import { signPlaybackToken } from '../../common/src/playback-token.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DEMO_STREAM = 'demo';

/** Local mode's archive cap when ARCHIVE_MAX_GB / ARCHIVE_MAX_AGE_HOURS are unset (the demo records forever). */
const LOCAL_ARCHIVE_MAX_GB = 5;

/** How long the demo link printed with playback tokens on stays valid. */
const DEMO_TOKEN_TTL_S = 12 * 3600;

function num(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${name} must be a port number, got ${JSON.stringify(value)}`);
  return n;
}

async function waitReady(url: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return true;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  return false;
}

export async function upCommand(args: string[], io: CommandIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const unknown = args.filter((a) => a !== '--no-demo');
  if (unknown.length) {
    io.err(`usage: onair up [--no-demo]   (unknown: ${unknown.join(' ')})`);
    return 2;
  }
  const demo = !args.includes('--no-demo');
  const mediaDir = path.resolve(env.MEDIA_DIR || DEFAULT_MEDIA_DIR);
  const dataDir = path.resolve(env.DATA_DIR || DEFAULT_DATA_DIR);
  const logDir = path.join(dataDir, 'logs');
  const rtmpPort = num(env, 'RTMP_PORT', 1935);
  const controlPort = num(env, 'CONTROL_PORT', 8001);
  const proxyPort = num(env, 'PROXY_PORT', 8080);
  const monitoringPort = num(env, 'MONITORING_PORT', 9000);
  const fluentPort = num(env, 'FLUENT_RECEIVER_PORT', 24224);
  const webPorts = (env.WEB_PORTS || '3001,3002,3003').split(',').map((p, i) => num({ p }, 'p', 3001 + i));
  const ffmpegPath = env.FFMPEG_PATH || 'ffmpeg';
  const host = 'localhost';

  try {
    await promisify(execFile)(ffmpegPath, ['-hide_banner', '-version'], { timeout: 10_000 });
  } catch {
    io.err(`onair: ffmpeg is needed (apt-get install ffmpeg, or set FFMPEG_PATH); "${ffmpegPath}" did not run`);
    return 1;
  }
  await mkdir(logDir, { recursive: true });
  await mkdir(mediaDir, { recursive: true });

  let opsToken = env.OPS_TOKEN;
  const generatedToken = !opsToken;
  opsToken ||= randomBytes(18).toString('base64url');

  const common = { ...env, MEDIA_DIR: mediaDir, DATA_DIR: dataDir, OPS_TOKEN: opsToken, LOG_LEVEL: env.LOG_LEVEL || 'info' };
  const echo = (line: string): void => io.err(line);
  const node = (name: string, service: string, extra: Record<string, string>): SupervisedProcess =>
    new SupervisedProcess({
      name,
      command: process.execPath,
      args: ['--import', 'tsx', path.join(REPO_ROOT, service, 'src', 'main.ts')],
      env: { ...common, ...extra },
      logFile: path.join(logDir, `${name}.log`),
      echo,
      ipc: true,
      restart: true,
    });

  // Access records go from web and proxy to monitoring, the Fluent receiver of local mode.
  const shipping = { FLUENT_HOST: '127.0.0.1', FLUENT_PORT: String(fluentPort) };
  const monitoring = node('monitoring', 'monitoring', {
    MONITORING_PORT: String(monitoringPort),
    MONITORING_HOST: '127.0.0.1',
    FLUENT_RECEIVER_PORT: String(fluentPort),
    PROXY_URL: `http://127.0.0.1:${proxyPort}`,
    // Live streams' quality ladder and ffmpeg CPU on the dashboard.
    INGEST_URL: `http://127.0.0.1:${controlPort}`,
  });
  // The demo broadcasts as long as onair runs and every broadcast is recorded: cap the local archive
  // unless the operator chose a retention.
  const localRetention: Record<string, string> = env.ARCHIVE_MAX_GB || env.ARCHIVE_MAX_AGE_HOURS ? {} : { ARCHIVE_MAX_GB: String(LOCAL_ARCHIVE_MAX_GB) };
  // Retention asks monitoring who watches a recording before deleting it (OPS_TOKEN is in `common`).
  const ingest = node('ingest', 'ingest', { RTMP_PORT: String(rtmpPort), CONTROL_PORT: String(controlPort), MONITORING_URL: `http://127.0.0.1:${monitoringPort}`, ...localRetention });
  // The playlist feed: on one machine the folder watch would do, but this keeps the path a multi-node install needs exercised.
  const feed = { INGEST_FEED_URL: `http://127.0.0.1:${controlPort}/playlists/feed` };
  const webs = webPorts.map((port, i) => node(`web-${i + 1}`, 'web', { WEB_PORT: String(port), INSTANCE: `web-${i + 1}`, ...feed, ...shipping }));
  const proxy = node('proxy', 'proxy', {
    PROXY_PORT: String(proxyPort),
    BACKENDS: webPorts.map((p) => `http://127.0.0.1:${p}`).join(','),
    MONITORING_URL: `http://127.0.0.1:${monitoringPort}`,
    // On-demand uploads (/uploads*) go to ingest's control port.
    INGEST_URL: `http://127.0.0.1:${controlPort}`,
    ...shipping,
  });
  let demoPublisher: SupervisedProcess | null = null;

  let stopping: Promise<void> | null = null;
  const stopAll = (): Promise<void> => {
    stopping ??= (async () => {
      io.err('\nonair: stopping…');
      await demoPublisher?.stop(5000);
      await ingest.stop();
      await proxy.stop();
      await Promise.all(webs.map((w) => w.stop()));
      // Last, so the records web and proxy flush while draining still arrive.
      await monitoring.stop();
      io.err('onair: all processes stopped');
    })();
    return stopping;
  };
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (): void => void stopAll().then(resolve);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });

  monitoring.start();
  ingest.start();
  for (const w of webs) w.start();
  proxy.start();

  const readiness = await Promise.all([
    waitReady(`http://127.0.0.1:${controlPort}/readyz`, 30_000),
    ...webPorts.map((p) => waitReady(`http://127.0.0.1:${p}/readyz`, 30_000)),
    waitReady(`http://127.0.0.1:${proxyPort}/readyz`, 30_000),
    waitReady(`http://127.0.0.1:${monitoringPort}/readyz`, 30_000),
  ]);
  if (readiness.some((ok) => !ok)) {
    io.err(`onair: not every service became ready within 30 s; logs are in ${logDir}`);
    await stopAll();
    return 1;
  }

  if (demo) {
    const streams = await readRegistry(dataDir);
    // The demo's secret is minted for this run only: the registry keeps just a hash.
    const key = streams.has(DEMO_STREAM) ? await rotateStreamKey(dataDir, DEMO_STREAM) : await addStream(dataDir, DEMO_STREAM);
    demoPublisher = new SupervisedProcess({
      name: 'demo-publisher',
      command: ffmpegPath,
      args: testPatternArgs({ url: `rtmp://127.0.0.1:${rtmpPort}/live/${DEMO_STREAM}?key=${key}`, label: 'onair demo' }),
      env,
      logFile: path.join(logDir, 'demo-publisher.log'),
      echo,
      ipc: false,
      restart: true,
    });
    demoPublisher.start();
  }

  // With playback tokens on (PLAYBACK_TOKEN_SECRET), the demo link and its readiness check carry one.
  const demoQuery = env.PLAYBACK_TOKEN_SECRET ? `?token=${signPlaybackToken(env.PLAYBACK_TOKEN_SECRET, DEMO_STREAM, Math.floor(Date.now() / 1000) + DEMO_TOKEN_TTL_S)}` : '';
  io.out('');
  io.out(`onair is up (local mode). Logs: ${logDir}`);
  io.out(`  Viewers:   http://${host}:${proxyPort}/`);
  if (demo) io.out(`  Demo:      http://${host}:${proxyPort}/watch/${DEMO_STREAM}${demoQuery}   (test pattern from the built-in demo publisher)`);
  io.out(`  OBS:       Server rtmp://${host}:${rtmpPort}/live  ·  Stream key <stream>?key=<secret>  (create one: npm run onair -- streams add <stream>)`);
  io.out(`  Ingest:    http://${host}:${controlPort}/streams`);
  io.out(`  Ops:       http://${host}:${proxyPort}/monitor   (dashboard: viewers, egress, backends; sign in with the ops token)`);
  io.out(`  Ops token: ${opsToken}${generatedToken ? '   (generated for this run; set OPS_TOKEN to choose one)' : ''}`);
  io.out('Press Ctrl-C to stop everything.');

  if (demo) {
    const live = await waitReady(`http://127.0.0.1:${proxyPort}/live/${DEMO_STREAM}/index.m3u8${demoQuery}`, 30_000);
    if (!stopping) io.out(live ? `onair: the demo stream is live → http://${host}:${proxyPort}/watch/${DEMO_STREAM}${demoQuery}` : 'onair: the demo stream did not start within 30 s; see the logs');
  }
  await stopped;
  return 0;
}
