/**
 * The RTMP adapter in-process, driven by raw sockets: what reaches a live broadcast's FLV tap,
 * and which connections it drops, with which reason. (rtmp-bad-input.test.ts does the same
 * against a real ingest process with a real publisher alongside.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { createTrustList } from '../../common/src/access-record.ts';
import { sleep, waitFor } from '../../common/testing/processes.ts';
import { RtmpServer, type DropReason, type Publisher } from '../src/rtmp/rtmp-server.ts';
import { RTMP_LIMITS } from '../src/rtmp/protocol-guard.ts';
import { Prng } from './support/prng.ts';
import { chunkMessage, command, connectCommand, createStreamCommand, handshake, MessageType, publishCommand, RawClient, setChunkSize, videoMessage } from './support/rtmp-wire.ts';

const rng = new Prng(20260101);
const random = (n: number): Buffer => rng.bytes(n);

interface Events {
  refused: Array<{ stream: string; reason: string }>;
  dropped: Array<{ client: string; reason: DropReason }>;
  networkRefused: string[];
  tap: Buffer[];
}

async function startAdapter(options: { handshakeTimeoutMs?: number; allow?: string[] } = {}): Promise<{ server: RtmpServer; port: number; events: Events }> {
  const events: Events = { refused: [], dropped: [], networkRefused: [], tap: [] };
  const server = new RtmpServer({
    port: 0,
    host: '127.0.0.1',
    idleTimeoutMs: 10_000,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
    maxConnections: 64,
    allowedNetworks: options.allow ? createTrustList(options.allow) : null,
    logger: pino({ level: 'silent' }),
    handlers: {
      authorizePublish: (request) => (request.query.key === 'good' ? { accept: true } : { accept: false, reason: 'wrong-key' }),
      publishStarted: (publisher: Publisher) => void publisher.attachTap((flv) => events.tap.push(Buffer.from(flv))),
      publishEnded: () => undefined,
      publishRefused: (request, reason) => events.refused.push({ stream: request.stream, reason }),
      connectionRefused: (client) => events.networkRefused.push(client),
      connectionDropped: (client, reason) => events.dropped.push({ client, reason }),
    },
  });
  return { server, port: await server.listen(), events };
}

const tapText = (events: Events): string => Buffer.concat(events.tap).toString('latin1');

describe('RTMP adapter', () => {
  let server: RtmpServer;
  let port: number;
  let events: Events;
  let legit: RawClient;

  before(async () => {
    ({ server, port, events } = await startAdapter({ handshakeTimeoutMs: 1500 }));
    legit = new RawClient(port);
    await handshake(legit, random);
    legit.write(Buffer.concat([connectCommand('live', `rtmp://127.0.0.1:${port}/live`), createStreamCommand(), publishCommand('s?key=good')]));
    await waitFor('the legit publisher to be accepted', () => events.tap.length > 0, 5000, 20);
    legit.write(videoMessage(Buffer.from('LEGIT-MARKER')));
    await waitFor('the legit frame in the tap', () => tapText(events).includes('LEGIT-MARKER'), 5000, 20);
  });

  after(() => {
    legit?.close();
    server?.close();
  });

  const dropOf = async (client: RawClient): Promise<DropReason | undefined> => {
    const before = events.dropped.length;
    await client.closeAfter(5000);
    await sleep(20);
    return events.dropped.slice(before)[0]?.reason;
  };

  test('media sent after a refused publish (same write) never reaches the live broadcast it names', async () => {
    for (const key of ['bad', 'good']) {
      // Wrong key or right key, the stream is already live: refused, and the frame must go nowhere.
      const intruder = new RawClient(port);
      await handshake(intruder, random);
      intruder.write(Buffer.concat([connectCommand('live', `rtmp://127.0.0.1:${port}/live`), createStreamCommand(), publishCommand(`s?key=${key}`), videoMessage(Buffer.from(`EVIL-MARKER-${key}`))]));
      const closed = await intruder.closeAfter(3000);
      assert.equal(closed.by, 'server');
    }
    await sleep(200);
    // The adapter checks "already live" before the key: both are refused for that reason.
    assert.deepEqual(events.refused.map((r) => r.reason), ['already-live', 'already-live']);
    assert.ok(!tapText(events).includes('EVIL-MARKER'), 'no frame of a refused publisher in the live tap');
    assert.ok(!legit.isClosed, 'the live publisher is still connected');
  });

  test('media before any publish: dropped', async () => {
    const client = new RawClient(port);
    await handshake(client, random);
    client.write(Buffer.concat([connectCommand('live', `rtmp://127.0.0.1:${port}/live`), videoMessage(Buffer.from('EARLY'))]));
    assert.equal(await dropOf(client), 'media-before-publish');
    assert.ok(!tapText(events).includes('EARLY'));
  });

  test('a first byte other than version 3: refused before any reply', async () => {
    for (const first of [0x47, 0x16, 0x06, 0x00]) {
      const client = new RawClient(port);
      await client.connected;
      client.write(Buffer.concat([Buffer.from([first]), random(1536)]));
      assert.equal(await dropOf(client), 'not-rtmp');
      assert.equal(client.received, 0, 'no S0/S1 for a non-RTMP client');
    }
  });

  test('a declared message length over the limit is refused before anything is allocated', async () => {
    const client = new RawClient(port);
    await handshake(client, random);
    client.write(chunkMessage({ chunkStreamId: 3, type: MessageType.command, streamId: 0, payload: random(100), declaredLength: 0xffffff }).subarray(0, 12 + 100));
    assert.equal(await dropOf(client), 'message-too-large');
    // Many chunk streams each announcing a message under the per-message limit: the total is capped.
    const hog = new RawClient(port);
    await handshake(hog, random);
    const parts: Buffer[] = [];
    for (let csid = 3; csid < 3 + 8; csid++) {
      parts.push(chunkMessage({ chunkStreamId: csid, type: MessageType.command, streamId: 0, payload: random(128), declaredLength: RTMP_LIMITS.maxMessageBytesBeforePublish }).subarray(0, 12 + 128));
    }
    hog.write(Buffer.concat(parts));
    assert.equal(await dropOf(hog), 'message-too-large');
  });

  test('too many chunk streams: dropped', async () => {
    const client = new RawClient(port);
    await handshake(client, random);
    const parts: Buffer[] = [];
    for (let csid = 3; csid < 63; csid++) parts.push(chunkMessage({ chunkStreamId: csid, type: 3, streamId: 0, payload: Buffer.alloc(4) }));
    client.write(Buffer.concat(parts));
    assert.equal(await dropOf(client), 'too-many-chunk-streams');
  });

  test('Set Chunk Size 0, 0x7fffffff or without its payload: dropped; 4096 is fine', async () => {
    for (const size of [0, 0x7fffffff, 0x80000000]) {
      const client = new RawClient(port);
      await handshake(client, random);
      client.write(setChunkSize(size));
      assert.equal(await dropOf(client), 'bad-chunk-size', `chunk size ${size}`);
    }
    const short = new RawClient(port);
    await handshake(short, random);
    short.write(chunkMessage({ chunkStreamId: 2, type: MessageType.setChunkSize, streamId: 0, payload: Buffer.alloc(2) }));
    assert.equal(await dropOf(short), 'malformed');
    const fine = new RawClient(port);
    await handshake(fine, random);
    fine.write(setChunkSize(4096));
    // A 600-byte command in one chunk only parses if the new chunk size took effect.
    fine.write(chunkMessage({ chunkStreamId: 3, type: MessageType.command, streamId: 0, payload: command('releaseStream', 2, null, 'x'.repeat(600)) }, 4096));
    fine.write(chunkMessage({ chunkStreamId: 3, type: MessageType.command, streamId: 0, payload: command('FCPublish', 3, null, 'y'.repeat(600)) }, 4096));
    await sleep(200);
    assert.ok(!fine.isClosed, 'a normal chunk size is accepted');
    fine.close();
  });

  test('a connection that does not publish within the handshake timeout is closed, even if it keeps trickling', async () => {
    const client = new RawClient(port);
    await client.connected;
    client.write(Buffer.from([3]));
    const trickle = setInterval(() => client.write(random(1)), 200);
    const before = events.dropped.length;
    const closed = await client.closeAfter(6000);
    clearInterval(trickle);
    assert.equal(closed.by, 'server');
    assert.ok(closed.afterMs >= 1400 && closed.afterMs < 4000, `closed after ${closed.afterMs} ms (timeout 1500)`);
    assert.equal(events.dropped.slice(before)[0]?.reason, 'handshake-timeout');
    assert.ok(!legit.isClosed, 'the accepted publisher is not subject to the handshake timeout');
  });
});

test('publisher allowlist: a connection from outside is refused before the handshake', async () => {
  const { server, port, events } = await startAdapter({ allow: ['127.0.0.2/32'] });
  try {
    const outside = new RawClient(port, { localAddress: '127.0.0.1' });
    await outside.connected.catch(() => undefined);
    outside.write(Buffer.concat([Buffer.from([3]), random(1536)]));
    const closed = await outside.closeAfter(3000);
    assert.equal(closed.by, 'server');
    assert.equal(closed.received, 0, 'no handshake reply');
    assert.deepEqual(events.networkRefused, ['127.0.0.1']);
    assert.equal(server.connectionCount, 0);

    const inside = new RawClient(port, { localAddress: '127.0.0.2' });
    await handshake(inside, random);
    assert.ok(!inside.isClosed, 'an allowed address gets the handshake');
    assert.deepEqual(events.networkRefused, ['127.0.0.1']);
    inside.close();
  } finally {
    server.close();
  }
});
