/**
 * The viewer model shared by the k6 script and the Node runner: playlist parsing, the playback
 * buffer, and the scheduling of one viewer against a simulated live origin on a virtual clock
 * (so the cases are exact and independent of this machine's speed).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PlaybackBuffer } from '../lib/playback-buffer.js';
import { parsePlaylist, pickVariant, resolveUrl, type MediaPlaylist } from '../lib/playlist.js';
import { errorKind, watchStream, withCmcd, type ErrorKind, type FetchResult, type RequestWhat, type ViewerAction, type ViewerObserver, type ViewerSummary } from '../lib/viewer.js';

const INGEST_PLAYLIST = `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:41
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-MAP:URI="r1-init.mp4"
#EXTINF:2.000,
r1-41.m4s
#EXTINF:1.967,
r1-42.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="r2-init.mp4"
#EXTINF:2.033,
r2-0.m4s
`;

describe('playlist parsing', () => {
  it('reads a media playlist as ingest writes it: sequence numbers, durations, discontinuity, init segment per join', () => {
    const playlist = parsePlaylist(INGEST_PLAYLIST) as MediaPlaylist;
    assert.equal(playlist.type, 'media');
    assert.equal(playlist.targetDuration, 2);
    assert.equal(playlist.mediaSequence, 41);
    assert.equal(playlist.endList, false);
    assert.deepEqual(playlist.segments, [
      { uri: 'r1-41.m4s', duration: 2, sequence: 41, discontinuity: false, map: 'r1-init.mp4' },
      { uri: 'r1-42.m4s', duration: 1.967, sequence: 42, discontinuity: false, map: 'r1-init.mp4' },
      { uri: 'r2-0.m4s', duration: 2.033, sequence: 43, discontinuity: true, map: 'r2-init.mp4' },
    ]);
    assert.equal((parsePlaylist(`${INGEST_PLAYLIST}#EXT-X-ENDLIST\n`) as MediaPlaylist).endList, true);
    assert.equal((parsePlaylist(INGEST_PLAYLIST.replace(/\n/g, '\r\n')) as MediaPlaylist).segments.length, 3, 'CRLF line ends');
  });

  it('reads a master playlist and picks a rendition', () => {
    const master = parsePlaylist('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2"\n360p/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080\nsource/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720\n720p/index.m3u8\n');
    assert.equal(master.type, 'master');
    if (master.type !== 'master') return;
    assert.deepEqual(master.variants[0], { uri: '360p/index.m3u8', bandwidth: 800000, resolution: '640x360' });
    assert.equal(pickVariant(master.variants, 'highest', Math.random).uri, 'source/index.m3u8');
    assert.equal(pickVariant(master.variants, 'lowest', Math.random).uri, '360p/index.m3u8');
    assert.equal(pickVariant(master.variants, 'random', () => 0.5).uri, '720p/index.m3u8');
    assert.equal(pickVariant(master.variants, 'random', () => 0.9999).uri, 'source/index.m3u8');
  });

  it('refuses what is not a playlist, with a reason', () => {
    assert.throws(() => parsePlaylist('<html>502 Bad Gateway</html>'), /not an HLS playlist/);
    assert.throws(() => parsePlaylist('#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:2,\na.m4s\n'), /TARGETDURATION/);
    assert.throws(() => parsePlaylist('#EXTM3U\n#EXT-X-TARGETDURATION:2\na.m4s\n'), /without a valid #EXTINF/);
  });

  it('resolves relative, root-relative and absolute URIs like a browser', () => {
    const base = 'http://127.0.0.1:8080/live/demo/index.m3u8?CMCD=sid%3D%22x%22';
    assert.equal(resolveUrl(base, 'r1-1.m4s'), 'http://127.0.0.1:8080/live/demo/r1-1.m4s');
    assert.equal(resolveUrl(base, '720p/index.m3u8'), 'http://127.0.0.1:8080/live/demo/720p/index.m3u8');
    assert.equal(resolveUrl('http://h/live/demo/720p/index.m3u8', '../init.mp4'), 'http://h/live/demo/init.mp4');
    assert.equal(resolveUrl(base, '/live/other/a.m4s'), 'http://127.0.0.1:8080/live/other/a.m4s');
    assert.equal(resolveUrl(base, 'https://cdn.example/x.m4s'), 'https://cdn.example/x.m4s');
    assert.equal(resolveUrl('http://h', 'a.m4s'), 'http://h/a.m4s');
    for (const ref of ['r1-1.m4s', '720p/index.m3u8', '/x/y.ts', '../../a.m4s']) {
      assert.equal(resolveUrl(base, ref), new URL(ref, base).href, ref);
    }
  });

  it('adds the CMCD session id the way hls.js does (query parameter)', () => {
    assert.equal(withCmcd('http://h/live/a/index.m3u8', 'abc'), 'http://h/live/a/index.m3u8?CMCD=sid%3D%22abc%22');
    assert.equal(withCmcd('http://h/x?token=1', 'abc'), 'http://h/x?token=1&CMCD=sid%3D%22abc%22');
    assert.equal(withCmcd('http://h/x', null), 'http://h/x');
  });
});

describe('playback buffer', () => {
  it('adds segment durations, drains with wall time, and counts a stall from when it ran dry until the next segment', () => {
    const buffer = new PlaybackBuffer();
    buffer.advance(0);
    assert.equal(buffer.playing, false);
    assert.deepEqual(buffer.append(500, 2), { started: true, stallStarted: false, stallEndedSeconds: 0 });
    assert.equal(buffer.advance(1500), false);
    assert.equal(buffer.level, 1);
    buffer.append(1500, 2); // 3 s buffered
    assert.equal(buffer.advance(4000), false);
    assert.ok(Math.abs(buffer.level - 0.5) < 1e-9);
    assert.equal(buffer.advance(5000), true, 'ran dry at 4.5 s');
    assert.equal(buffer.stalled, true);
    assert.equal(buffer.advance(5500), false, 'one stall, reported once');
    const resumed = buffer.append(6000, 2);
    assert.equal(resumed.stallEndedSeconds, 1.5);
    assert.equal(buffer.stalls, 1);
    assert.equal(buffer.stallSeconds, 1.5);
    assert.equal(buffer.finish(9000).stallEndedSeconds, 1, 'a stall still going on at the end counts until the end');
    assert.equal(buffer.stalls, 2);
    assert.equal(buffer.stallSeconds, 2.5);
  });
});

/** A live origin on a virtual clock: a segment of `segmentSeconds` appears every `segmentSeconds`. */
interface Origin {
  segmentSeconds: number;
  window: number;
  /** Playlist stops advancing between these times (ms). */
  freeze?: [number, number];
  /** Ends (ENDLIST) after this many segments. */
  endAfter?: number;
  /** Answers these segment sequence numbers with 503. */
  failing?: Set<number>;
  master?: boolean;
}

