/**
 * A small, bounded fuzz run of the RTMP port of a real ingest process: 500 connections from a
 * fixed seed (replay one with FUZZ_SEED=<n>), each sending random bytes or a mutated capture of a
 * publisher's handshake + connect/createStream/publish, some aimed at the path of a stream that
 * is live. Ingest must not crash, memory must not run away, the live stream must not notice,
 * and a real publish must work afterwards. Loopback only, well under a minute.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sleep, waitFor } from '../../common/testing/processes.ts';
import { createStream, publish, startStack, viewPlaylist, waitForSegments } from '../../common/testing/stack.ts';
import { assertStillAdvancing, logCount, logsSince, metricsText, metricValue, rssMiB } from './support/ingest-probe.ts';
import { Prng } from './support/prng.ts';
import { HANDSHAKE_SIZE, publishCapture, RawClient } from './support/rtmp-wire.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 1337);
const CONNECTIONS = Number(process.env.FUZZ_CONNECTIONS ?? 500);
const CONCURRENCY = 20;
const ROUNDS = 5;
const PLATEAU_MIB = 6;
const HANDSHAKE_END = 1 + 2 * HANDSHAKE_SIZE;

type Strategy = 'random' | 'version3-random' | 'flipped-capture' | 'truncated-capture' | 'spliced-capture' | 'capture-plus-noise';
const STRATEGIES: readonly Strategy[] = ['random', 'version3-random', 'flipped-capture', 'truncated-capture', 'spliced-capture', 'capture-plus-noise'];

/** One fuzz case: the bytes to send, split into a few writes. */
function makeCase(rng: Prng, port: number): { strategy: Strategy; pieces: Buffer[] } {
  const strategy = rng.pick(STRATEGIES);
  // Half aim at the live stream's path (refused as already live), half at a stream that is not live.
  const capture = publishCapture(port, rng.next() < 0.5 ? 'steady?key=guess' : `fuzz?key=${rng.bytes(4).toString('hex')}`, (n) => rng.bytes(n));
  let bytes: Buffer;
  switch (strategy) {
    case 'random':
      bytes = rng.bytes(rng.int(1, 4096));
      break;
    case 'version3-random':
      bytes = Buffer.concat([Buffer.from([3]), rng.bytes(rng.int(1, 6000))]);
      break;
    case 'flipped-capture': {
      bytes = Buffer.from(capture);
      for (let i = rng.int(1, 16); i > 0; i--) bytes[rng.int(HANDSHAKE_END, bytes.length - 1)] = rng.int(0, 255);
      break;
    }
    case 'truncated-capture':
      bytes = capture.subarray(0, rng.int(1, capture.length - 1));
      break;
    case 'spliced-capture': {
      const at = rng.int(HANDSHAKE_END, capture.length - 1);
      bytes = Buffer.concat([capture.subarray(0, at), rng.bytes(rng.int(1, 64)), capture.subarray(at + rng.int(0, 16))]);
      break;
    }
    case 'capture-plus-noise':
      bytes = Buffer.concat([capture, rng.bytes(rng.int(1, 2048))]);
      break;
  }
  const pieces: Buffer[] = [];
  let offset = 0;
  for (let n = rng.int(1, 3); n > 1 && offset < bytes.length; n--) {
    const cut = rng.int(offset, bytes.length);
    pieces.push(bytes.subarray(offset, cut));
    offset = cut;
  }
  pieces.push(bytes.subarray(offset));
  return { strategy, pieces: pieces.filter((p) => p.length > 0) };
}

