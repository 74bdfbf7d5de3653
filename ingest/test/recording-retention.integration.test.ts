/**
 * Recording retention never deletes a recording that is being watched, with every part real:
 * ffmpeg publishes three broadcasts over RTMP (three recordings), a viewer fetches one of them
 * through the proxy and a web replica, their access records go to monitoring's Fluent receiver and
 * DuckDB store, and ingest's retention asks monitoring's /api/recordings before deleting.
 *
 * The recordings are made "old" by moving the end time in their session.json back two hours
 * (ARCHIVE_MAX_AGE_HOURS=1), at the moment each step needs it. The watch window is short (5 s).
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createLogger } from '../../common/src/logger.ts';
import { archiveSessionDir } from '../../common/src/media-layout.ts';
import { archivedSessions, waitForEndedRecording } from '../../common/testing/archive.ts';
import { metricValue, scrapeMetrics } from '../../common/testing/metrics.ts';
import { makeTempDir, sleep, startService, waitFor, waitForHttpOk, type ManagedProcess } from '../../common/testing/processes.ts';
import { createStream, publish, startMonitoring, startStack, waitForSegments, type MonitoringProcess, type Stack } from '../../common/testing/stack.ts';
import { applyRetention } from '../src/archive/archive-maintenance.ts';
import { RecordingWatchers } from '../src/archive/recording-watchers.ts';

const STREAM = 'replay';
const OPS_TOKEN = 'test-ops-token-0123456789';
const WINDOW_SECONDS = 5;

let temp: { dir: string; remove: () => Promise<void> };
let monitoring: MonitoringProcess;
let stack: Stack;
/** Every JSON log line of ingest from the start (ManagedProcess keeps only the last 5 000). */
const ingestLogs: Array<Record<string, unknown>> = [];

before(async () => {
  temp = await makeTempDir('watch-retention');
  monitoring = await startMonitoring({ mediaDir: path.join(temp.dir, 'monitoring-media'), dataDir: path.join(temp.dir, 'monitoring-data'), opsToken: OPS_TOKEN });
  await waitForHttpOk(`${monitoring.url}/readyz`, 30_000);
  const shipping = { FLUENT_HOST: '127.0.0.1', FLUENT_PORT: String(monitoring.fluentPort) };
  stack = await startStack({
    webReplicas: 1,
    proxy: true,
    ingestEnv: {
      ARCHIVE_MAX_AGE_HOURS: '1',
      ARCHIVE_RETENTION_INTERVAL_MS: '1000',
      ARCHIVE_WATCH_WINDOW_SECONDS: String(WINDOW_SECONDS),
      MONITORING_URL: monitoring.url,
      OPS_TOKEN,
    },
    webEnv: { ...shipping, SPOOL_DIR: path.join(temp.dir, 'spool', 'web-1') },
    proxyEnv: { ...shipping, SPOOL_DIR: path.join(temp.dir, 'spool', 'proxy'), MONITORING_URL: monitoring.url, INSTANCE: 'proxy-1' },
  });
  stack.ingest.onLine((line) => {
    if (!line.startsWith('{')) return;
    try {
      ingestLogs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* not JSON */
    }
  });
});

after(async () => {
  await stack?.stop();
  await monitoring?.process.stop();
  await temp?.remove();
});

function diagnostics(): string {
  return `${stack.diagnostics()}\n${monitoring.process.tail(30)}`;
}

/** One broadcast of ~3 s, ended cleanly; returns its session id once its recording has ended. */
async function record(key: string, known: readonly string[]): Promise<string> {
  const publisher = publish(stack.publishUrl(STREAM, key));
  try {
    await waitForSegments(stack, STREAM, 3, 30_000);
    await sleep(1000);
  } finally {
    await publisher.stop();
  }
  return waitForEndedRecording(stack.mediaDir, STREAM, { known });
}

/** Moves a recording's end time back two hours: older than ARCHIVE_MAX_AGE_HOURS=1. */
async function age(session: string): Promise<void> {
  const file = path.join(archiveSessionDir(stack.mediaDir, STREAM, session), 'session.json');
  const info = JSON.parse(await readFile(file, 'utf8')) as { ended: string };
  info.ended = new Date(Date.now() - 2 * 3600_000).toISOString();
  await writeFile(file, JSON.stringify(info));
}

/** A viewer's player fetching the recording through the proxy: its playlist and first segment. */
async function watch(session: string, sid: string): Promise<void> {
  const headers = { 'cmcd-session': `sid="${sid}"` };
  const base = `${stack.proxyUrl}/archive/${STREAM}/${session}`;
  const playlist = await fetch(`${base}/index.m3u8`, { headers });
  assert.equal(playlist.status, 200);
  const text = await playlist.text();
  const segment = text.split('\n').find((l) => l && !l.startsWith('#'))!;
  const media = await fetch(`${base}/${segment}`, { headers });
  assert.equal(media.status, 200);
  await media.arrayBuffer();
}