function playlistAt(origin: Origin, nowMs: number): string {
  let produced = Math.floor(nowMs / (origin.segmentSeconds * 1000)) + 3; // 3 segments exist at t=0
  if (origin.freeze && nowMs >= origin.freeze[0]) produced = Math.min(produced, Math.floor(origin.freeze[0] / (origin.segmentSeconds * 1000)) + 3 + (nowMs >= origin.freeze[1] ? Math.floor((nowMs - origin.freeze[1]) / (origin.segmentSeconds * 1000)) : 0));
  const ended = origin.endAfter !== undefined && produced >= origin.endAfter;
  if (origin.endAfter !== undefined) produced = Math.min(produced, origin.endAfter);
  const first = Math.max(0, produced - origin.window);
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', `#EXT-X-TARGETDURATION:${Math.ceil(origin.segmentSeconds)}`, `#EXT-X-MEDIA-SEQUENCE:${first}`, '#EXT-X-MAP:URI="init.mp4"'];
  for (let seq = first; seq < produced; seq++) lines.push(`#EXTINF:${origin.segmentSeconds.toFixed(3)},`, `seg-${seq}.m4s`);
  if (ended) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}

interface Run {
  summary: ViewerSummary;
  requests: Array<{ what: RequestWhat; url: string; atMs: number }>;
  events: { startup: number[]; ratios: number[]; stallsStarted: number; stallSeconds: number; stale: number; errors: Array<[ErrorKind, RequestWhat]> };
}

