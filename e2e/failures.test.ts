/**
 * Failure scenarios with measured, printed outcomes (issue "Reliability and security", Failures).
 * One stack for the file: ingest with a real ffmpeg publisher, three web replicas, the proxy and
 * monitoring (embedded DuckDB store, Fluent receiver); web and proxy ship access records to it.
 * Each scenario brings its own 50 simulated hls.js-like viewers (loadtest/node, each on its own
 * 127.0.x.y address, through the proxy) and accounts for what they felt over a window that
 * contains the failure. Timings are printed (`# …`), never asserted tightly: a shared 2-core box.
 *
 *   1. a web replica SIGKILLed under 50 viewers
 *   2. a replica added (serves only once its checks pass), drained and stopped (nothing cut off,
 *      every access record it logged reaches monitoring)
 *   3. monitoring (the Fluent receiver) SIGKILLed for FAILURE_OUTAGE_S (60) s under 50 viewers,
 *      restarted on the same ports and data: no access record lost
 *
 * How "reached monitoring" is checked: monitoring's API exposes counts, not records, so the test
 * stops monitoring (SIGTERM, a clean exit), opens its DuckDB file read-only (DuckDB allows no reader
 * beside a writing process) and looks every record_id up, then starts monitoring again.
 * Senders spool while it is away, which is part of what is being tested anyway.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { storedRecordIds, tapLogs, type LoggedRecord, type LogTap } from '../common/testing/access-records.ts';
import { metricValue, scrapeMetrics } from '../common/testing/metrics.ts';
import { freePort, sleep, startService, waitFor, type ManagedProcess } from '../common/testing/processes.ts';
import { createStream, publish, restartMonitoring, startStack, waitForSegments, type Stack } from '../common/testing/stack.ts';
import type { FleetWindow } from '../loadtest/node/fleet-stats.ts';
import { ViewerFleet } from '../loadtest/node/viewer-fleet.ts';
import type { BackendView } from '../proxy/test/helpers.ts';

const STREAM = 'failures';
const VIEWERS = 50;
const OUTAGE_S = Number(process.env.FAILURE_OUTAGE_S ?? 60);
/** Small, so that a monitoring outage overflows memory and exercises the spool and its replay. */
const RECORD_QUEUE_MAX = 1000;
/** Concurrent large downloads under way when a replica is drained. */
const BURST = 90;
const STATE_CHANGED = 'backend state changed';
const DRAIN_REQUESTED = 'backend drain requested';

const n = (value: number): string => Math.round(value).toLocaleString('en-US').replace(/,/g, ' ');
const errorsOf = (w: FleetWindow): string => (Object.keys(w.errors).length === 0 ? 'none' : JSON.stringify(w.errors));