async function watchedNow(seconds = WINDOW_SECONDS): Promise<Array<{ stream: string; session: string; viewers: { ips: number; sessions: number }; lastRequestAt: string }>> {
  const res = await fetch(`${monitoring.url}/api/recordings?seconds=${seconds}`, { headers: { authorization: `Bearer ${OPS_TOKEN}` } });
  assert.equal(res.status, 200);
  return ((await res.json()) as { recordings: Array<{ stream: string; session: string; viewers: { ips: number; sessions: number }; lastRequestAt: string }> }).recordings;
}

async function ingestCounter(name: string, labels: string): Promise<number> {
  return metricValue(await scrapeMetrics(stack.controlUrl), name, labels);
}

const logsWith = (msg: string, session?: string) =>
  ingestLogs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith(msg) && (session === undefined || l.session === session));

let sessions: { watched: string; unwatched: string; later: string };

test('three recordings of real broadcasts; the API answers only with the ops token', async () => {
  try {
    const key = await createStream(stack, STREAM);
    const first = await record(key, []);
    const second = await record(key, [first]);
    const third = await record(key, [first, second]);
    sessions = { unwatched: first, watched: second, later: third };
    assert.deepEqual(await archivedSessions(stack.mediaDir, STREAM), [first, second, third]);
    assert.deepEqual(await watchedNow(), []);
    assert.equal((await fetch(`${monitoring.url}/api/recordings`)).status, 401);
    assert.equal((await fetch(`${monitoring.url}/api/recordings?seconds=0`, { headers: { authorization: `Bearer ${OPS_TOKEN}` } })).status, 400);
    // Fresh recordings are not due: retention has not asked anything nor deleted anything.
    assert.equal(logsWith('recording deleted').length, 0);
  } catch (err) {
    (err as Error).message += `\n${diagnostics()}`;
    throw err;
  }
});

test('an old recording someone watches is kept; the unwatched one is deleted; after the window, the watched one goes too', async () => {
  try {
    const { watched, unwatched, later } = sessions;
    // A player on the recording: it keeps fetching until the round has run (a real player polls too).
    await watch(watched, 'viewer-1');
    const seen = await waitFor('monitoring to see the replay', async () => (await watchedNow()).find((r) => r.session === watched), 15_000, 100);
    assert.deepEqual({ stream: seen.stream, ips: seen.viewers.ips, sessions: seen.viewers.sessions }, { stream: STREAM, ips: 1, sessions: 1 });

    await age(unwatched);
    await age(watched);
    let watching = true;
    const player = (async () => {
      while (watching) {
        await watch(watched, 'viewer-1');
        await sleep(500);
      }
    })();
    try {
      await waitFor('the unwatched old recording to be deleted', async () => !(await archivedSessions(stack.mediaDir, STREAM)).includes(unwatched), 20_000, 100);
      await waitFor('a round that kept the watched one', () => logsWith('recording kept', watched).length > 0, 10_000, 100);
    } finally {
      watching = false;
      await player;
    }
    assert.deepEqual(await archivedSessions(stack.mediaDir, STREAM), [watched, later], 'only the unwatched old recording was deleted');
    const kept = logsWith('recording kept', watched)[0]!;
    assert.equal(kept.due, 'age');
    assert.equal(kept.ips, 1);
    assert.equal(kept.windowSeconds, WINDOW_SECONDS);
    assert.ok((await ingestCounter('onair_ingest_archive_sessions_kept_watched_total', 'reason="age"')) >= 1);
    assert.equal(await ingestCounter('onair_ingest_archive_sessions_deleted_total', 'reason="age"'), 1);

    // Nobody fetches any more: once the window has passed, a later round deletes it.
    const lastRequestAt = Date.parse((await watchedNow(60)).find((r) => r.session === watched)!.lastRequestAt);
    await waitFor('the formerly watched recording to be deleted', async () => !(await archivedSessions(stack.mediaDir, STREAM)).includes(watched), 30_000, 100);
    assert.deepEqual(await archivedSessions(stack.mediaDir, STREAM), [later], 'the fresh recording stays');
    const deletedAt = Date.parse(String(logsWith('recording deleted', watched)[0]!.time));
    assert.ok(deletedAt >= lastRequestAt + WINDOW_SECONDS * 1000, `deleted ${deletedAt - lastRequestAt} ms after its last request; the window is ${WINDOW_SECONDS} s`);
    assert.equal(await ingestCounter('onair_ingest_archive_sessions_deleted_total', 'reason="age"'), 2);
    console.log(`# watched recording kept in ${logsWith('recording kept', watched).length} round(s), deleted ${((deletedAt - lastRequestAt) / 1000).toFixed(1)} s after its last request (window ${WINDOW_SECONDS} s)`);
  } catch (err) {
    (err as Error).message += `\n${diagnostics()}`;
    throw err;
  }
});

