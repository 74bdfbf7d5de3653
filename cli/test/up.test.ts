/**
 * `onair up` as a newcomer runs it: every service and the demo publisher start, the demo is
 * live through the proxy, and Ctrl-C (SIGINT) stops every process it started.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { freePort, makeTempDir, ManagedProcess, REPO_ROOT, waitFor } from '../../common/testing/processes.ts';

/** PIDs of processes whose environment carries this MEDIA_DIR: everything `onair up` started. */
async function processesWithMediaDir(mediaDir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = await readFile(`/proc/${entry}/environ`, 'latin1');
      if (environ.split('\0').includes(`MEDIA_DIR=${mediaDir}`)) pids.push(Number(entry));
    } catch {
      /* gone or not ours */
    }
  }
  return pids;
}

test('onair up: demo live through the proxy, Ctrl-C stops everything', async (t) => {
  const temp = await makeTempDir('up');
  t.after(temp.remove);
  const mediaDir = path.join(temp.dir, 'media');
  const ports = { RTMP_PORT: await freePort(), CONTROL_PORT: await freePort(), PROXY_PORT: await freePort(), MONITORING_PORT: await freePort(), FLUENT_RECEIVER_PORT: await freePort() };
  const webPorts = [await freePort(), await freePort(), await freePort()];
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'onair.js'), 'up'], {
    env: {
      ...process.env,
      MEDIA_DIR: mediaDir,
      DATA_DIR: path.join(temp.dir, 'data'),
      RTMP_PORT: String(ports.RTMP_PORT),
      CONTROL_PORT: String(ports.CONTROL_PORT),
      PROXY_PORT: String(ports.PROXY_PORT),
      MONITORING_PORT: String(ports.MONITORING_PORT),
      FLUENT_RECEIVER_PORT: String(ports.FLUENT_RECEIVER_PORT),
      WEB_PORTS: webPorts.join(','),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const up = new ManagedProcess('onair up', child);
  t.after(async () => {
    if (up.running) await up.stop(20_000);
    for (const pid of await processesWithMediaDir(mediaDir)) process.kill(pid, 'SIGKILL');
  });
  try {
    await waitFor('the demo to go live', () => up.output.some((l) => l.includes('the demo stream is live')), 60_000, 200);
    assert.ok(up.output.some((l) => l.includes(`http://localhost:${ports.PROXY_PORT}/watch/demo`)));
    assert.ok(up.output.some((l) => /Ops token: \S{20,}/.test(l)), 'a generated ops token is printed');
    const res = await fetch(`http://127.0.0.1:${ports.PROXY_PORT}/live/demo/index.m3u8`);
    assert.equal(res.status, 200);
    // Playable: a segment, or (low latency) the first parts, which is how soon it says "live".
    assert.match(await res.text(), /#EXTINF|#EXT-X-PART:/);
    const page = await fetch(`http://127.0.0.1:${ports.PROXY_PORT}/`);
    assert.match(await page.text(), /demo/);
    const started = await processesWithMediaDir(mediaDir);
    assert.ok(started.length >= 8, `launcher, ingest, 3 web, proxy, monitoring, demo publisher, muxer: ${started.length}`);
    // Ops: the dashboard and the API are reachable through the proxy with the printed token.
    const token = /Ops token: (\S+)/.exec(up.output.join('\n'))![1]!;
    const api = await waitFor('the demo in the monitoring API', async () => {
      const r = await fetch(`http://127.0.0.1:${ports.PROXY_PORT}/api/streams`, { headers: { authorization: `Bearer ${token}` } });
      const body = (await r.json()) as { streams?: Array<{ stream: string; live: boolean }> };
      return body.streams?.find((s) => s.stream === 'demo' && s.live);
    }, 20_000, 250);
    assert.ok(api);
    assert.equal((await fetch(`http://127.0.0.1:${ports.PROXY_PORT}/api/streams`)).status, 401);
  } catch (err) {
    (err as Error).message += `\n${up.tail(80)}`;
    throw err;
  }
  child.kill('SIGINT');
  const exit = await up.exited;
  assert.equal(exit.code, 0, up.tail());
  assert.deepEqual(await processesWithMediaDir(mediaDir), [], 'no process of the stack is left');
  const playlist = await readFile(path.join(mediaDir, 'live', 'demo', 'index.m3u8'), 'utf8');
  assert.match(playlist, /#EXT-X-ENDLIST/, 'the demo broadcast was ended cleanly');
});