/** Drives watchStream on a virtual clock: each request takes `latencyMs(what, url)`. */
function simulate(origin: Origin, durationMs: number, latencyMs: (what: RequestWhat, url: string) => number, startMs = 0): Run {
  const events: Run['events'] = { startup: [], ratios: [], stallsStarted: 0, stallSeconds: 0, stale: 0, errors: [] };
  const observer: ViewerObserver = {
    request: () => {},
    startup: (ms) => events.startup.push(ms),
    segment: (downloadMs, seconds) => events.ratios.push(downloadMs / (seconds * 1000)),
    stallStarted: () => (events.stallsStarted += 1),
    stallEnded: (s) => (events.stallSeconds += s),
    stale: () => (events.stale += 1),
    error: (kind, what) => events.errors.push([kind, what]),
  };
  const requests: Run['requests'] = [];
  const session: Generator<ViewerAction, ViewerSummary, unknown> = watchStream({ url: 'http://origin/live/demo/index.m3u8', startMs, durationMs, observer, sessionId: 's1' });
  let now = startMs;
  let step = session.next();
  while (!step.done) {
    const action = step.value;
    if (action.op === 'wait') {
      assert.ok(action.untilMs > now, 'a wait moves time forward');
      now = action.untilMs;
      step = session.next(now);
      continue;
    }
    const path = new URL(action.url).pathname;
    assert.ok(action.url.includes('CMCD=sid%3D%22s1%22'), 'every request carries the session id');
    requests.push({ what: action.what, url: path, atMs: now });
    const start = now;
    now += latencyMs(action.what, path);
    let result: FetchResult;
    if (origin.master && path === '/live/demo/index.m3u8') {
      result = { status: 200, body: '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=500000\nlow/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=3000000\nhigh/index.m3u8\n', bytes: 100, startMs: start, endMs: now, error: null };
    } else if (action.what === 'playlist') {
      result = { status: 200, body: playlistAt(origin, start), bytes: 300, startMs: start, endMs: now, error: null };
    } else {
      const seq = Number(/seg-(\d+)/.exec(path)?.[1]);
      const failing = origin.failing?.has(seq) ?? false;
      result = { status: failing ? 503 : 200, body: null, bytes: failing ? 0 : 300_000, startMs: start, endMs: now, error: null };
    }
    step = session.next(result);
  }
  return { summary: step.value, requests, events };
}

