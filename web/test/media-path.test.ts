import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseArchivePath, parseMediaPath, stripQuery } from '../src/media-path.ts';

describe('parseMediaPath', () => {
  it('accepts playlists, init files and segments of a valid stream', () => {
    assert.deepEqual(parseMediaPath('/live/demo/index.m3u8'), { ok: true, media: { stream: 'demo', file: 'index.m3u8', kind: 'playlist', ext: 'm3u8' } });
    assert.deepEqual(parseMediaPath('/live/demo/r1-init.mp4'), { ok: true, media: { stream: 'demo', file: 'r1-init.mp4', kind: 'segment', ext: 'mp4' } });
    assert.deepEqual(parseMediaPath('/live/my_stream-2/r1-42.m4s'), { ok: true, media: { stream: 'my_stream-2', file: 'r1-42.m4s', kind: 'segment', ext: 'm4s' } });
    // Quality ladder: one folder per rendition.
    assert.deepEqual(parseMediaPath('/live/demo/720p/index.m3u8'), { ok: true, media: { stream: 'demo', rendition: '720p', file: 'index.m3u8', kind: 'playlist', ext: 'm3u8' } });
    assert.deepEqual(parseMediaPath('/live/demo/source/r1-3.m4s'), { ok: true, media: { stream: 'demo', rendition: 'source', file: 'r1-3.m4s', kind: 'segment', ext: 'm4s' } });
    assert.equal(parseMediaPath('/live/demo/ingest/r1-3.m4s').ok, false, 'only rendition names as folders');
    assert.equal(parseMediaPath('/live/demo/720p/x/r1-3.m4s').ok, false);
    assert.equal(parseMediaPath('/live/demo/seg7.ts').ok, true);
  });

  const refused: Array<[string, number]> = [
    ['/live/../../etc/passwd', 400],
    ['/live/x/%2e%2e%2fsecret', 400],
    ['/live/x/..%2f..%2fetc%2fpasswd', 400],
    ['/live/x/%2E%2E/secret.m4s', 400],
    ['/live/x/%61.m4s', 400], // even a harmless escape: real names never need one
    ['/live/x/..', 400],
    ['/live/x/../index.m3u8', 400],
    ['/live/x/a..b.m4s', 400],
    ['/live/x\\..\\secret.m4s', 400],
    ['/live/x/%5c..%5csecret.m4s', 400],
    ['/live//x/index.m3u8', 400],
    ['/live/x//index.m3u8', 400],
    ['/live/x/index .m3u8', 400],
    ['/live/x/index\u0000.m3u8', 400],
    ['/live/x/index.m3u8.tmp', 404],
    ['/live/x/.index.m3u8.1a2b.tmp', 404],
    ['/live/x/.hidden.m3u8', 404],
    ['/live/X/index.m3u8', 404],
    ['/live/x/INDEX.M3U8', 404],
    ['/live/x/sub/seg.m4s', 404],
    ['/live/x/', 404],
    ['/live/x', 404],
    ['/live/', 404],
    ['/live/x/index.m3u8/', 404],
    ['/live/x/secret.key', 404],
    ['/live/x/index.html', 404],
    ['/live/-x/index.m3u8', 404],
    [`/live/${'a'.repeat(65)}/index.m3u8`, 404],
    ['/other/x/index.m3u8', 404],
  ];
  for (const [path, status] of refused) {
    it(`refuses ${JSON.stringify(path)} with ${status}`, () => {
      const result = parseMediaPath(path);
      assert.equal(result.ok, false);
      assert.equal(!result.ok && result.status, status);
    });
  }
});

describe('stripQuery', () => {
  it('drops the query string only', () => {
    assert.equal(stripQuery('/live/x/index.m3u8?CMCD=sid%3D1'), '/live/x/index.m3u8');
    assert.equal(stripQuery('/'), '/');
    assert.equal(stripQuery('/a?b?c'), '/a');
  });
});

describe('parseArchivePath', () => {
  const session = '20261122-041200-a1b2c3';
  it('accepts a recording\'s playlist, segments, inits and thumbnail', () => {
    assert.deepEqual(parseArchivePath(`/archive/demo/${session}/index.m3u8`), { ok: true, media: { stream: 'demo', session, file: 'index.m3u8', kind: 'playlist', ext: 'm3u8' } });
    assert.deepEqual(parseArchivePath(`/archive/demo/${session}/r1-3.m4s`), { ok: true, media: { stream: 'demo', session, file: 'r1-3.m4s', kind: 'segment', ext: 'm4s' } });
    assert.deepEqual(parseArchivePath(`/archive/demo/${session}/thumbnail.jpg`), { ok: true, media: { stream: 'demo', session, file: 'thumbnail.jpg', kind: 'segment', ext: 'jpg' } });
  });
  const refused: Array<[string, number]> = [
    [`/archive/demo/${session}/session.json`, 404],
    [`/archive/demo/${session}/other.jpg`, 404],
    [`/archive/demo/${session}/.index.m3u8.1a2b.tmp`, 404],
    ['/archive/demo/latest/index.m3u8', 404],
    ['/archive/demo/20261122-041200-A1B2C3/index.m3u8', 404],
    [`/archive/demo/index.m3u8`, 404],
    [`/archive/demo/${session}/x/index.m3u8`, 404],
    [`/archive/Demo/${session}/index.m3u8`, 404],
    [`/archive/demo/${session}/..%2f..%2flive%2fx%2findex.m3u8`, 400],
    [`/archive/demo/../../etc/passwd`, 400],
    [`/archive/demo//${session}/index.m3u8`, 400],
    [`/live/demo/${session}/index.m3u8`, 404],
  ];
  for (const [path, status] of refused) {
    it(`refuses ${JSON.stringify(path)} with ${status}`, () => {
      const result = parseArchivePath(path);
      assert.equal(result.ok, false);
      assert.equal(!result.ok && result.status, status);
    });
  }
});