/** Sums of the onair_records_* series in a Prometheus text exposition. */
async function senderMetrics(urls: readonly string[]): Promise<Record<string, number> & { senders: number }> {
  const sums: Record<string, number> & { senders: number } = { senders: 0 };
  for (const url of urls) {
    const text = await (await fetch(`${url}/metrics`)).text();
    sums.senders += 1;
    for (const line of text.split('\n')) {
      if (!line.startsWith('onair_records_')) continue;
      const name = line.slice('onair_records_'.length, line.search(/[{ ]/));
      sums[name] = (sums[name] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sums;
}

/** Sum of one metric (all label sets) on a /metrics page. */
async function metricSum(url: string, name: string): Promise<number> {
  return metricValue(await scrapeMetrics(url), name);
}

describe('failure scenarios', () => {
  let stack: Stack;
  let publisher: ManagedProcess;
  let proxyTap: LogTap;
  const webTaps = new Map<string, LogTap>();
  const extraProcesses: ManagedProcess[] = [];
  const fleets: ViewerFleet[] = [];
  /** What happened when, to place a lost record if there is one. */
  const timeline: Array<{ at: number; what: string }> = [];
  const mark = (what: string): void => void timeline.push({ at: Date.now(), what });
  const placed = (records: LoggedRecord[]): string =>
    records
      .slice(0, 5)
      .map((r) => {
        const last = timeline.filter((e) => e.at <= r.at).at(-1);
        return `${r.record_id} ${r.path} ${r.status} client_ip ${JSON.stringify(r.client_ip)} at ${new Date(r.at).toISOString()} (${last ? `${r.at - last.at} ms after "${last.what}"` : 'before the first mark'})`;
      })
      .join('; ');

  const admin = async (method: string, route: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${stack.proxyUrl}${route}`, {
      method,
      headers: { authorization: `Bearer ${stack.opsToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: await res.json() };
  };
  const backends = async (): Promise<BackendView[]> => (await admin('GET', '/admin/backends')).body.backends as BackendView[];
  const stateChanges = (url: string): Array<{ at: number; from: string; to: string; reason: string }> =>
    proxyTap.events
      .filter((e) => e.msg === STATE_CHANGED && e.fields.backend === url)
      .map((e) => ({ at: e.at, from: String(e.fields.from), to: String(e.fields.to), reason: String(e.fields.reason) }));

  /** 50 viewers watching through the proxy, past their start; the next take() covers only what follows. */
  const startViewers = async (): Promise<ViewerFleet> => {
    const fleet = new ViewerFleet({ baseUrl: stack.proxyUrl!, stream: STREAM, joinPerSecond: 50 });
    fleets.push(fleet);
    await fleet.resize(VIEWERS);
    await sleep(4000);
    const warmup = fleet.take();
    assert.equal(warmup.failedRequests, 0, `viewers could not start: ${errorsOf(warmup)}`);
    return fleet;
  };

  /** Every record logged by a process that is still running (a SIGKILLed replica's unsent records are lost by design). */
  const liveRecords = (): LoggedRecord[] => [
    ...proxyTap.records,
    ...stack.webs.filter((w) => w.process.running).flatMap((w) => webTaps.get(w.process.name)!.records),
  ];

  /** Records monitoring refused (malformed) in its earlier runs: its counters restart with it. */
  let rejectedBefore = 0;
  const monitoringCounters = async (): Promise<Record<string, number>> => {
    const res = await fetch(`${stack.monitoring!.url}/api/pipeline`, { headers: { authorization: `Bearer ${stack.opsToken}` } });
    return ((await res.json()) as { counters: Record<string, number> }).counters;
  };
  const noteRejected = async (): Promise<void> => {
    rejectedBefore += (await monitoringCounters()).records_rejected_total ?? 0;
  };

  /** Stops monitoring cleanly, reads its store, starts it again. */
  const readStore = async (where?: string): Promise<Map<string, number>> => {
    await noteRejected();
    mark('monitoring SIGTERM to read its store');
    const stopped = await stack.monitoring!.process.stop();
    assert.equal(stopped.code, 0, `monitoring's clean exit\n${stack.monitoring!.process.tail()}`);
    try {
      return await storedRecordIds(stack.dataDir, where);
    } finally {
      mark('monitoring restarting');
      await restartMonitoring(stack);
      mark('monitoring ready again');
    }
  };

  before(async () => {
    const shipping = { RECORD_QUEUE_MAX: String(RECORD_QUEUE_MAX) };
    stack = await startStack({ webReplicas: 3, proxy: true, monitoring: true, webEnv: shipping, proxyEnv: shipping });
    proxyTap = tapLogs(stack.proxy!, [STATE_CHANGED, DRAIN_REQUESTED]);
    for (const w of stack.webs) webTaps.set(w.process.name, tapLogs(w.process));
    const key = await createStream(stack, STREAM);
    publisher = publish(stack.publishUrl(STREAM, key));
    await waitForSegments(stack, STREAM, 4, 30_000);
    await waitFor('the stream through the proxy', async () => (await fetch(`${stack.proxyUrl}/live/${STREAM}/index.m3u8`)).status === 200, 20_000);
    mark('stack up, stream live');
  });

  after(async () => {
    for (const fleet of fleets) await fleet.stop();
    await publisher?.stop();
    for (const proc of extraProcesses) await proc.stop();
    await stack?.stop();
  });

  test('1. a web replica SIGKILLed while 50 viewers watch: no failed request, no stall', async () => {
    mark('scenario 1');
    const fleet = await startViewers();
    try {
      await sleep(3000);
      const victim = stack.webs[1]!;
      const retriesBefore = (await backends()).reduce((s, b) => s + b.retries, 0);
      const errorResponsesBefore = await metricSum(stack.proxyUrl!, 'onair_proxy_error_responses_total');
      const killedAt = Date.now();
      mark(`${victim.process.name} SIGKILL`);
      victim.process.kill('SIGKILL');
      await victim.process.exited;
      const ejected = await waitFor('the proxy to take the replica out', () => stateChanges(victim.url).find((c) => c.to === 'unhealthy' && c.at >= killedAt), 15_000, 20);
      await sleep(8000); // the viewers keep watching on two replicas
      const window = fleet.take();
      const after = await backends();
      const killed = after.find((b) => b.url === victim.url);
      const retries = after.reduce((s, b) => s + b.retries, 0) - retriesBefore;
      const errorResponses = (await metricSum(stack.proxyUrl!, 'onair_proxy_error_responses_total')) - errorResponsesBefore;
      console.log(
        `# web replica SIGKILL under ${window.viewers} viewers: ${n(window.failedRequests)} failed viewer requests of ${n(window.requests)} ` +
          `(${window.seconds.toFixed(1)} s window around the kill; errors ${errorsOf(window)}), ${window.stalls} stalls, ${window.stalePlaylists} stale playlists; ` +
          `replica marked unhealthy ${ejected.at - killedAt} ms after the kill (${ejected.reason}); ` +
          `proxy retries ${retries}, 502/503 answers ${errorResponses}; the dead replica's errors ${JSON.stringify(Object.fromEntries(Object.entries(killed?.errors ?? {}).filter(([, v]) => v > 0)))}`,
      );
      assert.equal(window.failedRequests, 0, `failed viewer requests: ${errorsOf(window)}`);
      assert.equal(window.stalls, 0, 'stalls');
      assert.ok(window.requests > VIEWERS * 5, `requests served: ${window.requests}`);
      assert.notEqual(killed?.state, 'healthy', 'the dead replica left the rotation');
      assert.ok(ejected.at - killedAt < 10_000, `ejected after ${ejected.at - killedAt} ms`);
      assert.equal(errorResponses, 0, '502/503 answered by the proxy');
      // Out of the pool, so the next scenarios start from two healthy replicas and nothing failing.
      assert.equal((await admin('DELETE', `/admin/backends?url=${encodeURIComponent(victim.url)}`)).status, 200);
    } finally {
      await fleet.stop();
    }
  });

  test('2. a replica added serves only once healthy; drained and stopped: nothing cut off, all its records reach monitoring', async () => {
    mark('scenario 2');
    const fleet = await startViewers();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const instance = 'web-4';
    let web4: ManagedProcess | null = null;
    try {
      web4 = startService('web', {
        MEDIA_DIR: stack.mediaDir,
        DATA_DIR: stack.dataDir,
        WEB_HOST: '127.0.0.1',
        WEB_PORT: String(port),
        INSTANCE: instance,
        FLUENT_HOST: '127.0.0.1',
        FLUENT_PORT: String(stack.monitoring!.fluentPort),
        RECORD_QUEUE_MAX: String(RECORD_QUEUE_MAX),
      }, instance);
      extraProcesses.push(web4);
      const tap = tapLogs(web4, ['record shipping stopped']);

      // Added while its process is still starting: checks fail at first, then pass.
      const addedAt = Date.now();
      const added = await admin('POST', '/admin/backends', { url });
      assert.equal(added.status, 201, JSON.stringify(added.body));
      assert.equal(added.body.backend.state, 'pending');
      let requestsWhileNotHealthy = 0;
      let samplesWhileNotHealthy = 0;
      const healthy = await waitFor('the new replica to pass its checks', async () => {
        const change = stateChanges(url).find((c) => c.to === 'healthy');
        if (change) return change;
        const mine = (await backends()).find((b) => b.url === url);
        if (mine && mine.state !== 'healthy') {
          samplesWhileNotHealthy += 1;
          requestsWhileNotHealthy = Math.max(requestsWhileNotHealthy, mine.requests);
        }
        return undefined;
      }, 30_000, 50);
      await waitFor('the new replica to serve 30 viewer requests', () => proxyTap.records.filter((r) => r.backend === url).length >= 30, 20_000, 100);
      await sleep(3000);
      const servedBeforeHealthy = proxyTap.records.filter((r) => r.backend === url && r.at - r.duration_ms < healthy.at).length;
      const webRecordsBeforeHealthy = tap.records.filter((r) => r.at < healthy.at).length;
      const shareFrom = healthy.at + 1000;
      const relayed = proxyTap.records.filter((r) => r.at >= shareFrom && r.backend !== null && r.backend !== 'cache');
      const share = relayed.filter((r) => r.backend === url).length / Math.max(1, relayed.length);
      const firstServed = Math.min(...tap.records.map((r) => r.at - r.duration_ms));
      const healthyReplicas = (await backends()).filter((b) => b.state === 'healthy').length;

      // Drain while the viewers keep fetching and a burst of large downloads is under way (so the
      // replica has requests in flight when the drain arrives), then SIGTERM.
      const assetBytes = (await (await fetch(`${stack.webs[0]!.url}/assets/hls.min.js`)).arrayBuffer()).byteLength;
      const downloads = Array.from({ length: BURST }, (_, i) => download(`${stack.proxyUrl}/assets/hls.min.js`, `127.0.3.${2 + (i % 40)}`));
      // The drain request must not overtake them (it may travel on a connection already open):
      // wait until the replica has some of them in flight (or they have begun to arrive).
      await Promise.race([
        waitFor('downloads in flight on the replica', async () => ((await backends()).find((b) => b.url === url)?.inFlight ?? 0) > 0, 3000, 5).catch(() => undefined),
        Promise.all(downloads.map((d) => d.answered)),
      ]);
      const drained = await admin('POST', '/admin/backends/drain', { url });
      assert.equal(drained.status, 202, JSON.stringify(drained.body));
      const inFlightAtDrain = Number(drained.body.backend.inFlight);
      const burst = await Promise.all(downloads.map((d) => d.done));
      await sleep(500); // the proxy's records of the downloads
      const backendOf = new Map(proxyTap.records.filter((r) => r.request_id !== null).map((r) => [r.request_id!, r.backend]));
      const burstViaWeb4 = burst.filter((d) => d.requestId !== null && backendOf.get(d.requestId) === url).length;
      const burstBroken = burst.filter((d) => d.status !== 200 || d.bytes !== assetBytes || d.error);
      const drainAt = (await waitFor('the drain to be logged', () => proxyTap.events.find((e) => e.msg === DRAIN_REQUESTED && e.fields.backend === url), 5000, 20)).at;
      const removed = await waitFor('the drained replica to leave the pool', () => stateChanges(url).find((c) => c.to === 'removed'), 30_000, 20);
      await sleep(2000);
      const stopStarted = Date.now();
      const exit = await web4.stop();
      const stopMs = Date.now() - stopStarted;
      await web4.closed;
      await sleep(2000);
      const window = fleet.take();
      await fleet.stop();

      const webRecords = tap.records;
      const cutOff = webRecords.filter((r) => r.status === 499 || r.status >= 500);
      const proxyErrorsViaWeb4 = proxyTap.records.filter((r) => r.backend === url && (r.status >= 500 || r.status === 499));
      const arrivedLate = webRecords.filter((r) => r.at - r.duration_ms > drainAt + 1000);
      const lastStart = Math.max(...webRecords.map((r) => r.at - r.duration_ms)) - drainAt;
      // Requests the proxy began after the drain yet sent to the replica (segments excluded: a segment
      // request that waits for a cache fill under way names the fill's replica without a request of its own).
      const sentAfterDrain = proxyTap.records.filter((r) => r.backend === url && r.kind !== 'segment' && r.at - r.duration_ms > drainAt + 1);
      const shippingStopped = tap.events.find((e) => e.msg === 'record shipping stopped')?.fields ?? {};
      const spoolDir = path.join(stack.dataDir, 'spool', instance);
      const leftInSpool = await spoolRecords(spoolDir);

      const stored = await readStore(`instance = '${instance}'`);
      const missing = webRecords.filter((r) => !stored.has(r.record_id));
      const transitions = stateChanges(url).map((c) => `${c.from}→${c.to} +${c.at - addedAt} ms`).join(', ');
      console.log(
        `# replica added under ${VIEWERS} viewers: ${transitions}; ${requestsWhileNotHealthy} requests while not healthy (${samplesWhileNotHealthy} samples), ` +
          `${servedBeforeHealthy} proxy records / ${webRecordsBeforeHealthy} replica records before it turned healthy; first request served ${Math.round(firstServed - healthy.at)} ms after; ` +
          `share of relayed requests once healthy ${(100 * share).toFixed(0)} % (1 of ${healthyReplicas} healthy replicas)`,
      );
      console.log(
        `# replica drained under ${VIEWERS} viewers + ${BURST} concurrent ${n(assetBytes)}-byte downloads: ${inFlightAtDrain} requests in flight on it at the drain, removed ${removed.at - drainAt} ms later (${removed.reason}); ` +
          `downloads: ${burstViaWeb4} served by it, ${burstBroken.length} failed or short; SIGTERM → exit ${exit.code} in ${stopMs} ms; ` +
          `viewers: ${n(window.failedRequests)} failed of ${n(window.requests)} (errors ${errorsOf(window)}), ${window.stalls} stalls; ` +
          `cut off: ${cutOff.length} at the replica, ${proxyErrorsViaWeb4.length} at the proxy; requests reaching it >1 s after the drain: ${arrivedLate.length} (the last one started ${lastStart >= 0 ? '+' : ''}${Math.round(lastStart)} ms from the drain); proxy requests begun after the drain and sent to it: ${sentAfterDrain.length}`,
      );
      console.log(
        `# drained replica's access records: ${n(webRecords.length)} logged, ${n(webRecords.length - missing.length)} in monitoring's store, ${missing.length} missing; ` +
          `shipper on exit: ${shippingStopped.deliveredOnClose ?? '?'} delivered during shutdown, ${shippingStopped.spilledOnClose ?? '?'} spilled, ${shippingStopped.spooled ?? '?'} left in the spool (${leftInSpool} on disk)`,
      );

      assert.ok(stateChanges(url).length > 0 && healthy.at >= addedAt);
      assert.equal(requestsWhileNotHealthy, 0, 'requests sent to the replica before it was healthy');
      assert.equal(servedBeforeHealthy, 0, 'proxy records naming the replica before it was healthy');
      assert.equal(webRecordsBeforeHealthy, 0, 'requests the replica served before it was healthy');
      assert.ok(share > 0.1, `it takes a share of the traffic once healthy: ${share}`);
      assert.equal(exit.code, 0, web4.tail());
      assert.equal(window.failedRequests, 0, `failed viewer requests: ${errorsOf(window)}`);
      assert.equal(cutOff.length + proxyErrorsViaWeb4.length, 0, 'requests cut off by the drain');
      assert.deepEqual(burstBroken.slice(0, 3), [], 'downloads cut off or failed');
      assert.equal(sentAfterDrain.length, 0, `requests sent to the replica after the drain: ${placed(sentAfterDrain)}`);
      assert.equal(arrivedLate.length, 0, 'requests sent to a draining replica');
      assert.ok(webRecords.length >= 30);
      assert.equal(shippingStopped.spooled, 0, `records left in the spool of a replica that is gone: ${JSON.stringify(shippingStopped)}`);
      assert.equal(leftInSpool, 0, `records on disk in ${spoolDir}`);
      assert.deepEqual(missing.slice(0, 5).map((r) => r.record_id), [], `${missing.length} of ${webRecords.length} records never reached monitoring: ${placed(missing)}`);
    } finally {
      await fleet.stop();
      await web4?.stop();
    }
  });

  test(`3. monitoring down for ${OUTAGE_S} s under 50 viewers: no access record lost`, async () => {
    mark('scenario 3');
    const fleet = await startViewers();
    try {
      const senders = [stack.proxyUrl!, ...stack.webs.filter((w) => w.process.running).map((w) => w.url)];
      const before = await senderMetrics(senders);
      await noteRejected();
      const killedAt = Date.now();
      mark('monitoring SIGKILL');
      stack.monitoring!.process.kill('SIGKILL');
      await stack.monitoring!.process.exited;
      let peakQueued = 0;
      let peakSpooled = 0;
      while (Date.now() < killedAt + OUTAGE_S * 1000) {
        await sleep(Math.min(2000, killedAt + OUTAGE_S * 1000 - Date.now()));
        const m = await senderMetrics(senders);
        peakQueued = Math.max(peakQueued, m.queued ?? 0);
        peakSpooled = Math.max(peakSpooled, m.spooled ?? 0);
      }
      const restartAt = Date.now();
      mark('monitoring restarting after the outage');
      await restartMonitoring(stack);
      const readyAt = Date.now();
      mark('monitoring ready after the outage');
      const drained = await waitFor('the senders to deliver their backlog', async () => {
        const m = await senderMetrics(senders);
        return m.spooled === 0 && (m.queued ?? Infinity) <= 100 && m.receiver_up === senders.length ? m : undefined;
      }, 180_000, 250);
      const drainedAt = Date.now();
      const window = fleet.take();
      await fleet.stop();
      await sleep(3000); // the last records of the last requests
      const pipeline = { counters: await monitoringCounters() };
      const rejected = rejectedBefore + (pipeline.counters.records_rejected_total ?? 0);

      const duringOutage = liveRecords().filter((r) => r.at >= killedAt && r.at <= restartAt);
      const untilDrained = liveRecords().filter((r) => r.at <= drainedAt);
      const stored = await readStore();
      const missingOutage = duringOutage.filter((r) => !stored.has(r.record_id));
      const missingAll = untilDrained.filter((r) => !stored.has(r.record_id));
      const duplicates = [...stored.values()].filter((count) => count > 1).length;
      const noAddress = untilDrained.filter((r) => !r.client_ip).length;
      const delta = (name: string): number => (drained[name] ?? 0) - (before[name] ?? 0);
      const dropped = delta('dropped_total');
      console.log(
        `# monitoring SIGKILLed for ${((restartAt - killedAt) / 1000).toFixed(1)} s under ${VIEWERS} viewers: ${n(duringOutage.length)} access records logged during the outage ` +
          `(proxy + ${senders.length - 1} replicas), ${n(duringOutage.length - missingOutage.length)} found in the store after recovery, lost ${missingOutage.length}; ` +
          `peak ${n(peakQueued)} in memory / ${n(peakSpooled)} in spool files; ${n(delta('spilled_total'))} spilled, ${n(delta('replayed_total'))} replayed, ${n(delta('retried_total'))} retried, ${dropped} dropped`,
      );
      console.log(
        `# recovery: monitoring ready ${readyAt - restartAt} ms after the restart; backlog drained ${drainedAt - readyAt} ms after it was ready; ` +
          `receiver since restart: ${n(pipeline.counters.records_received_total ?? NaN)} received, ${n(pipeline.counters.records_stored_total ?? NaN)} stored, ${n(pipeline.counters.records_duplicate_total ?? NaN)} duplicates ignored; ` +
          `every record since the stack started: ${n(untilDrained.length)} logged, ${missingAll.length} missing, ${duplicates} stored twice, ${rejected} refused by monitoring as malformed (${noAddress} logged without a client address); ` +
          `viewers meanwhile: ${n(window.failedRequests)} failed of ${n(window.requests)}, ${window.stalls} stalls`,
      );
      assert.ok(duringOutage.length > OUTAGE_S * 10, `records logged during the outage: ${duringOutage.length}`);
      assert.deepEqual(missingOutage.slice(0, 5).map((r) => r.record_id), [], `${missingOutage.length} of ${duringOutage.length} outage records lost: ${placed(missingOutage)}`);
      assert.deepEqual(missingAll.slice(0, 5).map((r) => r.record_id), [], `${missingAll.length} of ${untilDrained.length} records lost: ${placed(missingAll)}`);
      assert.equal(duplicates, 0);
      assert.equal(rejected, 0, 'records monitoring refused as malformed (lost as well)');
      assert.equal(dropped, 0, 'records dropped by the senders');
      // ~100 proxy records/s: an outage of 30 s and more overflows the memory queue of RECORD_QUEUE_MAX.
      if (OUTAGE_S >= 30) assert.ok(delta('spilled_total') > 0, 'the outage outgrew the memory queue: the spool was used');
      assert.equal(window.failedRequests, 0, `viewers are not affected by monitoring: ${errorsOf(window)}`);
    } finally {
      await fleet.stop();
    }
  });
});

interface Download {
  status: number;
  bytes: number;
  requestId: string | null;
  error: string | null;
}

/** A GET read to its end from one source address (no keep-alive); the proxy's request id identifies its access record. */
function download(url: string, localAddress: string): { answered: Promise<void>; done: Promise<Download> } {
  let answered!: () => void;
  const answeredPromise = new Promise<void>((resolve) => (answered = resolve));
  const done = new Promise<Download>((resolve) => {
    const req = http.get(url, { localAddress, agent: false, headers: { 'accept-encoding': 'identity' } }, (res) => {
      answered();
      let bytes = 0;
      const requestId = (res.headers['x-request-id'] as string | undefined) ?? null;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, requestId, error: null }));
      res.on('error', (err) => resolve({ status: res.statusCode ?? 0, bytes, requestId, error: err.message }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', (err) => {
      answered();
      resolve({ status: 0, bytes: 0, requestId: null, error: err.message });
    });
  });
  return { answered: answeredPromise, done };
}

/** Records still waiting in a spool folder's NDJSON files (0 when the folder is gone). */
async function spoolRecords(dir: string): Promise<number> {
  const names = await readdir(dir).catch(() => [] as string[]);
  let lines = 0;
  for (const name of names.filter((f) => f.endsWith('.ndjson'))) {
    if ((await stat(path.join(dir, name))).size === 0) continue;
    lines += (await readFile(path.join(dir, name), 'utf8')).split('\n').filter(Boolean).length;
  }
  return lines;
}
