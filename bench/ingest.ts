/**
 * Ingest figures on this machine: CPU seconds per minute of one 720p30 ~2.5 Mbit/s stream
 * (ingest's node process and its ffmpeg muxer, measured from /proc), time from the publisher's
 * start (the ffmpeg process, including its own start-up) to the first playlist with a part and with
 * a segment (on disk, and through proxy + web), and from a clean stop to EXT-X-ENDLIST.
 */
import { sleep, waitFor } from '../common/testing/processes.ts';
import { createStream, ingestStreams, publish, startStack, viewPlaylist } from '../common/testing/stack.ts';
import { cpuSeconds } from './proc-cpu.ts';

export async function benchIngest(seconds = Number(process.env.BENCH_INGEST_SECONDS ?? 60)): Promise<Record<string, number>> {
  const stack = await startStack({ webReplicas: 3, proxy: true });
  try {
    const key = await createStream(stack, 'bench');
    const started = Date.now();
    const publisher = publish(stack.publishUrl('bench', key), { width: 1280, height: 720, fps: 30, videoKbps: 2500, keyframeSeconds: 1, clock: true });
    // Low latency: the first part is listed long before the first segment is complete.
    await waitFor('first part on disk', async () => (await stack.readPlaylist('bench')).includes('#EXT-X-PART:'), 30_000, 5);
    const firstPartOnDiskMs = Date.now() - started;
    await waitFor('first part through the proxy', async () => {
      const res = await fetch(`${stack.proxyUrl}/live/bench/index.m3u8`);
      return res.ok && (await res.text()).includes('#EXT-X-PART:');
    }, 30_000, 5);
    const firstPartThroughProxyMs = Date.now() - started;
    await waitFor('first segment on disk', async () => viewPlaylist(await stack.readPlaylist('bench')).segments.length > 0, 30_000, 10);
    const firstPlaylistOnDiskMs = Date.now() - started;
    await waitFor('first segment through the proxy', async () => {
      const res = await fetch(`${stack.proxyUrl}/live/bench/index.m3u8`);
      return res.ok && viewPlaylist(await res.text()).segments.length > 0;
    }, 30_000, 10);
    const firstPlaylistThroughProxyMs = Date.now() - started;
    const status = await waitFor('muxer pid', async () => (await ingestStreams(stack)).find((s) => s.muxer?.pid));
    const muxerPid = status.muxer.pid as number;
    await sleep(2000);
    const ingest0 = await cpuSeconds(stack.ingest.pid);
    const muxer0 = await cpuSeconds(muxerPid);
    const t0 = Date.now();
    await sleep(seconds * 1000);
    const ingest1 = await cpuSeconds(stack.ingest.pid);
    const muxer1 = await cpuSeconds(muxerPid);
    const minutes = (Date.now() - t0) / 60_000;
    const bitrate = (await ingestStreams(stack)).find((s) => s.stream === 'bench')?.bitrateKbps ?? 0;
    const stopAt = Date.now();
    await publisher.stop();
    await waitFor('ENDLIST', async () => viewPlaylist(await stack.readPlaylist('bench')).ended, 20_000, 5);
    const endlistMs = Date.now() - stopAt;
    return {
      inputKbps: bitrate,
      firstPartOnDiskMs,
      firstPartThroughProxyMs,
      firstPlaylistOnDiskMs,
      firstPlaylistThroughProxyMs,
      ingestNodeCpuSecondsPerMinute: (ingest1 - ingest0) / minutes,
      muxerCpuSecondsPerMinute: (muxer1 - muxer0) / minutes,
      ingestTotalCpuSecondsPerMinute: (ingest1 - ingest0 + muxer1 - muxer0) / minutes,
      publisherStopToEndlistMs: endlistMs,
    };
  } finally {
    await stack.stop();
  }
}
