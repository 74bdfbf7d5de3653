/**
 * A quality ladder against real parts: ffmpeg publishing RTMP, ingest transcoding with real
 * ffmpeg, files on disk, ffprobe. Small sizes and a low frame rate: CI has 2 cores.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { addStream, setStreamLadder } from '../../common/src/stream-registry.ts';
import { waitFor } from '../../common/testing/processes.ts';
import { ingestStreams, publish, startStack, viewPlaylist, type Stack } from '../../common/testing/stack.ts';

const run = promisify(execFile);

interface Variant {
  attrs: Record<string, string>;
  uri: string;
}

function parseMaster(text: string): Variant[] {
  const lines = text.split('\n');
  const out: Variant[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.startsWith('#EXT-X-STREAM-INF:')) continue;
    const attrs: Record<string, string> = {};
    for (const m of line.slice(18).matchAll(/([A-Z-]+)=("[^"]*"|[^,]*)/g)) attrs[m[1]!] = m[2]!.replace(/^"|"$/g, '');
    out.push({ attrs, uri: lines[i + 1]! });
  }
  return out;
}

/** EXTINF durations with the media sequence of each segment. */
function timeline(text: string): Map<number, number> {
  const view = viewPlaylist(text);
  const durations = [...text.matchAll(/^#EXTINF:([\d.]+),/gm)].map((m) => Number(m[1]));
  return new Map(durations.map((d, i) => [view.mediaSequence + i, d]));
}

describe('quality ladder (real RTMP publisher, real ffmpeg transcoding)', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ monitoring: true, ingestEnv: { PUBLISH_IDLE_TIMEOUT_MS: '2000', RECONNECT_GRACE_MS: '10000', LADDER_PRESET: 'ultrafast' } });
  });
  after(async () => {
    await stack?.stop();
  });

  test('master playlist, aligned renditions at the right sizes, ENDLIST everywhere, source recorded', async () => {
    try {
      const key = await addStream(stack.dataDir, 'tiers', new Date(), { ladder: '360p,240p,144p' });
      let publisher = publish(stack.publishUrl('tiers', key), { width: 640, height: 360, fps: 15, videoKbps: 600 });
      const dir = path.dirname(stack.playlistPath('tiers'));
      let variants: Variant[];
      try {
        const master = await waitFor('the master playlist', async () => {
          const text = await stack.readPlaylist('tiers');
          return text.includes('#EXT-X-STREAM-INF') ? text : undefined;
        }, 30_000);
        variants = parseMaster(master);
        // 360p is the source's own height: skipped (the source is the top rendition, never upscaled).
        assert.deepEqual(variants.map((v) => v.uri), ['source/index.m3u8', '240p/index.m3u8', '144p/index.m3u8']);
        assert.deepEqual(variants.map((v) => v.attrs.RESOLUTION), ['640x360', '426x240', '256x144']);
        for (const v of variants) {
          assert.ok(Number(v.attrs.BANDWIDTH) > 0, `BANDWIDTH in ${JSON.stringify(v.attrs)}`);
          assert.match(v.attrs.CODECS!, /^avc1\.[0-9a-f]{6},mp4a\.40\.2$/);
          assert.equal(v.attrs['FRAME-RATE'], '15.000');
        }
        assert.ok(Number(variants[0]!.attrs.BANDWIDTH) > Number(variants[1]!.attrs.BANDWIDTH));

        // Every media playlist advances, by the same segments.
        const first = await Promise.all(variants.map(async (v) => viewPlaylist(await readFile(path.join(dir, v.uri), 'utf8'))));
        await waitFor('every rendition to advance by 3 segments', async () => {
          const now = await Promise.all(variants.map(async (v) => viewPlaylist(await readFile(path.join(dir, v.uri), 'utf8'))));
          return now.every((view, i) => view.mediaSequence + view.segments.length >= first[i]!.mediaSequence + first[i]!.segments.length + 3);
        }, 30_000);

        const live = await waitFor('ladder on GET /streams', async () => (await ingestStreams(stack)).find((s) => s.stream === 'tiers' && s.transcode?.cpuCores !== null && s.transcode?.speed !== null));
        assert.equal(live.ladder, '360p,240p,144p');
        assert.deepEqual(live.renditions.map((r: { name: string }) => r.name), ['source', '240p', '144p']);
        assert.ok(live.transcode.cpuCores > 0, `cpu ${JSON.stringify(live.transcode)}`);
        assert.ok(live.transcode.speed > 0.5, `speed ${JSON.stringify(live.transcode)}`);
        // The ops dashboard's data: monitoring reads the ladder and CPU from ingest.
        const card = await waitFor('the ladder on /api/streams', async () => {
          const res = await fetch(`${stack.monitoring!.url}/api/streams`, { headers: { authorization: `Bearer ${stack.opsToken}` } });
          const body = (await res.json()) as { ingest: { up: boolean }; streams: Array<{ stream: string; transcode: { ladder: string; renditions: string[]; cpuCores: number | null } | null }> };
          const s = body.streams.find((x) => x.stream === 'tiers');
          return body.ingest.up && s?.transcode?.cpuCores != null ? s.transcode : undefined;
        });
        assert.equal(card.ladder, '360p,240p,144p');
        assert.deepEqual(card.renditions, ['source', '240p', '144p']);
        const metrics = await (await fetch(`${stack.controlUrl}/metrics`)).text();
        assert.match(metrics, /onair_ingest_ffmpeg_cpu_seconds_total\{[^}]*stream="tiers"[^}]*\} [0-9.]+/);
        assert.match(metrics, /onair_ingest_renditions\{[^}]*stream="tiers"[^}]*\} 3/);

        // ffprobe: each rendition's init + a segment is playable at its announced size.
        for (const v of variants) {
          const text = await readFile(path.join(dir, v.uri), 'utf8');
          const init = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)![1]!;
          const segment = viewPlaylist(text).segments.at(-1)!;
          const rdir = path.join(dir, path.dirname(v.uri));
          const sample = path.join(stack.mediaDir, `probe-${path.dirname(v.uri)}.mp4`);
          await writeFile(sample, Buffer.concat([await readFile(path.join(rdir, init)), await readFile(path.join(rdir, segment))]));
          const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,height', '-of', 'json', sample]);
          const streams = (JSON.parse(stdout) as { streams: Array<{ codec_name: string; width?: number; height?: number }> }).streams;
          const video = streams.find((s) => s.codec_name === 'h264');
          assert.equal(`${video?.width}x${video?.height}`, v.attrs.RESOLUTION, `${v.uri} probed size`);
          assert.ok(streams.some((s) => s.codec_name === 'aac'), `${v.uri} has AAC audio`);
          const files = await readdir(rdir);
          assert.ok(files.every((f) => !f.endsWith('.tmp')), `no temp files: ${files.join(' ')}`);
        }

        // ffmpeg killed while live: restarted; then the publisher's connection drops and it comes
        // back within the grace. Every rendition continues after a discontinuity each time.
        const totalBreaks = async () =>
          Promise.all(variants.map(async (v) => {
            const view = viewPlaylist(await readFile(path.join(dir, v.uri), 'utf8'));
            return { breaks: view.discontinuitySequence + view.discontinuities, next: view.mediaSequence + view.segments.length };
          }));
        const killed = live.muxer.pid as number;
        process.kill(killed, 'SIGKILL');
        await waitFor('a new muxer after the kill', async () => (await ingestStreams(stack)).find((s) => s.stream === 'tiers' && s.muxer?.pid && s.muxer.pid !== killed && s.restarts >= 1), 20_000);
        const afterRestart = await waitFor('every rendition past a discontinuity', async () => {
          const t = await totalBreaks();
          return t.every((x) => x.breaks >= 1) ? t : undefined;
        }, 30_000);
        await waitFor('segments after the restart in every rendition', async () => (await totalBreaks()).every((x, i) => x.next >= afterRestart[i]!.next + 2), 30_000);
        publisher.kill('SIGKILL'); // the connection drops without deleteStream
        await waitFor('the broadcast to wait for its publisher', async () => (await ingestStreams(stack)).find((s) => s.stream === 'tiers' && s.state === 'reconnecting'), 15_000);
        publisher = publish(stack.publishUrl('tiers', key), { width: 640, height: 360, fps: 15, videoKbps: 600 });
        await waitFor('every rendition past a second discontinuity, advancing', async () => {
          const t = await totalBreaks();
          return t.every((x) => x.breaks >= 2) && t.every((x) => x.next >= t[0]!.next) ? t : undefined;
        }, 30_000);
        const resumed = await totalBreaks();
        await waitFor('segments after the reconnect in every rendition', async () => (await totalBreaks()).every((x, i) => x.next >= resumed[i]!.next + 2), 30_000);
      } finally {
        await publisher.stop();
      }
      // ENDLIST in every rendition; segments aligned: same media sequences, same durations.
      const ended = await waitFor('ENDLIST in every rendition', async () => {
        const texts = await Promise.all(variants.map((v) => readFile(path.join(dir, v.uri), 'utf8')));
        return texts.every((t) => viewPlaylist(t).ended) ? texts : undefined;
      }, 15_000);
      const timelines = ended.map(timeline);
      const reference = timelines[0]!;
      assert.ok(reference.size >= 3);
      const breaks = ended.map((t) => [viewPlaylist(t).discontinuitySequence, t.split('\n').map((l, i, all) => (l === '#EXT-X-DISCONTINUITY' ? all.slice(i).find((x) => x && !x.startsWith('#')) : null)).filter(Boolean).length]);
      for (const b of breaks) assert.deepEqual(b, breaks[0], 'discontinuities at the same places in every rendition');
      for (const [i, t] of timelines.entries()) {
        assert.deepEqual([...t.keys()], [...reference.keys()], `${variants[i]!.uri}: same media sequence numbers as the source`);
        for (const [seq, duration] of t) assert.ok(Math.abs(duration - reference.get(seq)!) < 0.07, `${variants[i]!.uri} segment ${seq}: ${duration} s vs source ${reference.get(seq)} s`);
      }
      for (const t of ended) assert.equal(viewPlaylist(t).targetDuration, viewPlaylist(ended[0]!).targetDuration);
      // The master playlist itself is never touched by the end of the broadcast.
      assert.ok((await stack.readPlaylist('tiers')).includes('#EXT-X-STREAM-INF'));

      // The recording: the source rendition, complete.
      const sessions = await readdir(path.join(stack.mediaDir, 'archive', 'tiers'));
      assert.equal(sessions.length, 1);
      const recorded = await waitFor('the recording to end', async () => {
        const text = await readFile(path.join(stack.mediaDir, 'archive', 'tiers', sessions[0]!, 'index.m3u8'), 'utf8').catch(() => '');
        return text.includes('#EXT-X-ENDLIST') ? text : undefined;
      }, 15_000);
      assert.ok(viewPlaylist(recorded).segments.length >= reference.size);
      const recordedSegment = viewPlaylist(recorded).segments[0]!;
      const sample = path.join(stack.mediaDir, 'probe-archive.mp4');
      const init = /#EXT-X-MAP:URI="([^"]+)"/.exec(recorded)![1]!;
      const sdir = path.join(stack.mediaDir, 'archive', 'tiers', sessions[0]!);
      await writeFile(sample, Buffer.concat([await readFile(path.join(sdir, init)), await readFile(path.join(sdir, recordedSegment))]));
      const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', sample]);
      assert.equal(stdout.trim(), '640,360', 'the recording is the source rendition');

      // Ladder off: the next broadcast is passthrough again, its numbering continues the renditions'.
      await setStreamLadder(stack.dataDir, 'tiers', 'off');
      const again = publish(stack.publishUrl('tiers', key), { width: 640, height: 360, fps: 15, videoKbps: 600 });
      try {
        const view = await waitFor('a passthrough media playlist', async () => {
          const v = viewPlaylist(await stack.readPlaylist('tiers'));
          return !v.text.includes('#EXT-X-STREAM-INF') && v.segments.length >= 1 ? v : undefined;
        }, 30_000);
        assert.ok(view.mediaSequence >= Math.max(...reference.keys()) + 1, `numbering continues: ${view.mediaSequence}`);
        const left = await readdir(dir);
        assert.ok(!left.includes('240p') && !left.includes('source'), `rendition folders removed: ${left.join(' ')}`);
      } finally {
        await again.stop();
      }
      // Ingest gone: the dashboard's data says so, monitoring goes on.
      await stack.ingest.stop();
      await waitFor('monitoring to notice ingest is down', async () => {
        const res = await fetch(`${stack.monitoring!.url}/api/streams`, { headers: { authorization: `Bearer ${stack.opsToken}` } });
        return res.ok && ((await res.json()) as { ingest: { up: boolean } }).ingest.up === false;
      }, 15_000);
    } catch (err) {
      (err as Error).message += `\n${stack.diagnostics()}`;
      throw err;
    }
  });
});
