/**
 * ISO BMFF box headers (ISO/IEC 14496-12 §4.2) and walking a container's children. Every read is
 * bounds-checked against the enclosing box, so garbage gives an Fmp4Error, never a RangeError, an
 * out-of-bounds read or a loop that does not advance (a box is at least 8 bytes, so a walk always
 * moves forward).
 */
import { malformed } from './errors.ts';

/** Where one box lies in a buffer: `start` ≤ `bodyStart` ≤ `end`, all offsets into that buffer. */
export interface BoxHeader {
  type: string;
  start: number;
  /** First byte after the header (8 bytes, or 16 with a 64-bit largesize). Full boxes' version/flags are part of the body. */
  bodyStart: number;
  end: number;
}

/**
 * Box types are four printable characters. ASCII 0x20–0x7e, plus '©' (0xa9), which iTunes-style
 * metadata (ffmpeg's `©too` encoder tag in udta/meta/ilst) uses as its first character.
 */
export function isBoxType(buf: Buffer, at: number): boolean {
  return isTypeChar(buf[at]!) && isTypeChar(buf[at + 1]!) && isTypeChar(buf[at + 2]!) && isTypeChar(buf[at + 3]!);
}

function isTypeChar(c: number): boolean {
  return (c >= 0x20 && c <= 0x7e) || c === 0xa9;
}

function describeType(buf: Buffer, at: number): string {
  return isBoxType(buf, at) ? `'${buf.toString('latin1', at, at + 4)}'` : `0x${buf.toString('hex', at, at + 4)}`;
}

/** A box's four-character type as the 32-bit big-endian number it is on the wire: compare these, not strings, in hot loops. */
export function fourcc(type: string): number {
  return Buffer.from(type, 'latin1').readUInt32BE(0);
}

const typeNames = new Map<number, string>();

/** The type as a string; the few types a stream repeats are cached, so no string is made per box. */
export function typeName(code: number): string {
  let name = typeNames.get(code);
  if (name === undefined) {
    name = String.fromCharCode(code >>> 24, (code >>> 16) & 0xff, (code >>> 8) & 0xff, code & 0xff);
    if (typeNames.size < 256) typeNames.set(code, name);
  }
  return name;
}

/**
 * A mutable box position, refilled by readBoxInto: walking a moof this way allocates nothing per
 * child box. `type` is made on demand (error messages).
 */
export class BoxCursor {
  code = 0;
  start = 0;
  bodyStart = 0;
  end = 0;

  get type(): string {
    return typeName(this.code);
  }
}

/**
 * Reads the header of the box at `offset` into `box`; the box must end by `limit` (its parent's
 * end, or the end of the buffer). A declared size of 0 means "to the end of the file", legal only
 * for the last top-level box: pass `sizeZeroToLimit` there, and the box then ends at `limit`.
 * `where` names the parent in error messages.
 */
export function readBoxInto(box: BoxCursor, buf: Buffer, offset: number, limit: number, where = 'buffer', sizeZeroToLimit = false): BoxCursor {
  if (limit - offset < 8) throw malformed(`${limit - offset} stray bytes at ${offset} in ${where}: too short for a box header`);
  if (!isBoxType(buf, offset + 4)) throw malformed(`no box at ${offset} in ${where}: type ${describeType(buf, offset + 4)} is not 4 printable characters`);
  const code = buf.readUInt32BE(offset + 4);
  let size = buf.readUInt32BE(offset);
  let headerSize = 8;
  if (size === 1) {
    if (limit - offset < 16) throw malformed(`'${typeName(code)}' box at ${offset} in ${where}: 64-bit size runs past the end`);
    const high = buf.readUInt32BE(offset + 8);
    if (high > 0x1fffff) throw malformed(`'${typeName(code)}' box at ${offset} in ${where}: 64-bit size ${buf.readBigUInt64BE(offset + 8)} is absurd`);
    size = high * 0x1_0000_0000 + buf.readUInt32BE(offset + 12);
    headerSize = 16;
  } else if (size === 0) {
    if (!sizeZeroToLimit) throw malformed(`'${typeName(code)}' box at ${offset} in ${where}: size 0 ("to end of file") is only legal for a top-level box`);
    size = limit - offset;
  }
  if (size < headerSize) throw malformed(`'${typeName(code)}' box at ${offset} in ${where}: size ${size} is smaller than its ${headerSize}-byte header`);
  if (offset + size > limit) throw malformed(`'${typeName(code)}' box at ${offset} in ${where}: its ${size} bytes run past the end at ${limit}`);
  box.code = code;
  box.start = offset;
  box.bodyStart = offset + headerSize;
  box.end = offset + size;
  return box;
}

/** readBoxInto, as a fresh plain object: for code that keeps headers around (init segment parsing). */
export function readBoxHeader(buf: Buffer, offset: number, limit: number, where = 'buffer', sizeZeroToLimit = false): BoxHeader {
  const { code, start, bodyStart, end } = readBoxInto(new BoxCursor(), buf, offset, limit, where, sizeZeroToLimit);
  return { type: typeName(code), start, bodyStart, end };
}

/**
 * The boxes inside `parent`, in order. `skip` bytes at the start of the body are not boxes (4 for
 * a full box's version/flags, 8 for stsd's version/flags + entry count).
 */
export function childBoxes(buf: Buffer, parent: BoxHeader, skip = 0): BoxHeader[] {
  const children: BoxHeader[] = [];
  const where = `'${parent.type}' box at ${parent.start}`;
  let offset = parent.bodyStart + skip;
  if (offset > parent.end) throw malformed(`${where} is too short for its ${skip}-byte preamble`);
  while (offset < parent.end) {
    const child = readBoxHeader(buf, offset, parent.end, where);
    children.push(child);
    offset = child.end;
  }
  return children;
}

/** The first child of `parent` with this type, if any. */
export function findChild(buf: Buffer, parent: BoxHeader, type: string, skip = 0): BoxHeader | undefined {
  return childBoxes(buf, parent, skip).find((child) => child.type === type);
}

export function requireChild(buf: Buffer, parent: BoxHeader, type: string, skip = 0): BoxHeader {
  const child = findChild(buf, parent, type, skip);
  if (!child) throw malformed(`'${parent.type}' box at ${parent.start} has no '${type}' box`);
  return child;
}

/** A full box's version byte and 24-bit flags, after checking the body holds `minBody` bytes (version/flags included). */
export function fullBoxHeader(buf: Buffer, box: BoxHeader, minBody: number): { version: number; flags: number } {
  requireBody(box, minBody);
  return { version: buf[box.bodyStart]!, flags: buf.readUIntBE(box.bodyStart + 1, 3) };
}

/** Throws unless the box's body has at least `bytes` bytes. */
export function requireBody(box: BoxHeader | BoxCursor, bytes: number): void {
  if (box.end - box.bodyStart < bytes) throw malformed(`'${box.type}' box at ${box.start}: body of ${box.end - box.bodyStart} bytes, need ${bytes}`);
}
