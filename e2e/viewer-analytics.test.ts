/**
 * Viewer analytics end to end: player-like clients on distinct loopback addresses fetch a live
 * stream through the proxy; access records travel over the Fluent forward protocol to
 * monitoring (embedded DuckDB store); the API and the dashboard count them.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { launchChromium } from '../common/testing/browser.ts';
import { REPO_ROOT, sleep, startService, waitFor, waitForHttpOk, type ManagedProcess } from '../common/testing/processes.ts';
import { createStream, publish, startStack, viewPlaylist, type Stack } from '../common/testing/stack.ts';

const WINDOW_MS = 5000;

function get(url: string, options: { localAddress?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { localAddress: options.localAddress, headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** A player: every second the playlist (with a CMCD session id, as hls.js sends it) and its newest segment. */
function startViewer(stack: Stack, stream: string, localAddress: string, sid: string, extraHeaders: Record<string, string> = {}): { stop: () => Promise<void>; errors: string[] } {
  let running = true;
  const errors: string[] = [];
  const cmcd = `CMCD=${encodeURIComponent(`sid="${sid}"`)}`;
  const loop = (async () => {
    while (running) {
      try {
        const playlist = await get(`${stack.proxyUrl}/live/${stream}/index.m3u8?${cmcd}`, { localAddress, headers: extraHeaders });
        if (playlist.status === 200) {
          const newest = viewPlaylist(playlist.body.toString('utf8')).segments.at(-1);
          if (newest) await get(`${stack.proxyUrl}/live/${stream}/${newest}?${cmcd}`, { localAddress, headers: extraHeaders });
        }
      } catch (err) {
        errors.push((err as Error).message);
      }
      await sleep(1000);
    }
  })();
  return {
    errors,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

async function apiStreams(stack: Stack): Promise<Array<{ stream: string; live: boolean; viewers: { ips: number; sessions: number } }>> {
  const res = await fetch(`${stack.proxyUrl}/api/streams`, { headers: { authorization: `Bearer ${stack.opsToken}` } });
  assert.equal(res.status, 200);
  return ((await res.json()) as { streams: Array<{ stream: string; live: boolean; viewers: { ips: number; sessions: number } }> }).streams;
}

async function viewersOf(stack: Stack, stream: string): Promise<{ ips: number; sessions: number }> {
  return (await apiStreams(stack)).find((s) => s.stream === stream)?.viewers ?? { ips: 0, sessions: 0 };
}

describe('viewer analytics', () => {
  let stack: Stack;
  let publisher: ManagedProcess;
  before(async () => {
    stack = await startStack({ webReplicas: 3, proxy: true, monitoring: true, monitoringEnv: { VIEWER_WINDOW_MS: String(WINDOW_MS), REFRESH_MS: '500' } });
    const key = await createStream(stack, 'all-hands');
    publisher = publish(stack.publishUrl('all-hands', key));
    await waitFor('the stream through the proxy', async () => (await get(`${stack.proxyUrl}/live/all-hands/index.m3u8`)).status === 200, 20_000);
  });
  after(async () => {
    await publisher?.stop();
    await stack?.stop();
  });

  test('N distinct addresses count as exactly N viewers, then fall to 0 after the window', async () => {
    const n = 12;
    const viewers = Array.from({ length: n }, (_, i) => startViewer(stack, 'all-hands', `127.0.0.${i + 2}`, `session-${i}`));
    try {
      const counted = await waitFor(`${n} unique IPs in the API`, async () => {
        const v = await viewersOf(stack, 'all-hands');
        return v.ips === n ? v : undefined;
      }, 20_000, 250);
      assert.equal(counted.sessions, n);
      // Stays exact while they keep watching (no double counting across tiers or replicas).
      for (let i = 0; i < 4; i++) {
        await sleep(600);
        assert.equal((await viewersOf(stack, 'all-hands')).ips, n);
      }
    } finally {
      await Promise.all(viewers.map((v) => v.stop()));
    }
    assert.deepEqual(viewers.flatMap((v) => v.errors), []);
    await waitFor('the count to fall to 0 within the window', async () => (await viewersOf(stack, 'all-hands')).ips === 0, WINDOW_MS + 5000, 250);
    // The senders' loss counters (proxy + 3 web replicas) are part of the pipeline picture.
    const senders = await waitFor('sender counters of all four senders', async () => {
      const res = await fetch(`${stack.proxyUrl}/api/pipeline`, { headers: { authorization: `Bearer ${stack.opsToken}` } });
      const body = (await res.json()) as { senders: { instances: number; receiverConnected: number; dropped: number; spooled: number } | null };
      return body.senders && body.senders.instances === 4 && body.senders.receiverConnected === 4 ? body.senders : undefined;
    }, 20_000, 500);
    assert.equal(senders.dropped, 0);
    assert.equal(senders.spooled, 0);
  });

  test('N player sessions behind one address: 1 IP, N sessions', async () => {
    const viewers = Array.from({ length: 5 }, (_, i) => startViewer(stack, 'all-hands', '127.0.0.50', `nat-session-${i}`));
    try {
      const v = await waitFor('1 IP and 5 sessions', async () => {
        const c = await viewersOf(stack, 'all-hands');
        return c.ips === 1 && c.sessions === 5 ? c : undefined;
      }, 20_000, 250);
      assert.deepEqual(v, { ips: 1, sessions: 5 });
    } finally {
      await Promise.all(viewers.map((v) => v.stop()));
    }
    await waitFor('back to 0', async () => (await viewersOf(stack, 'all-hands')).ips === 0, WINDOW_MS + 5000, 250);
  });

  test('a client-supplied X-Forwarded-For changes neither client_ip nor the count', async () => {
    const viewers = Array.from({ length: 3 }, (_, i) =>
      startViewer(stack, 'all-hands', '127.0.0.60', `spoof-${i}`, { 'x-forwarded-for': `198.51.100.${i + 1}, 203.0.113.${i + 1}` }),
    );
    try {
      await waitFor('1 IP despite 3 forged addresses', async () => {
        const c = await viewersOf(stack, 'all-hands');
        return c.ips === 1 && c.sessions === 3;
      }, 20_000, 250);
      await sleep(1500);
      assert.equal((await viewersOf(stack, 'all-hands')).ips, 1);
    } finally {
      await Promise.all(viewers.map((v) => v.stop()));
    }
    const logged = stack.proxy!.jsonLogs().filter((l) => l.msg === 'access' && (l.access as { path: string }).path.startsWith('/live/all-hands/'));
    assert.ok(logged.every((l) => !['198.51.100.1', '203.0.113.1'].includes((l.access as { client_ip: string }).client_ip)));
    await waitFor('back to 0', async () => (await viewersOf(stack, 'all-hands')).ips === 0, WINDOW_MS + 5000, 250);
  });

  test('the dashboard in Chromium shows the viewer count change', async () => {
    await mkdir(path.join(REPO_ROOT, 'test-artifacts'), { recursive: true });
    const browser = await launchChromium();
    const viewers: Array<ReturnType<typeof startViewer>> = [];
    try {
      const page = await browser.newPage({ viewport: { width: 1366, height: 820 } });
      await page.goto(`${stack.proxyUrl}/monitor`);
      await page.fill('#token', stack.opsToken);
      await Promise.all([page.waitForURL(/\/monitor$/), page.click('button[type=submit]')]);
      const shown = async (): Promise<string | null> => page.textContent('[data-stream="all-hands"] [data-field="ips"]').catch(() => null);
      await waitFor('the stream card with 0 viewers', async () => (await shown()) === '0', 20_000, 250);
      for (let i = 0; i < 4; i++) viewers.push(startViewer(stack, 'all-hands', `127.0.0.${70 + i}`, `dash-${i}`));
      await waitFor('the dashboard to show 4 viewers', async () => (await shown()) === '4', 20_000, 250);
      await sleep(1500); // let the chart draw a few points
      await page.screenshot({ path: path.join(REPO_ROOT, 'test-artifacts', 'monitor.png') });
      const unauth = await fetch(`${stack.proxyUrl}/api/streams`);
      assert.equal(unauth.status, 401);
    } finally {
      await Promise.all(viewers.map((v) => v.stop()));
      await browser.close();
    }
  });
});

describe('no record is lost when the receiver is down', () => {
  test('monitoring stopped for 30 s while viewers watch, restarted: every record stored once, history kept', async () => {
    const stack = await startStack({ webReplicas: 2, proxy: true, monitoring: true, monitoringEnv: { VIEWER_WINDOW_MS: String(WINDOW_MS) } });
    let publisher: ManagedProcess | null = null;
    const viewers: Array<ReturnType<typeof startViewer>> = [];
    let monitoring: ManagedProcess = stack.monitoring!.process;
    try {
      const key = await createStream(stack, 'outage');
      publisher = publish(stack.publishUrl('outage', key));
      await waitFor('stream', async () => (await get(`${stack.proxyUrl}/live/outage/index.m3u8`)).status === 200, 20_000);
      for (let i = 0; i < 4; i++) viewers.push(startViewer(stack, 'outage', `127.0.1.${i + 2}`, `outage-${i}`));
      await waitFor('4 viewers before the outage', async () => (await viewersOf(stack, 'outage')).sessions === 4, 20_000, 250);
      const beforeOutage = new Date();

      assert.equal((await monitoring.stop()).code, 0, monitoring.tail());
      await sleep(30_000);
      monitoring = startService('monitoring', stack.monitoring!.env, 'monitoring (restarted)');
      await waitForHttpOk(`${stack.monitoring!.url}/readyz`);
      await sleep(3000);
      for (const v of viewers) await v.stop();
      viewers.length = 0;

      // History recorded before the restart is still there (embedded store on disk). The bucket
      // that straddles the outage is complete once the spooled records have been replayed.
      let lastPoints: Array<{ t: string; ips: number; sessions: number }> = [];
      await waitFor('history from before the restart', async () => {
        const res = await fetch(`${stack.monitoring!.url}/api/streams/outage/history?minutes=10`, { headers: { authorization: `Bearer ${stack.opsToken}` } });
        lastPoints = ((await res.json()) as { points: Array<{ t: string; ips: number; sessions: number }> }).points;
        // 4 player sessions (the test's own readiness probe may add one IP without a session).
        return lastPoints.some((p) => Date.parse(p.t) < beforeOutage.getTime() && p.sessions === 4 && p.ips >= 4);
      }, 30_000, 500).catch((err: Error) => {
        throw new Error(`${err.message}; outage began ${beforeOutage.toISOString()}; points: ${JSON.stringify(lastPoints.filter((p) => p.ips > 0))}`);
      });

      // Every record web and proxy served (their own logs) reaches the store exactly once.
      const sent = new Set<string>();
      for (const proc of [stack.proxy!, ...stack.webs.map((w) => w.process)]) {
        for (const line of proc.jsonLogs()) if (line.msg === 'access') sent.add((line.access as { record_id: string }).record_id);
      }
      await sleep(2000); // the last records in flight
      const stop = await monitoring.stop();
      assert.equal(stop.code, 0);
      const db = await DuckDBInstance.create(path.join(stack.dataDir, 'monitoring', 'access.duckdb'));
      const conn = await db.connect();
      const rows = (await conn.runAndReadAll('SELECT record_id FROM access_records')).getRowObjects() as Array<{ record_id: string }>;
      conn.closeSync?.();
      const stored = new Set(rows.map((r) => r.record_id));
      assert.equal(rows.length, stored.size, 'no record stored twice');
      const missing = [...sent].filter((id) => !stored.has(id));
      assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${sent.size} records never arrived`);
      console.log(`# outage: ${sent.size} records sent, ${stored.size} stored, 0 missing`);
    } finally {
      for (const v of viewers) await v.stop();
      await publisher?.stop();
      if (monitoring.running) await monitoring.stop();
      await stack.stop();
    }
  });
});
