/**
 * Bad RTMP input against a real ingest process, from raw sockets on 127.0.0.1, while a real
 * publisher (ffmpeg) streams alongside. For each case: the bad connection is closed by ingest
 * with a log line naming the reason and the client, ingest stays up, and the other stream's
 * playlist keeps advancing with no discontinuity.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sleep, waitFor, type ManagedProcess } from '../../common/testing/processes.ts';
import { createStream, publish, startStack, viewPlaylist, waitForSegments, type Stack } from '../../common/testing/stack.ts';
import { assertStillAdvancing, logCount, logsSince, metricsText, metricValue, waitForLog, type LogLine } from './support/ingest-probe.ts';
import { Prng } from './support/prng.ts';
import { c0c1, chunkMessage, handshake, MessageType, RawClient, setChunkSize, type ClosedConnection } from './support/rtmp-wire.ts';

const IDLE_MS = 2000;
const HANDSHAKE_MS = 4000;
const MAX_CONNECTIONS = 24;
const SEED = 424242;

describe('bad RTMP input, with another stream publishing', () => {
  const rng = new Prng(SEED);
  const random = (n: number): Buffer => rng.bytes(n);
  let stack: Stack;
  let steady: ManagedProcess;

  before(async () => {
    console.log(`bad-input PRNG seed ${SEED}`);
    stack = await startStack({
      ingestEnv: { PUBLISH_IDLE_TIMEOUT_MS: String(IDLE_MS), RTMP_HANDSHAKE_TIMEOUT_MS: String(HANDSHAKE_MS), RTMP_MAX_CONNECTIONS: String(MAX_CONNECTIONS) },
    });
    steady = publish(stack.publishUrl('steady', await createStream(stack, 'steady')));
    await waitForSegments(stack, 'steady', 3);
  });

  after(async () => {
    await steady?.stop();
    await stack?.stop();
  });

  /** Runs one bad client, then checks ingest and the steady stream. */
  const unaffected = async (what: string, run: () => Promise<void>): Promise<void> => {
    const before = viewPlaylist(await stack.readPlaylist('steady'));
    try {
      await run();
      assert.ok(stack.ingest.running, 'ingest is still running');
      assert.equal((await fetch(`${stack.controlUrl}/healthz`)).status, 200);
      await assertStillAdvancing(stack, 'steady', before);
      assert.ok(steady.running, 'the steady publisher is still connected');
    } catch (err) {
      (err as Error).message += ` [${what}]\n${stack.diagnostics()}`;
      throw err;
    }
  };

  const dropLogged = (from: number, reasons: readonly string[]) =>
    waitForLog(stack, from, `RTMP connection dropped (${reasons.join('|')})`, (l: LogLine) => l.msg === 'RTMP connection dropped' && l.client === '127.0.0.1' && reasons.includes(String(l.reason)), 10_000);

  const report = (what: string, closed: ClosedConnection, line: LogLine): void => {
    console.log(`${what}: closed by ${closed.by} after ${closed.afterMs} ms, ${closed.received} bytes sent back; log reason=${String(line.reason)} detail=${JSON.stringify(line.detail)}`);
  };

  test('garbage instead of a handshake: HTTP, RTMPE, TLS, random bytes', () =>
    unaffected('garbage handshake', async () => {
      const firstBytes: Array<[string, Buffer]> = [
        ['HTTP request', Buffer.from('GET /live/steady HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')],
        ['C0 = 6 (RTMPE)', c0c1(random, 6)],
        ['TLS ClientHello', Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), random(512)])],
        ['random bytes', Buffer.concat([Buffer.from([0x80 | rng.int(0, 0x7f)]), random(4999)])],
      ];
      for (const [what, bytes] of firstBytes) {
        const from = logCount(stack);
        const client = new RawClient(stack.rtmpPort);
        await client.connected;
        client.write(bytes);
        const closed = await client.closeAfter(5000);
        const line = await dropLogged(from, ['not-rtmp']);
        report(what, closed, line);
        assert.equal(closed.by, 'server');
        assert.equal(closed.received, 0, 'nothing sent back to a non-RTMP client');
      }
      // Random bytes that happen to start with version 3: the handshake reply goes out, then the chunk parser sees noise.
      const from = logCount(stack);
      const client = new RawClient(stack.rtmpPort);
      await client.connected;
      client.write(Buffer.concat([Buffer.from([3]), random(8000)]));
      const closed = await client.closeAfter(HANDSHAKE_MS + 3000);
      const line = await dropLogged(from, ['malformed', 'message-too-large', 'too-many-chunk-streams', 'bad-chunk-size', 'media-before-publish', 'idle', 'handshake-timeout']);
      report('version 3 then random bytes', closed, line);
      assert.equal(closed.by, 'server');
    }));

  test('truncated handshake: C0 and half of C1, then silence (closed at the idle timeout), or the client leaves', () =>
    unaffected('truncated handshake', async () => {
      const from = logCount(stack);
      const client = new RawClient(stack.rtmpPort);
      await client.connected;
      client.write(c0c1(random).subarray(0, 1 + 768));
      const closed = await client.closeAfter(IDLE_MS + 5000);
      const line = await dropLogged(from, ['idle']);
      report('C0 + half C1, silence', closed, line);
      assert.equal(closed.by, 'server');
      assert.ok(closed.afterMs >= IDLE_MS - 100 && closed.afterMs < IDLE_MS + 2000, `closed after ${closed.afterMs} ms (idle timeout ${IDLE_MS})`);

      const leaver = new RawClient(stack.rtmpPort);
      await leaver.connected;
      leaver.write(c0c1(random).subarray(0, 1 + 768));
      await sleep(300);
      leaver.close();
      await waitFor('the connection count back to the steady publisher alone', async () => metricValue(await metricsText(stack), 'onair_ingest_rtmp_connections') === 1, 5000);
    }));

  test('a valid handshake followed by garbage chunks', () =>
    unaffected('garbage chunks', async () => {
      for (let round = 0; round < 3; round++) {
        const from = logCount(stack);
        const client = new RawClient(stack.rtmpPort);
        await handshake(client, random);
        client.write(random(rng.int(200, 4000)));
        const closed = await client.closeAfter(HANDSHAKE_MS + 3000);
        const line = await dropLogged(from, ['malformed', 'message-too-large', 'too-many-chunk-streams', 'bad-chunk-size', 'media-before-publish', 'idle', 'handshake-timeout']);
        report(`handshake + garbage chunks #${round + 1}`, closed, line);
        assert.equal(closed.by, 'server');
      }
    }));

  test('a chunk declaring an absurd message length (16 MiB) is refused at once', () =>
    unaffected('absurd length', async () => {
      const from = logCount(stack);
      const client = new RawClient(stack.rtmpPort);
      await handshake(client, random);
      client.write(chunkMessage({ chunkStreamId: 3, type: MessageType.command, streamId: 0, payload: random(128), declaredLength: 0xffffff }).subarray(0, 12 + 128));
      const closed = await client.closeAfter(5000);
      const line = await dropLogged(from, ['message-too-large']);
      report('message length 0xFFFFFF', closed, line);
      assert.equal(closed.by, 'server');
      assert.ok(closed.afterMs < 2000, `closed after ${closed.afterMs} ms`);
    }));

  test('Set Chunk Size 0x7fffffff and 0 are refused', () =>
    unaffected('chunk size', async () => {
      for (const size of [0x7fffffff, 0]) {
        const from = logCount(stack);
        const client = new RawClient(stack.rtmpPort);
        await handshake(client, random);
        client.write(setChunkSize(size));
        const closed = await client.closeAfter(5000);
        const line = await dropLogged(from, ['bad-chunk-size']);
        report(`Set Chunk Size ${size}`, closed, line);
        assert.equal(closed.by, 'server');
      }
    }));

  test('a client that sends nothing is closed at the idle timeout; one that trickles, at the handshake timeout', () =>
    unaffected('silent and trickling clients', async () => {
      let from = logCount(stack);
      const silent = new RawClient(stack.rtmpPort);
      const closedSilent = await silent.closeAfter(IDLE_MS + 5000);
      report('silent client', closedSilent, await dropLogged(from, ['idle']));
      assert.equal(closedSilent.by, 'server');
      assert.ok(closedSilent.afterMs < IDLE_MS + 2000, `closed after ${closedSilent.afterMs} ms`);

      from = logCount(stack);
      const trickler = new RawClient(stack.rtmpPort);
      await trickler.connected;
      trickler.write(Buffer.from([3]));
      const drip = setInterval(() => trickler.write(random(1)), IDLE_MS / 2);
      const closedTrickler = await trickler.closeAfter(HANDSHAKE_MS + 5000);
      clearInterval(drip);
      report('trickling client (1 byte per second)', closedTrickler, await dropLogged(from, ['handshake-timeout']));
      assert.equal(closedTrickler.by, 'server');
      assert.ok(closedTrickler.afterMs >= HANDSHAKE_MS - 100 && closedTrickler.afterMs < HANDSHAKE_MS + 2000, `closed after ${closedTrickler.afterMs} ms`);
    }));

  test(`half-open connections up to the cap (${MAX_CONNECTIONS}) and beyond: the extra ones are refused, all are closed by the handshake timeout, publishing works afterwards`, () =>
    unaffected('connection flood', async () => {
      const from = logCount(stack);
      const clients: RawClient[] = [];
      for (let i = 0; i < MAX_CONNECTIONS + 6; i++) {
        const client = new RawClient(stack.rtmpPort);
        clients.push(client);
        await client.connected.catch(() => undefined);
        client.write(c0c1(random).subarray(0, 1 + rng.int(1, 1500)));
      }
      // Keep them alive past the idle timeout: only the handshake deadline can close them.
      const drip = setInterval(() => clients.forEach((c) => c.write(Buffer.from([0]))), IDLE_MS / 3);
      try {
        const during = viewPlaylist(await stack.readPlaylist('steady'));
        await assertStillAdvancing(stack, 'steady', during, 1);
        const ports = clients.map((c) => c.localPort);
        const results = await Promise.all(clients.map((c) => c.closeAfter(HANDSHAKE_MS + 6000)));
        // A client sees its socket close before ingest's log line reaches us: wait for the lines.
        const dropLines = () => logsSince(stack, from).filter((l) => l.msg === 'RTMP connection dropped' && ports.includes(l.port as number));
        await waitFor('a log line for every flood connection', () => dropLines().length >= clients.length, 5000).catch(() => undefined);
        const logs = dropLines();
        const unexplained = clients.flatMap((_c, i) => (logs.some((l) => l.port === ports[i]) ? [] : [{ port: ports[i], ...results[i] }]));
        const limited = logs.filter((l) => l.reason === 'connection-limit').length;
        const timedOut = logs.filter((l) => l.reason === 'handshake-timeout').length;
        const byServer = results.filter((r) => r.by === 'server').length;
        console.log(`flood: ${clients.length} half-open connections (cap ${MAX_CONNECTIONS}, 1 held by the steady publisher): ${limited} refused at the cap, ${timedOut} closed by the handshake timeout, ${byServer} closed by the server in all`);
        assert.equal(byServer, clients.length, 'every one was closed by ingest');
        assert.ok(limited >= clients.length - (MAX_CONNECTIONS - 1), `at least ${clients.length - (MAX_CONNECTIONS - 1)} refused at the cap (got ${limited})`);
        assert.equal(limited + timedOut, clients.length, `closed without a log line of ours: ${JSON.stringify(unexplained)}; reasons: ${JSON.stringify(logs.map((l) => l.reason))}`);
        assert.ok(logs.every((l) => l.client === '127.0.0.1'));
      } finally {
        clearInterval(drip);
        clients.forEach((c) => c.close());
      }
      await waitFor('connections back to the steady publisher alone', async () => metricValue(await metricsText(stack), 'onair_ingest_rtmp_connections') === 1, 5000);
      const metrics = await metricsText(stack);
      for (const reason of ['connection-limit', 'handshake-timeout', 'idle', 'not-rtmp', 'message-too-large', 'bad-chunk-size']) {
        assert.ok(metricValue(metrics, 'onair_ingest_rtmp_connections_dropped_total', `reason="${reason}"`) >= 1, `dropped{reason=${reason}} counted`);
      }
      const late = publish(stack.publishUrl('late', await createStream(stack, 'late')));
      try {
        await waitForSegments(stack, 'late', 2);
      } finally {
        await late.stop();
      }
    }));

  test('nothing above crashed or threw out of ingest', () => {
    const fatal = stack.ingest.jsonLogs().filter((l) => l.level === 'fatal' || /uncaught|unhandled/i.test(String(l.msg)));
    assert.deepEqual(fatal, []);
  });
});
