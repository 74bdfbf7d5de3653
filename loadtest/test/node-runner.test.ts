/**
 * The Node viewer runner against the real stack (ingest with a real ffmpeg publisher, web
 * replicas, the proxy, monitoring): each simulated viewer has its own loopback address and
 * session, so monitoring counts exactly as many viewers as run; the SLO verdict is its exit code;
 * a missing stream breaks the SLO with errors by kind; the control protocol the benchmark uses.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../../common/testing/processes.ts';
import { createStream, publish, startStack, waitForSegments, type Stack } from '../../common/testing/stack.ts';
import type { ManagedProcess } from '../../common/testing/processes.ts';
import { FleetProcess } from '../node/fleet-process.ts';

function runRunner(args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'loadtest', 'node', 'main.ts'), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output })));
}

describe('the Node viewer runner', () => {
  let stack: Stack;
  let publisher: ManagedProcess;

  before(async () => {
    stack = await startStack({ webReplicas: 2, proxy: true, monitoring: true });
    const key = await createStream(stack, 'runner');
    publisher = publish(stack.publishUrl('runner', key));
    await waitForSegments(stack, 'runner', 3);
  });

  after(async () => {
    await publisher?.stop();
    await stack?.stop();
  });

  it('holds 12 viewers at the SLO, and monitoring counts 12 addresses and 12 sessions', async () => {
    const run = await runRunner(['--base-url', stack.proxyUrl!, '--stream', 'runner', '--viewers', '12', '--duration', '12', '--report', '4', '--ops-token', stack.opsToken]);
    console.log(run.output);
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /SLO held for 12 viewers/);
    assert.match(run.output, /failed 0\/\d+/);
    assert.match(run.output, /monitoring counts 12 IPs, 12 sessions for 12 viewers running/, 'each viewer is one address and one session');
  });

  it('breaks the SLO for a stream that is not live, with the errors by kind, and exits 1', async () => {
    const run = await runRunner(['--base-url', stack.proxyUrl!, '--stream', 'nobody', '--viewers', '3', '--duration', '3', '--report', '3']);
    assert.equal(run.code, 1, run.output);
    assert.match(run.output, /SLO broken: no segment downloaded; error rate 100\.00 %.*http_4xx/);
  });

  it('is driven over its control protocol: resize, take a window, stop', async () => {
    const fleet = new FleetProcess({ baseUrl: stack.proxyUrl!, stream: 'runner' });
    try {
      await fleet.resize(4);
      await fleet.take();
      await new Promise((resolve) => setTimeout(resolve, 4000));
      const window = await fleet.take();
      assert.equal(window.viewers, 4);
      assert.ok(window.segments >= 4, `segments downloaded: ${window.segments}`);
      assert.ok(window.bytes > 0);
      assert.equal(window.failedRequests, 0);
      await fleet.resize(1);
      assert.equal((await fleet.take()).viewers, 1);
    } finally {
      await fleet.stop();
    }
  });
});
