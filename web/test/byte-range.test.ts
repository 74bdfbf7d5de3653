import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseByteRange } from '../src/byte-range.ts';

describe('parseByteRange', () => {
  it('is null without a header', () => assert.equal(parseByteRange(undefined, 100), null));

  it('reads closed, open-ended and suffix ranges', () => {
    assert.deepEqual(parseByteRange('bytes=0-9', 100), { start: 0, end: 9 });
    assert.deepEqual(parseByteRange('bytes=90-', 100), { start: 90, end: 99 });
    assert.deepEqual(parseByteRange('bytes=-10', 100), { start: 90, end: 99 });
    assert.deepEqual(parseByteRange('bytes=0-0', 1), { start: 0, end: 0 });
    assert.deepEqual(parseByteRange('BYTES = 5 - 6', 100), { start: 5, end: 6 });
  });

  it('clamps ranges that run past the end', () => {
    assert.deepEqual(parseByteRange('bytes=50-1000', 100), { start: 50, end: 99 });
    assert.deepEqual(parseByteRange('bytes=-1000', 100), { start: 0, end: 99 });
    assert.deepEqual(parseByteRange('bytes=0-99999999999999999999999', 100), { start: 0, end: 99 });
  });

  it('is unsatisfiable when the range starts at or after the end', () => {
    assert.equal(parseByteRange('bytes=100-', 100), 'unsatisfiable');
    assert.equal(parseByteRange('bytes=100-200', 100), 'unsatisfiable');
    assert.equal(parseByteRange('bytes=99999999999999999999-', 100), 'unsatisfiable');
    assert.equal(parseByteRange('bytes=-0', 100), 'unsatisfiable');
    assert.equal(parseByteRange('bytes=0-', 0), 'unsatisfiable');
    assert.equal(parseByteRange('bytes=-5', 0), 'unsatisfiable');
  });

  it('ignores what it does not handle (the whole body is sent instead)', () => {
    for (const header of ['', 'bytes=', 'bytes=-', 'bytes=5-3', 'bytes=0-1,5-6', 'items=0-1', 'bytes=a-b', 'bytes=1.5-2', 'bytes=-1-2']) {
      assert.equal(parseByteRange(header, 100), null, header);
    }
  });
});
