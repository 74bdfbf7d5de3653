import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMediaPlaylist, renderMediaPlaylist, type ParsedMediaPlaylist } from '../../common/src/hls/media-playlist.ts';
import { advancePartLimit, decideReload, parseReloadDirectives, type ReloadDirectives } from '../src/blocking-reload.ts';
import { playlistVersion, supersedes } from '../src/playlist-version.ts';
import { LowLatencyPlaylist } from './ll-fixtures.ts';

const block = (msn: number, part: number | null = null): ReloadDirectives => ({ kind: 'block', msn, part });

/**
 * A live LL playlist, parsed: 4 parts of 0.25 s per 1 s segment, `complete` segments from MSN 10,
 * `open` parts of the open segment listed.
 */
function live(complete: number, open: number, shape: Partial<ConstructorParameters<typeof LowLatencyPlaylist>[0]> = {}): ParsedMediaPlaylist {
  const model = new LowLatencyPlaylist({ firstMsn: 10, windowSegments: 100, ...shape });
  for (let i = 0; i < complete * model.shape.partsPerSegment + open; i++) model.addPart();
  return parseMediaPlaylist(model.render());
}

describe('parseReloadDirectives', () => {
  it('reads _HLS_msn and _HLS_part, ignoring every other parameter', () => {
    assert.deepEqual(parseReloadDirectives(''), { kind: 'none' });
    assert.deepEqual(parseReloadDirectives('CMCD=sid%3D%22abc%22%2Cbr%3D3000&token=x.y.z'), { kind: 'none' });
    assert.deepEqual(parseReloadDirectives('_HLS_skip=YES'), { kind: 'none' });
    assert.deepEqual(parseReloadDirectives('_HLS_msn=12'), block(12));
    assert.deepEqual(parseReloadDirectives('_HLS_msn=12&_HLS_part=3'), block(12, 3));
    assert.deepEqual(parseReloadDirectives('CMCD=ot%3Dm&_HLS_part=0&token=abc&_HLS_msn=0&_HLS_skip=v2'), block(0, 0));
    assert.deepEqual(parseReloadDirectives('_HLS_msn=007'), block(7), 'leading zeros are still decimal digits');
    assert.deepEqual(parseReloadDirectives('_hls_msn=5&x_HLS_msn=3'), { kind: 'none' }, 'names are matched exactly');
  });

  it('refuses _HLS_part without _HLS_msn', () => {
    assert.deepEqual(parseReloadDirectives('_HLS_part=2'), { kind: 'invalid', reason: '_HLS_part without _HLS_msn' });
    assert.deepEqual(parseReloadDirectives('CMCD=x&_HLS_part=0&_HLS_skip=YES'), { kind: 'invalid', reason: '_HLS_part without _HLS_msn' });
  });

  it('refuses anything but plain decimal digits, and more than 15 of them', () => {
    for (const value of ['', '-1', '+1', ' 1', '1 ', '%201', '%31', '1e3', '1.0', '0x10', 'ten', '1,2', '١٢', '9'.repeat(16), '0'.repeat(16)]) {
      const msn = parseReloadDirectives(`_HLS_msn=${value}`);
      assert.equal(msn.kind, 'invalid', `_HLS_msn=${JSON.stringify(value)}`);
      const part = parseReloadDirectives(`_HLS_msn=1&_HLS_part=${value}`);
      assert.equal(part.kind, 'invalid', `_HLS_part=${JSON.stringify(value)}`);
    }
    assert.equal(parseReloadDirectives('_HLS_msn').kind, 'invalid', 'no value at all');
    assert.deepEqual(parseReloadDirectives(`_HLS_msn=${'9'.repeat(15)}`), block(999_999_999_999_999));
  });

  it('refuses a directive given twice, even with the same value (documented: one URL, one meaning)', () => {
    assert.deepEqual(parseReloadDirectives('_HLS_msn=1&_HLS_msn=2'), { kind: 'invalid', reason: '_HLS_msn given twice' });
    assert.deepEqual(parseReloadDirectives('_HLS_msn=1&_HLS_msn=1'), { kind: 'invalid', reason: '_HLS_msn given twice' });
    assert.deepEqual(parseReloadDirectives('_HLS_msn=1&_HLS_part=0&_HLS_part=0'), { kind: 'invalid', reason: '_HLS_part given twice' });
    assert.deepEqual(parseReloadDirectives('_HLS_skip=YES&_HLS_skip=v2&_HLS_msn=3'), block(3), 'a repeated _HLS_skip is as ignored as one');
  });

  it('stays cheap on an oversized query', () => {
    const huge = `${'CMCD=x&'.repeat(2_000)}_HLS_msn=4&_HLS_part=1`;
    const startedAt = performance.now();
    assert.deepEqual(parseReloadDirectives(huge), block(4, 1));
    assert.ok(performance.now() - startedAt < 50);
    assert.equal(parseReloadDirectives(`_HLS_msn=${'1'.repeat(10_000)}`).kind, 'invalid');
  });
});

