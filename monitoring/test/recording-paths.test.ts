/**
 * The recording-path pattern (monitoring/src/store/recording-paths.ts) against the rules it
 * restates: stream names, session ids and media file names as common/src defines them, and the
 * Lucene spelling against the RE2/JavaScript one (a Lucene regexp is anchored; read as a
 * JavaScript RegExp between ^ and $ it must accept exactly the same paths).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyMediaFile, isSessionId } from '../../common/src/media-layout.ts';
import { isStreamName } from '../../common/src/stream-name.ts';
import { RECORDING_MEDIA_PATH, RECORDING_MEDIA_PATH_LUCENE, recordingOfPath } from '../src/store/recording-paths.ts';

const streams = ['a', 'town-hall', 'q3_review', '0', 'x'.repeat(64), 'x'.repeat(65), 'Town', '-a', '_a', 'a.b', 'a/b', '', 'ä'];
const sessions = ['20250115-110000-abc123', '20250115-110000-ABC123', '2025011-110000-abc123', '20250115-110000-abc12', '20250115-110000-abc1234', 'latest', ''];
const files = ['index.m3u8', 'r1-init.mp4', 'r1-17.m4s', 'a-1.ts', 'x.aac', 'thumbnail.jpg', 'session.json', '.r1-1.m4s.tmp', 'Index.m3u8', `${'s'.repeat(128)}.m4s`, `${'s'.repeat(129)}.m4s`, 'index.m3u8.bak', ''];

function expected(stream: string, session: string, file: string): boolean {
  return isStreamName(stream) && isSessionId(session) && classifyMediaFile(file) !== null;
}

test('a recording media path is /archive/<stream name>/<session id>/<playlist or segment>, nothing else', () => {
  const lucene = new RegExp(`^${RECORDING_MEDIA_PATH_LUCENE}$`);
  let accepted = 0;
  let total = 0;
  for (const stream of streams) {
    for (const session of sessions) {
      for (const file of files) {
        const path = `/archive/${stream}/${session}/${file}`;
        const want = expected(stream, session, file);
        assert.equal(RECORDING_MEDIA_PATH.test(path), want, path);
        assert.equal(lucene.test(path), want, `lucene: ${path}`);
        assert.deepEqual(recordingOfPath(path), want ? { stream, session } : null, path);
        total++;
        if (want) accepted++;
      }
    }
  }
  assert.ok(accepted > 10 && accepted < total, `${accepted} of ${total} accepted`);
  // A rendition folder of a ladder recording: its playlists and segments are the recording's too.
  for (const path of ['/archive/town-hall/20250115-110000-abc123/720p/index.m3u8', '/archive/town-hall/20250115-110000-abc123/source/r1-3.m4s']) {
    assert.deepEqual(recordingOfPath(path), { stream: 'town-hall', session: '20250115-110000-abc123' }, path);
    assert.equal(lucene.test(path), true, `lucene: ${path}`);
  }
  for (const path of [
    '/archive/town-hall/20250115-110000-abc123/720p/hd/index.m3u8',
    '/archive/town-hall/20250115-110000-abc123/720p/thumbnail.jpg',
    '/archive/town-hall/20250115-110000-abc123/-x/index.m3u8',
    '/archive/town-hall/20250115-110000-abc123//index.m3u8',
    '/archive/town-hall/20250115-110000-abc123/index.m3u8/',
    '/archive/town-hall/20250115-110000-abc123',
    '/archive/town-hall%2F20250115-110000-abc123/index.m3u8',
    '/x/archive/town-hall/20250115-110000-abc123/index.m3u8',
    '/live/town-hall/index.m3u8',
    '/vod/town-hall/20250115-110000-abc123',
  ]) {
    assert.equal(RECORDING_MEDIA_PATH.test(path), false, path);
    assert.equal(lucene.test(path), false, `lucene: ${path}`);
  }
});

test('the Lucene spelling uses only what Lucene regexps support', () => {
  assert.ok(!RECORDING_MEDIA_PATH_LUCENE.includes('(?:'), 'no non-capturing groups');
  assert.ok(!/[\^$]/.test(RECORDING_MEDIA_PATH_LUCENE), 'no anchors (Lucene anchors the whole term)');
  assert.ok(!/_-\]/.test(RECORDING_MEDIA_PATH_LUCENE), 'a literal - in a class is escaped');
  assert.ok(!/\\[dws]/i.test(RECORDING_MEDIA_PATH_LUCENE), 'no shorthand classes');
  // Characters Lucene's default flags (ALL) treat as operators must not appear unescaped.
  assert.ok(!/[@&~<>#"]/.test(RECORDING_MEDIA_PATH_LUCENE));
});
