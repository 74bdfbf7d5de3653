/** The ladder module: spec parsing, rendition choice, ffmpeg arguments, master playlist text. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  formatLadderSpec,
  ladderFilterGraph,
  LadderSpecError,
  parseLadderSpec,
  renditionOutputArgs,
  renditionsFor,
  scaledWidth,
  type SourceInfo,
} from '../src/transcode/ladder.ts';
import { renderMasterPlaylist, renditionPlaylistUri } from '../../common/src/hls/master-playlist.ts';
import { FIRST_OUTPUT_FD, ladderArgs } from '../src/muxer/muxer-args.ts';

const source720: SourceInfo = { width: 1280, height: 720, fps: 30, videoCodec: 'avc1.64001f', audioCodec: 'mp4a.40.2', bitrateKbps: 2650 };

describe('ladder spec', () => {
  test('parses, sorts highest first, accepts bare heights and spaces', () => {
    assert.deepEqual(parseLadderSpec('360p, 720p,480P').map((r) => r.name), ['720p', '480p', '360p']);
    assert.deepEqual(parseLadderSpec('720,360').map((r) => r.height), [720, 360]);
    assert.equal(formatLadderSpec(parseLadderSpec(' 360p,720p ')), '720p,360p');
  });
  test('off, none and empty mean no ladder', () => {
    for (const spec of ['off', 'OFF', 'none', '', '  ']) assert.deepEqual(parseLadderSpec(spec), []);
    assert.equal(formatLadderSpec([]), 'off');
  });
  test('refuses unknown, duplicate and empty entries with a clear message', () => {
    assert.throws(() => parseLadderSpec('720p,999p'), (err: Error) => err instanceof LadderSpecError && /unknown rendition "999p".*use some of 1080p, 720p/.test(err.message));
    assert.throws(() => parseLadderSpec('720p,720'), /720p twice/);
    assert.throws(() => parseLadderSpec('720p,,360p'), /empty entry/);
    assert.throws(() => parseLadderSpec('source'), /unknown rendition/);
  });
});

describe('renditions for a source', () => {
  test('the source stays on top (copy); rungs at or above its height are skipped', () => {
    const r = renditionsFor(parseLadderSpec('1080p,720p,480p,360p'), source720);
    assert.deepEqual(r.map((x) => [x.name, x.video, `${x.width}x${x.height}`]), [
      ['source', 'copy', '1280x720'],
      ['480p', 'transcode', '854x480'],
      ['360p', 'transcode', '640x360'],
    ]);
    assert.equal(r[0]!.codecs, 'avc1.64001f,mp4a.40.2');
    assert.equal(r[1]!.codecs, 'avc1.4d401e,mp4a.40.2');
    assert.equal(r[1]!.audio, 'copy', 'AAC source audio is copied');
    assert.ok(r[0]!.bandwidth > r[1]!.bandwidth && r[1]!.bandwidth > r[2]!.bandwidth);
    assert.equal(r[0]!.bandwidth, Math.round(2650 * 1000 * 1.1));
  });
  test('non-AAC audio is encoded to AAC; no audio stays none; unknown height gets only the source', () => {
    assert.equal(renditionsFor(parseLadderSpec('360p'), { ...source720, audioCodec: 'mp4a.6b' })[1]!.audio, 'aac');
    const silent = renditionsFor(parseLadderSpec('360p'), { ...source720, audioCodec: null });
    assert.deepEqual(silent.map((x) => x.audio), ['none', 'none']);
    assert.equal(silent[1]!.codecs, 'avc1.4d401e');
    assert.deepEqual(renditionsFor(parseLadderSpec('360p'), { ...source720, width: 0, height: 0 }).map((x) => x.name), ['source']);
  });
  test('a ladder for files can leave the source out', () => {
    assert.deepEqual(renditionsFor(parseLadderSpec('720p,360p'), { ...source720, height: 1080, width: 1920 }, { includeSource: false }).map((x) => x.name), ['720p', '360p']);
  });
  test('widths keep the aspect ratio and are even', () => {
    assert.equal(scaledWidth({ width: 1280, height: 720 }, 480), 854);
    assert.equal(scaledWidth({ width: 640, height: 360 }, 240), 426);
    assert.equal(scaledWidth({ width: 1080, height: 1920 }, 360), 202);
  });
});

describe('ffmpeg arguments', () => {
  const renditions = renditionsFor(parseLadderSpec('480p,360p'), source720);
  test('one split + scale chain per transcoded rendition', () => {
    assert.equal(ladderFilterGraph(renditions), '[0:v]split=2[s0][s1];[s0]scale=854:480:flags=bicubic,format=yuv420p[v480p];[s1]scale=640:360:flags=bicubic,format=yuv420p[v360p]');
    assert.equal(ladderFilterGraph(renditions.slice(0, 2)), '[0:v]null[s0];[s0]scale=854:480:flags=bicubic,format=yuv420p[v480p]');
    assert.equal(ladderFilterGraph(renditions.slice(0, 1)), null);
  });
  test('copy for the source, libx264 with source keyframes for the rest', () => {
    assert.deepEqual(renditionOutputArgs(renditions[0]!, { keyframes: { kind: 'source' }, latency: 'live' }), ['-map', '0:v:0?', '-c:v', 'copy', '-map', '0:a:0?', '-c:a', 'copy']);
    const args = renditionOutputArgs(renditions[1]!, { keyframes: { kind: 'source' }, latency: 'live' }).join(' ');
    assert.match(args, /^-map \[v480p\] -c:v libx264 -preset veryfast -tune zerolatency -profile:v main -level:v 3\.0 -b:v 1400k -maxrate 1540k -bufsize 2800k -force_key_frames source -sc_threshold 0/);
    assert.match(args, /-fps_mode passthrough/);
    assert.match(args, /-map 0:a:0\? -c:a copy$/);
    const file = renditionOutputArgs(renditions[2]!, { keyframes: { kind: 'interval', seconds: 4 }, latency: 'file', preset: 'medium' }).join(' ');
    assert.match(file, /-force_key_frames expr:gte\(t,n_forced\*4\)/);
    assert.doesNotMatch(file, /zerolatency/);
    const aac = renditionsFor(parseLadderSpec('360p'), { ...source720, audioCodec: 'mp4a.6b' })[1]!;
    assert.match(renditionOutputArgs(aac, { keyframes: { kind: 'source' }, latency: 'live' }).join(' '), /-c:a aac -b:a 96k -ac 2$/);
  });
  test('the live command line: progress, FLV on stdin, one fragmented-MP4 pipe per rendition', () => {
    const args = ladderArgs(renditions, 'veryfast');
    assert.deepEqual(args.slice(0, 4), ['-progress', 'pipe:1', '-stats_period', '1']);
    assert.ok(args.includes('pipe:0'));
    assert.deepEqual(args.filter((a) => /^pipe:[3-9]$/.test(a)), [`pipe:${FIRST_OUTPUT_FD}`, `pipe:${FIRST_OUTPUT_FD + 1}`, `pipe:${FIRST_OUTPUT_FD + 2}`]);
    assert.equal(args.filter((a) => a === '-frag_duration').length, 3);
  });
});

test('master playlist text', () => {
  const renditions = renditionsFor(parseLadderSpec('360p'), { ...source720, height: 480, width: 854, fps: 29.97 });
  const text = renderMasterPlaylist(renditions.map((rendition) => ({ ...rendition, uri: renditionPlaylistUri(rendition) })));
  assert.equal(
    text,
    [
      '#EXTM3U',
      '#EXT-X-VERSION:7',
      '#EXT-X-INDEPENDENT-SEGMENTS',
      `#EXT-X-STREAM-INF:BANDWIDTH=${Math.round(2650 * 1100)},RESOLUTION=854x480,CODECS="avc1.64001f,mp4a.40.2",FRAME-RATE=29.970,NAME="source"`,
      'source/index.m3u8',
      '#EXT-X-STREAM-INF:BANDWIDTH=976000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2",FRAME-RATE=29.970,NAME="360p"',
      '360p/index.m3u8',
      '',
    ].join('\n'),
  );
});