describe('decideReload', () => {
  // 3 complete segments 10, 11, 12 (the last 2 list their 4 parts); open segment 13 with 2 parts.
  const playlist = live(3, 2);

  it('the fixture is what the contract describes', () => {
    assert.equal(playlist.canBlockReload, true);
    assert.equal(playlist.mediaSequence, 10);
    assert.equal(playlist.segments.length, 3);
    assert.deepEqual(playlist.segments.map((s) => s.parts.length), [0, 4, 4]);
    assert.equal(playlist.openParts.length, 2);
    assert.equal(playlist.partTarget, 0.25);
  });

  it('no directives: plain', () => {
    assert.deepEqual(decideReload(playlist, { kind: 'none' }), { kind: 'plain' });
  });

  it('segment M without _HLS_part: ready once complete, held for the next two', () => {
    for (const msn of [0, 9, 10, 11, 12]) assert.deepEqual(decideReload(playlist, block(msn)), { kind: 'ready' }, `msn ${msn}`);
    assert.deepEqual(decideReload(playlist, block(13)), { kind: 'wait' });
    assert.deepEqual(decideReload(playlist, block(14)), { kind: 'wait' });
  });

  it('M > last MSN + 2: 400', () => {
    const decision = decideReload(playlist, block(15));
    assert.equal(decision.kind, 'bad');
    assert.deepEqual(decideReload(playlist, block(15, 0)).kind, 'bad');
    assert.deepEqual(decideReload(playlist, block(1_000_000)).kind, 'bad');
  });

  it('part N of the open segment: ready when listed, held when next', () => {
    assert.deepEqual(decideReload(playlist, block(13, 0)), { kind: 'ready' });
    assert.deepEqual(decideReload(playlist, block(13, 1)), { kind: 'ready' });
    assert.deepEqual(decideReload(playlist, block(13, 2)), { kind: 'wait' }, 'the hinted part');
    assert.deepEqual(decideReload(playlist, block(13, 3)), { kind: 'wait' });
  });

  it('part N of a complete segment: ready, and past its last part it means part 0 of the next', () => {
    assert.deepEqual(decideReload(playlist, block(12, 3)), { kind: 'ready' });
    assert.deepEqual(decideReload(playlist, block(11, 4)), { kind: 'ready' }, '11 has 4 parts: part 4 = part 0 of 12, complete');
    assert.deepEqual(decideReload(playlist, block(12, 4)), { kind: 'ready' }, 'part 0 of 13 is listed');
    assert.deepEqual(decideReload(playlist, block(12, 99)), { kind: 'ready' }, 'any part past the last one means the next segment');
    // Right after segment 12 completed, before any part of 13: part 4 of 12 is held for 13.0.
    const atBoundary = live(3, 0);
    assert.deepEqual(decideReload(atBoundary, block(12, 3)), { kind: 'ready' });
    assert.deepEqual(decideReload(atBoundary, block(12, 4)), { kind: 'wait' });
    assert.deepEqual(decideReload(atBoundary, block(13, 0)), { kind: 'wait' });
    assert.deepEqual(decideReload(atBoundary, block(13)), { kind: 'wait' });
    assert.deepEqual(decideReload(atBoundary, block(12)), { kind: 'ready' });
  });

  it('an older complete segment that no longer lists parts: ready (M < last MSN)', () => {
    assert.deepEqual(decideReload(playlist, block(10, 0)), { kind: 'ready' });
    assert.deepEqual(decideReload(playlist, block(10, 7)), { kind: 'ready' });
    assert.deepEqual(decideReload(playlist, block(3, 1)), { kind: 'ready' }, 'out of the window altogether');
  });

  it('a part beyond the Advance Part Limit: 400 (3 / PART-TARGET parts below 1 s)', () => {
    assert.equal(advancePartLimit(0.25), 12);
    assert.ok(Math.abs(advancePartLimit(0.334) - 8.98) < 0.01);
    assert.equal(advancePartLimit(1), 3);
    assert.equal(advancePartLimit(2), 3);
    assert.equal(advancePartLimit(null), 3);
    // Last listed part is 13.1: part 13.(1 + 12) is exactly at the limit, one more is beyond.
    assert.deepEqual(decideReload(playlist, block(13, 13)), { kind: 'wait' });
    assert.equal(decideReload(playlist, block(13, 14)).kind, 'bad');
    // Segment 14 (last + 2): counted from the last listed part, the open segment's rest unknown (counted 0).
    assert.deepEqual(decideReload(playlist, block(14, 0)), { kind: 'wait' });
    assert.deepEqual(decideReload(playlist, block(14, 11)), { kind: 'wait' });
    assert.equal(decideReload(playlist, block(14, 12)).kind, 'bad');
    // With PART-TARGET ≥ 1 s the limit is 3 parts.
    const slow = live(2, 1, { partTarget: 1, targetDuration: 4 });
    assert.deepEqual(decideReload(slow, block(12, 3)), { kind: 'wait' }, 'last listed 12.0, 12.3 is 3 ahead');
    assert.equal(decideReload(slow, block(12, 4)).kind, 'bad');
    // At a segment boundary the last listed part is the complete segment's last.
    const atBoundary = live(3, 0);
    assert.deepEqual(decideReload(atBoundary, block(13, 11)), { kind: 'wait' });
    assert.equal(decideReload(atBoundary, block(13, 12)).kind, 'bad');
  });

  it('malformed directives: 400, with the reason', () => {
    assert.deepEqual(decideReload(playlist, parseReloadDirectives('_HLS_part=1')), { kind: 'bad', reason: '_HLS_part without _HLS_msn' });
    assert.deepEqual(decideReload(playlist, parseReloadDirectives('_HLS_msn=-1')), { kind: 'bad', reason: '_HLS_msn is not a decimal integer' });
    assert.deepEqual(decideReload(playlist, parseReloadDirectives('_HLS_msn=1&_HLS_part=x')), { kind: 'bad', reason: '_HLS_part is not a decimal integer' });
  });

  it('ignores directives (even malformed ones) after EXT-X-ENDLIST', () => {
    const model = new LowLatencyPlaylist({ firstMsn: 10 });
    for (let i = 0; i < 10; i++) model.addPart();
    model.ended = true;
    const ended = parseMediaPlaylist(model.render());
    assert.equal(ended.ended, true);
    for (const directives of [block(99), block(12, 3), block(1_000_000, 0), parseReloadDirectives('_HLS_part=1'), parseReloadDirectives('_HLS_msn=x')]) {
      assert.deepEqual(decideReload(ended, directives), { kind: 'plain' }, JSON.stringify(directives));
    }
  });

  it('ignores directives on a playlist without CAN-BLOCK-RELOAD (classic HLS)', () => {
    const classic = parseMediaPlaylist(
      renderMediaPlaylist({
        targetDuration: 2,
        mediaSequence: 5,
        discontinuitySequence: 0,
        ended: false,
        segments: [{ uri: 'r-5.m4s', duration: 2, initUri: 'r-init.mp4', discontinuity: false, programDateTime: null }],
      }),
    );
    assert.equal(classic.canBlockReload, false);
    for (const directives of [block(6), block(100), block(6, 0), parseReloadDirectives('_HLS_part=1')]) {
      assert.deepEqual(decideReload(classic, directives), { kind: 'plain' });
    }
  });

  it('an empty live playlist (nothing complete yet) waits for the first segment and part', () => {
    const empty = live(0, 0);
    assert.equal(empty.segments.length, 0);
    assert.deepEqual(decideReload(empty, block(10, 0)), { kind: 'wait' });
    assert.deepEqual(decideReload(empty, block(10)), { kind: 'wait' });
    assert.deepEqual(decideReload(empty, block(11)), { kind: 'wait' });
    assert.equal(decideReload(empty, block(12)).kind, 'bad');
    assert.deepEqual(decideReload(live(0, 1), block(10, 0)), { kind: 'ready' });
  });
});