test(`fuzz: ${CONNECTIONS} connections of random or mutated RTMP (seed from FUZZ_SEED, default 1337)`, { timeout: 120_000 }, async () => {
  console.log(`fuzz seed ${SEED} (replay: FUZZ_SEED=${SEED} node --import tsx --test ingest/test/rtmp-fuzz.test.ts)`);
  const stack = await startStack({ ingestEnv: { PUBLISH_IDLE_TIMEOUT_MS: '2000', RTMP_HANDSHAKE_TIMEOUT_MS: '3000', RTMP_MAX_CONNECTIONS: '64' } });
  const steady = publish(stack.publishUrl('steady', await createStream(stack, 'steady')));
  try {
    await createStream(stack, 'fuzz');
    const before = await waitForSegments(stack, 'steady', 3);
    await sleep(1000);
    const rssBefore = await rssMiB(stack.ingest.pid);
    const fromLog = logCount(stack);
    // Every case is drawn before any is sent: the run is the same for a seed whatever the timing.
    const rng = new Prng(SEED);
    const cases = Array.from({ length: CONNECTIONS }, () => ({ ...makeCase(rng, stack.rtmpPort), lingerMs: rng.int(100, 400), gapMs: rng.int(0, 5) }));
    const outcomes = { closedByIngest: 0, closedByClient: 0, gotHandshakeReply: 0, socketErrors: 0 };
    const byStrategy = new Map<Strategy, number>();
    const started = Date.now();
    let next = 0;
    let roundEnd = 0;
    const worker = async (): Promise<void> => {
      while (next < roundEnd) {
        const { strategy, pieces, lingerMs, gapMs } = cases[next++]!;
        byStrategy.set(strategy, (byStrategy.get(strategy) ?? 0) + 1);
        const client = new RawClient(stack.rtmpPort);
        try {
          await client.connected;
        } catch {
          outcomes.socketErrors += 1;
          continue;
        }
        for (const piece of pieces) {
          client.write(piece);
          await sleep(gapMs);
        }
        const closed = await client.closeAfter(lingerMs);
        if (closed.by === 'server') outcomes.closedByIngest += 1;
        else outcomes.closedByClient += 1;
        if (closed.received > 0) outcomes.gotHandshakeReply += 1;
        if (closed.error) outcomes.socketErrors += 1;
      }
    };
    // RSS after each of ROUNDS equal rounds. A leak grows in every round; the allocator keeping freed
    // message buffers grows in steps, in whichever round it happens to (measured: all of it in the
    // first or all of it in the last half), then stops.
    const rssAfterRounds: number[] = [];
    const roundEnds = Array.from({ length: ROUNDS }, (_, i) => Math.round((cases.length * (i + 1)) / ROUNDS));
    for (const end of roundEnds) {
      roundEnd = end;
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      assert.ok(stack.ingest.running, `ingest is still running\n${stack.ingest.tail()}`);
      await waitFor('RTMP connections back to the steady publisher alone', async () => metricValue(await metricsText(stack), 'onair_ingest_rtmp_connections') === 1, 10_000);
      await sleep(1500);
      rssAfterRounds.push(await rssMiB(stack.ingest.pid));
    }
    const fuzzMs = Date.now() - started;
    const rssAfter = rssAfterRounds.at(-1)!;

    const logs = logsSince(stack, fromLog);
    const reasons = new Map<string, number>();
    for (const line of logs) {
      if (line.msg === 'RTMP connection dropped' || line.msg === 'publish refused') {
        const key = `${line.msg === 'publish refused' ? 'publish refused' : 'dropped'}:${String(line.reason)}`;
        reasons.set(key, (reasons.get(key) ?? 0) + 1);
      }
    }
    console.log(`fuzz: ${CONNECTIONS} connections in ${(fuzzMs / 1000).toFixed(1)} s (incl. settling), ${CONCURRENCY} at a time; strategies ${JSON.stringify(Object.fromEntries(byStrategy))}`);
    console.log(`fuzz outcomes: ${JSON.stringify(outcomes)}`);
    console.log(`fuzz ingest log reasons: ${JSON.stringify(Object.fromEntries([...reasons].sort()))}`);
    console.log(`fuzz ingest RSS before ${rssBefore.toFixed(1)} MiB, after each round of ${cases.length / ROUNDS} connections ${rssAfterRounds.map((r) => r.toFixed(1)).join(' → ')} MiB (${(rssAfter - rssBefore >= 0 ? '+' : '') + (rssAfter - rssBefore).toFixed(1)} MiB in all)`);

    const fatal = logs.filter((l) => l.level === 'fatal' || /uncaught|unhandled/i.test(String(l.msg)));
    assert.deepEqual(fatal, [], 'no uncaught exception in ingest');
    // Bounded (the allocator keeps ~50 MiB of freed message buffers, measured), and not growing in every
    // round: a leak of more than ~60 KiB per connection grows RSS by PLATEAU_MIB in each later round.
    assert.ok(rssAfter - rssBefore < 128, `RSS grew by ${(rssAfter - rssBefore).toFixed(1)} MiB`);
    const laterGrowth = rssAfterRounds.slice(1).map((rss, i) => rss - rssAfterRounds[i]!);
    assert.ok(Math.min(...laterGrowth) < PLATEAU_MIB, `RSS grew in every round after the first: ${laterGrowth.map((g) => g.toFixed(1)).join(', ')} MiB`);
    assert.ok(outcomes.closedByIngest > CONNECTIONS / 2, 'most bad connections are closed by ingest itself');
    await assertStillAdvancing(stack, 'steady', before);
    assert.equal(viewPlaylist(await stack.readPlaylist('fuzz')).segments.length, 0, 'nothing was published for a fuzzed publish');

    const after = publish(stack.publishUrl('after-fuzz', await createStream(stack, 'after-fuzz')));
    try {
      await waitForSegments(stack, 'after-fuzz', 2);
    } finally {
      await after.stop();
    }
  } catch (err) {
    (err as Error).message += `\n${stack.diagnostics()}`;
    throw err;
  } finally {
    await steady.stop();
    await stack.stop();
  }
});
