/**
 * PUBLISH_ALLOW_CIDRS: publishers may connect only from listed networks. Checked at the TCP
 * connection, before the RTMP handshake; a refusal is logged with reason `network` and the
 * client address and counted in onair_ingest_publishes_refused_total{reason="network"}.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../../common/src/config.ts';
import { makeTempDir, startService, waitFor } from '../../common/testing/processes.ts';
import { createStream, ingestStreams, publish, startStack } from '../../common/testing/stack.ts';
import { loadIngestConfig } from '../src/config.ts';
import { metricsText, metricValue, waitForLog } from './support/ingest-probe.ts';
import { Prng } from './support/prng.ts';
import { connectCommand, createStreamCommand, handshake, publishCommand, RawClient } from './support/rtmp-wire.ts';

test('PUBLISH_ALLOW_CIDRS: a comma list of addresses and CIDRs; unset or empty allows anywhere; a bad entry is a clear config error', () => {
  assert.deepEqual(loadIngestConfig({}).PUBLISH_ALLOW_CIDRS, []);
  assert.deepEqual(loadIngestConfig({ PUBLISH_ALLOW_CIDRS: '' }).PUBLISH_ALLOW_CIDRS, []);
  assert.deepEqual(loadIngestConfig({ PUBLISH_ALLOW_CIDRS: ' 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32' }).PUBLISH_ALLOW_CIDRS, ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32']);
  for (const [value, message] of [
    ['10.0.0.0/33', /PUBLISH_ALLOW_CIDRS: bad CIDR prefix: 10\.0\.0\.0\/33.*\(got "10\.0\.0\.0\/33"\)/],
    ['10.0.0.0/8,office-network', /PUBLISH_ALLOW_CIDRS: not an IP address or CIDR: office-network/],
    ['10.0.0/8', /PUBLISH_ALLOW_CIDRS: not an IP address or CIDR: 10\.0\.0\/8/],
  ] as const) {
    assert.throws(() => loadIngestConfig({ PUBLISH_ALLOW_CIDRS: value }), (err: unknown) => err instanceof ConfigError && message.test(err.message));
  }
});

test('ingest refuses to start with a bad PUBLISH_ALLOW_CIDRS (exit code 2, the variable named)', async () => {
  const temp = await makeTempDir('allowlist-config');
  try {
    const ingest = startService('ingest', { MEDIA_DIR: path.join(temp.dir, 'media'), DATA_DIR: path.join(temp.dir, 'data'), RTMP_PORT: '0', CONTROL_PORT: '0', PUBLISH_ALLOW_CIDRS: '10.0.0.0/8,10.1.2.3/40' });
    const exit = await ingest.exited;
    assert.equal(exit.code, 2, ingest.tail());
    assert.match(ingest.output.join('\n'), /PUBLISH_ALLOW_CIDRS: bad CIDR prefix: 10\.1\.2\.3\/40/);
  } finally {
    await temp.remove();
  }
});

test('a publisher outside the allowlist is refused before the handshake; one inside publishes', async () => {
  const stack = await startStack({ ingestEnv: { PUBLISH_ALLOW_CIDRS: '127.0.0.2/32,2001:db8::/32' } });
  const rng = new Prng(7);
  try {
    const key = await createStream(stack, 'lab');
    // An encoder at 127.0.0.1 (outside the list): refused, nothing written.
    const outsider = publish(stack.publishUrl('lab', key), { durationSeconds: 5 });
    assert.notEqual((await outsider.exited).code, 0, 'the refused encoder fails');
    const line = await waitForLog(stack, 0, 'publish refused for the network', (l) => l.msg === 'publish refused' && l.reason === 'network', 5000);
    assert.equal(line.client, '127.0.0.1');
    assert.equal(metricValue(await metricsText(stack), 'onair_ingest_publishes_refused_total', 'reason="network"'), 1);
    assert.ok(!existsSync(path.dirname(stack.playlistPath('lab'))), 'nothing written for a refused publisher');

    // A client at 127.0.0.2 (inside): the handshake is answered and the publish accepted.
    const insider = new RawClient(stack.rtmpPort, { localAddress: '127.0.0.2' });
    await handshake(insider, (n) => rng.bytes(n));
    insider.write(Buffer.concat([connectCommand('live', `rtmp://127.0.0.1:${stack.rtmpPort}/live`), createStreamCommand(), publishCommand(`lab?key=${key}`)]));
    const live = await waitFor('lab live from 127.0.0.2', async () => (await ingestStreams(stack)).find((s) => s.stream === 'lab' && s.state === 'live'), 5000);
    assert.equal(live.publisher.address, '127.0.0.2');
    insider.close();
    assert.equal(metricValue(await metricsText(stack), 'onair_ingest_publishes_refused_total', 'reason="network"'), 1, 'still one refusal');
  } catch (err) {
    (err as Error).message += `\n${stack.diagnostics()}`;
    throw err;
  } finally {
    await stack.stop();
  }
});