describe('one viewer against a live origin (virtual clock)', () => {
  const oneSecond: Origin = { segmentSeconds: 1, window: 6 };

  it('on a fast network: starts three segments from the live edge, loads each new segment once, reloads about every target duration, never stalls', () => {
    const run = simulate(oneSecond, 60_000, (what) => (what === 'playlist' ? 5 : 50));
    const segments = run.requests.filter((r) => r.what === 'segment').map((r) => Number(/seg-(\d+)/.exec(r.url)![1]));
    assert.deepEqual(segments.slice(0, 3), [0, 1, 2], 'the first three from the live edge (3 exist at t=0)');
    assert.equal(new Set(segments).size, segments.length, 'no segment loaded twice');
    assert.deepEqual(segments, segments.slice().sort((a, b) => a - b), 'in order');
    assert.ok(segments.length >= 60 && segments.length <= 63, `3 at the start, then one per second: ${segments.length}`);
    assert.equal(run.requests.filter((r) => r.what === 'init').length, 1, 'the init segment once');
    const playlists = run.requests.filter((r) => r.what === 'playlist').length;
    assert.ok(playlists >= 60 && playlists <= 125, `reloads between every target duration and every half: ${playlists}`);
    assert.equal(run.events.startup.length, 1);
    assert.equal(run.events.startup[0], 5 + 50 + 50, 'startup = playlist + init + first segment');
    assert.equal(run.summary.startupMs, 105);
    assert.equal(run.events.stallsStarted, 0);
    assert.equal(run.events.stale, 0);
    assert.deepEqual(run.events.errors, []);
    assert.ok(run.events.ratios.every((r) => Math.abs(r - 0.05) < 1e-9), 'download ratio = 50 ms / 1 s');
    assert.equal(run.summary.segments, segments.length);
  });

  it('on a network slower than real time: the buffer runs dry and stalls are counted with their length', () => {
    const run = simulate(oneSecond, 30_000, (what) => (what === 'segment' ? 1300 : 5));
    assert.ok(run.events.stallsStarted >= 1, `stalls: ${run.events.stallsStarted}`);
    assert.ok(run.events.stallSeconds > 0);
    assert.equal(run.summary.stalls, run.events.stallsStarted);
    assert.ok(run.events.ratios.every((r) => r > 1));
    assert.ok(run.events.errors.some(([kind]) => kind === 'fell_behind'), 'segments left the window before it got to them');
  });

  it('reports a playlist that stops advancing for 1.5 target durations as stale, once per episode', () => {
    const run = simulate({ ...oneSecond, freeze: [10_000, 20_000] }, 40_000, () => 10);
    assert.equal(run.events.stale, 1);
    assert.ok(run.events.stallsStarted >= 1, 'and the player ran dry meanwhile');
    const quiet = simulate({ ...oneSecond, freeze: [10_000, 10_200] }, 20_000, () => 10);
    assert.equal(quiet.events.stale, 0, 'a delay shorter than 1.5 target durations is not stale');
  });

  it('follows a master playlist to the highest rendition, relative to the master', () => {
    const run = simulate({ ...oneSecond, master: true }, 5_000, () => 10);
    assert.equal(run.requests[0]!.url, '/live/demo/index.m3u8');
    assert.equal(run.requests[1]!.url, '/live/demo/high/index.m3u8');
    assert.ok(run.requests.slice(2).every((r) => r.url.startsWith('/live/demo/high/')));
  });

  it('retries a failing segment, then skips it; errors are counted by kind', () => {
    const run = simulate({ ...oneSecond, failing: new Set([5]) }, 20_000, () => 10);
    const tries = run.requests.filter((r) => r.url.endsWith('/seg-5.m4s')).length;
    assert.equal(tries, 3, 'first try and two retries');
    assert.deepEqual(run.events.errors, [['http_5xx', 'segment'], ['http_5xx', 'segment'], ['http_5xx', 'segment']]);
    assert.ok(run.requests.some((r) => r.url.endsWith('/seg-6.m4s')), 'then it moves on');
  });

  it('stops at EXT-X-ENDLIST after playing out what it has', () => {
    const run = simulate({ ...oneSecond, endAfter: 10 }, 60_000, () => 10);
    assert.equal(run.summary.ended, true);
    assert.equal(run.summary.segments, 10);
    assert.equal(run.events.stallsStarted, 0);
  });

  it('classifies failures', () => {
    const base = { body: null, bytes: 0, startMs: 0, endMs: 1 };
    assert.equal(errorKind({ ...base, status: 200, error: null }), null);
    assert.equal(errorKind({ ...base, status: 206, error: null }), null);
    assert.equal(errorKind({ ...base, status: 404, error: null }), 'http_4xx');
    assert.equal(errorKind({ ...base, status: 502, error: null }), 'http_5xx');
    assert.equal(errorKind({ ...base, status: 0, error: 'timeout' }), 'timeout');
    assert.equal(errorKind({ ...base, status: 0, error: 'network' }), 'network');
  });
});
