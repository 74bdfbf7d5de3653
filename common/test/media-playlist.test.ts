import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseTargetDuration, fitsTargetDuration, parseMediaPlaylist, renderMediaPlaylist } from '../src/hls/media-playlist.ts';

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
