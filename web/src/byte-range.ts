/** One satisfiable byte range, inclusive at both ends (as in Content-Range). */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Reads a `Range` header for a body of `size` bytes. Only a single `bytes=` range is honoured:
 * - `null`: no usable Range (absent, malformed, another unit, several ranges) → send the whole body,
 *   which RFC 9110 allows a server to do for any Range it does not want to handle;
 * - `'unsatisfiable'`: well-formed but outside the body → 416;
 * - a ByteRange, clamped to the body → 206.
 */
export function parseByteRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  if (header === undefined) return null;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return null;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return null;
  if (first === '') {
    // Suffix range: the last N bytes.
    const length = Number(last);
    if (length === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? Infinity : Number(last);
  if (end < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}
