import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import HLS from 'hls-parser';
import { chooseTargetDuration, comparePositions, fitsTargetDuration, parseMediaPlaylist, playlistPosition, renderMediaPlaylist } from '../src/hls/media-playlist.ts';

HLS.setOptions({ strictMode: true, silent: true });

test('renders a live fMP4 playlist with maps, discontinuities and date-times', () => {
  const text = renderMediaPlaylist({
    targetDuration: 2,
    mediaSequence: 10,
    discontinuitySequence: 1,
    ended: false,
    segments: [
      { uri: 'a-4.m4s', duration: 2, initUri: 'a-init.mp4', discontinuity: false, programDateTime: new Date('2026-01-01T00:00:00.000Z') },
      { uri: 'b-0.m4s', duration: 1.98, initUri: 'b-init.mp4', discontinuity: true, programDateTime: null },
      { uri: 'b-1.m4s', duration: 2, initUri: 'b-init.mp4', discontinuity: false, programDateTime: null },
    ],
  });
  assert.equal(
    text,
    [
      '#EXTM3U',
      '#EXT-X-VERSION:7',
      '#EXT-X-TARGETDURATION:2',
      '#EXT-X-MEDIA-SEQUENCE:10',
      '#EXT-X-DISCONTINUITY-SEQUENCE:1',
      '#EXT-X-INDEPENDENT-SEGMENTS',
      '#EXT-X-MAP:URI="a-init.mp4"',
      '#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z',
      '#EXTINF:2.000000,',
      'a-4.m4s',
      '#EXT-X-DISCONTINUITY',
      '#EXT-X-MAP:URI="b-init.mp4"',
      '#EXTINF:1.980000,',
      'b-0.m4s',
      '#EXTINF:2.000000,',
      'b-1.m4s',
      '',
    ].join('\n'),
  );
  const parsed = parseMediaPlaylist(`${text}#EXT-X-ENDLIST\n`);
  assert.equal(parsed.targetDuration, 2);
  assert.equal(parsed.mediaSequence, 10);
  assert.equal(parsed.discontinuitySequence, 1);
  assert.deepEqual(parsed.segments.map((s) => [s.uri, s.duration, s.discontinuity]), [
    ['a-4.m4s', 2, false],
    ['b-0.m4s', 1.98, true],
    ['b-1.m4s', 2, false],
  ]);
  assert.equal(parsed.ended, true);
});

test('parses what ffmpeg writes', () => {
  const parsed = parseMediaPlaylist('#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-MAP:URI="r-init.mp4"\n#EXTINF:1.000000,\nr-3.m4s\n#EXTINF:0.990234,\nr-4.m4s\n');
  assert.deepEqual(parsed.segments.map((s) => s.uri), ['r-3.m4s', 'r-4.m4s']);
  assert.equal(parsed.mediaSequence, 3);
  assert.equal(parsed.ended, false);
});

test('target duration follows the first segment and RFC 8216 rounding', () => {
  assert.equal(chooseTargetDuration(1.0, 1), 1);
  assert.equal(chooseTargetDuration(2.002, 1), 2);
  assert.equal(chooseTargetDuration(0.5, 1), 1);
  assert.equal(chooseTargetDuration(4, 2), 4);
  assert.ok(fitsTargetDuration(1.49, 1));
  assert.ok(!fitsTargetDuration(1.5, 1));
  assert.ok(fitsTargetDuration(2.4, 2));
});

describe('low-latency playlists', () => {
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
  const parts = (run: string, from: number, n: number) => Array.from({ length: n }, (_, i) => ({ uri: `${run}-p${from + i}.m4s`, duration: 0.33333, independent: i === 0 }));
  const live = {
    targetDuration: 2,
    mediaSequence: 40,
    discontinuitySequence: 2,
    ended: false,
    segments: [
      { uri: 'a-10.m4s', duration: 2, initUri: 'a-init.mp4', discontinuity: false, programDateTime: at(0), parts: parts('a', 60, 6) },
      { uri: 'a-11.m4s', duration: 2, initUri: 'a-init.mp4', discontinuity: false, programDateTime: at(2), parts: parts('a', 66, 6) },
      { uri: 'a-12.m4s', duration: 2, initUri: 'a-init.mp4', discontinuity: false, programDateTime: at(4), parts: parts('a', 72, 6) },
    ],
    lowLatency: {
      partTarget: 0.336,
      partHoldBack: 1.008,
      open: { initUri: 'b-init.mp4', discontinuity: true, programDateTime: at(6), parts: parts('b', 0, 2) },
      preloadHint: 'b-p2.m4s',
      renditionReports: [{ uri: '../360p/index.m3u8', lastMsn: 43, lastPart: 1 }],
    },
  };

  test('render: the last two complete segments and the open one list parts; one preload hint; reports', () => {
    const text = renderMediaPlaylist(live);
    assert.match(text, /^#EXTM3U\n#EXT-X-VERSION:10\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1\.008\n#EXT-X-PART-INF:PART-TARGET=0\.336\n/);
    assert.ok(!text.includes('a-p60.m4s'), 'the oldest segment lists no parts');
    assert.match(text, /a-p66\.m4s[\s\S]*a-11\.m4s/);
    assert.match(text, /a-12\.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="b-init\.mp4"\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:06\.000Z\n#EXT-X-PART:DURATION=0\.33333,URI="b-p0\.m4s",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0\.33333,URI="b-p1\.m4s"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="b-p2\.m4s"\n#EXT-X-RENDITION-REPORT:URI="\.\.\/360p\/index\.m3u8",LAST-MSN=43,LAST-PART=1\n$/);
    HLS.parse(text); // strict mode throws on what the spec forbids
  });

  test('parse gives back what render wrote, and the position for blocking reloads', () => {
    const parsed = parseMediaPlaylist(renderMediaPlaylist(live));
    assert.equal(parsed.canBlockReload, true);
    assert.equal(parsed.partTarget, 0.336);
    assert.equal(parsed.partHoldBack, 1.008);
    assert.deepEqual(parsed.segments.map((s) => [s.uri, s.parts.length, s.initUri]), [['a-10.m4s', 0, 'a-init.mp4'], ['a-11.m4s', 6, 'a-init.mp4'], ['a-12.m4s', 6, 'a-init.mp4']]);
    assert.deepEqual(parsed.openParts, parts('b', 0, 2));
    assert.deepEqual(parsed.open, { discontinuity: true, initUri: 'b-init.mp4', programDateTime: at(6) });
    assert.equal(parsed.preloadHint, 'b-p2.m4s');
    assert.deepEqual(parsed.renditionReports, live.lowLatency.renditionReports);
    assert.deepEqual(playlistPosition(parsed), { lastMsn: 42, openParts: 2 });
    assert.ok(comparePositions({ lastMsn: 42, openParts: 2 }, { lastMsn: 43, openParts: 0 }) < 0);
    assert.ok(comparePositions({ lastMsn: 43, openParts: 1 }, { lastMsn: 43, openParts: 0 }) > 0);
  });

  test('an ended playlist has no open segment, hint or reports', () => {
    const text = renderMediaPlaylist({ ...live, ended: true });
    assert.doesNotMatch(text, /b-p0|PRELOAD-HINT|RENDITION-REPORT/);
    assert.ok(text.endsWith('#EXT-X-ENDLIST\n'));
    HLS.parse(text);
  });
});