test('monitoring down: nothing is deleted, each round is logged and counted as deferred; once it is back, deletion happens', async () => {
  try {
    const { later } = sessions;
    await monitoring.process.stop();
    await age(later);
    const before = await ingestCounter('onair_ingest_archive_retention_deferred_total', 'reason="unreachable"');
    await waitFor('two deferred rounds', async () => (await ingestCounter('onair_ingest_archive_retention_deferred_total', 'reason="unreachable"')) >= before + 2, 15_000, 200);
    assert.deepEqual(await archivedSessions(stack.mediaDir, STREAM), [later], 'nothing deleted while monitoring is away');
    const deferred = logsWith('recording retention deferred').at(-1)!;
    assert.equal(deferred.level, 'warn');
    assert.equal(deferred.reason, 'unreachable');
    assert.equal(deferred.dueByAge, 1);
    assert.equal(await ingestCounter('onair_ingest_archive_sessions_deleted_total', 'reason="age"'), 2);
    assert.equal(stack.ingest.running, true, 'ingest keeps running');

    // Back, on the same ports and store.
    monitoring.process = startService('monitoring', monitoring.env, 'monitoring (restarted)');
    await waitForHttpOk(`${monitoring.url}/readyz`, 30_000);
    await waitFor('the old recording to be deleted once monitoring answers', async () => (await archivedSessions(stack.mediaDir, STREAM)).length === 0, 20_000, 100);
    assert.equal(await ingestCounter('onair_ingest_archive_sessions_deleted_total', 'reason="age"'), 3);
  } catch (err) {
    (err as Error).message += `\n${diagnostics()}`;
    throw err;
  }
});

test('under the size cap, a watched recording is skipped and the next oldest unwatched one goes instead', async () => {
  try {
    // Recordings made by hand under another stream (ended now: ingest's own age-based retention
    // leaves them alone); retention runs here, in this process, against the real monitoring.
    const make = async (session: string, bytes: number): Promise<void> => {
      const dir = archiveSessionDir(stack.mediaDir, 'sized', session);
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'a-0.m4s'), Buffer.alloc(bytes));
      await writeFile(path.join(dir, 'index.m3u8'), '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\na-0.m4s\n#EXT-X-ENDLIST\n');
      await writeFile(path.join(dir, 'session.json'), JSON.stringify({ stream: 'sized', session, started: new Date().toISOString(), ended: new Date().toISOString(), durationSeconds: 1, segments: 1, thumbnail: null }));
    };
    const [oldest, middle, newest] = ['20260101-000000-aaaaaa', '20260102-000000-bbbbbb', '20260103-000000-cccccc'];
    await make(oldest, 20_000);
    await make(middle, 20_000);
    await make(newest, 20_000);
    const headers = { 'cmcd-session': 'sid="viewer-2"' };
    assert.equal((await fetch(`${stack.proxyUrl}/archive/sized/${oldest}/index.m3u8`, { headers })).status, 200);
    await waitFor('monitoring to see the replay', async () => (await watchedNow(60)).some((r) => r.session === oldest), 15_000, 100);

    const kept: string[] = [];
    const deleted = await applyRetention({
      mediaDir: stack.mediaDir,
      maxAgeHours: 0,
      maxBytes: 45_000, // the three are ~60 kB: one has to go
      recording: () => new Set(),
      watchers: new RecordingWatchers({ monitoringUrl: monitoring.url, opsToken: OPS_TOKEN, windowSeconds: 60 }),
      logger: createLogger('retention-test', 'silent'),
      onKept: (reason) => kept.push(reason),
    });
    assert.deepEqual(deleted.map((d) => d.session), [middle]);
    assert.deepEqual(kept, ['size']);
    assert.deepEqual(await archivedSessions(stack.mediaDir, 'sized'), [oldest, newest]);
  } catch (err) {
    (err as Error).message += `\n${diagnostics()}`;
    throw err;
  }
});

test('the watch check against the real monitoring: a wrong token, no token and no monitoring are each a reason to defer', async () => {
  const ask = (options: { monitoringUrl?: string; opsToken?: string }) =>
    new RecordingWatchers({ monitoringUrl: options.monitoringUrl ?? monitoring.url, opsToken: options.opsToken, windowSeconds: 60 }).check();
  const ok = await ask({ opsToken: OPS_TOKEN });
  assert.equal(ok.ok, true);
  const wrong = await ask({ opsToken: 'not-the-ops-token-000' });
  assert.deepEqual(wrong.ok ? null : wrong.reason, 'unauthorized');
  const none = await ask({});
  assert.deepEqual(none.ok ? null : none.reason, 'no-token');
  const stopped: ManagedProcess = monitoring.process;
  await stopped.stop();
  const down = await ask({ opsToken: OPS_TOKEN });
  assert.deepEqual(down.ok ? null : down.reason, 'unreachable');
});