describe('playlist versions', () => {
  const version = (complete: number, open: number, origin: 'file' | 'feed', ended = false) => {
    const model = new LowLatencyPlaylist({ firstMsn: 10 });
    for (let i = 0; i < complete * 4 + open; i++) model.addPart();
    model.ended = ended;
    return playlistVersion(Buffer.from(model.render()), origin);
  };

  it('across sources the newer position wins, then ENDLIST; an equal position keeps the held one', () => {
    assert.equal(supersedes(version(3, 2, 'feed'), version(3, 1, 'file')), true);
    assert.equal(supersedes(version(4, 0, 'feed'), version(3, 3, 'file')), true);
    assert.equal(supersedes(version(3, 1, 'file'), version(3, 2, 'feed')), false, 'an older file read (NFS) does not undo the feed');
    assert.equal(supersedes(version(3, 2, 'file'), version(3, 2, 'feed')), false);
    assert.equal(supersedes(version(3, 0, 'file', true), version(3, 0, 'feed')), true, 'ENDLIST at the same position is newer');
    assert.equal(supersedes(version(3, 0, 'feed'), version(3, 0, 'file', true)), false);
  });

  it('within one source arrival order is the order (numbering restarted, hint dropped)', () => {
    assert.equal(supersedes(version(1, 0, 'file'), version(5, 0, 'file', true)), true);
    assert.equal(supersedes(version(1, 0, 'feed'), version(5, 0, 'feed', true)), true);
  });

  it('a master playlist has no position: a different one replaces', () => {
    const master = playlistVersion(Buffer.from('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nsource/index.m3u8\n'), 'file');
    assert.equal(master.media, null);
    assert.equal(supersedes(master, version(3, 2, 'feed')), true);
    assert.equal(supersedes(version(3, 2, 'feed'), master), true);
  });
});
