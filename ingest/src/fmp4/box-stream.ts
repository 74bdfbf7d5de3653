/**
 * Splits a byte stream (ffmpeg's pipe) into complete top-level boxes, whatever the chunk
 * boundaries: a box split over many chunks, or many boxes in one chunk. A box that lies inside
 * one chunk is handed out as a subarray of it (no copy); only a box that spans chunks is copied,
 * once, into a buffer of its declared size. That size is checked against `maxBoxSize` before
 * anything is allocated, so a garbage header cannot make us reserve gigabytes.
 */
import { isBoxType, typeName } from './boxes.ts';
import { Fmp4Error, malformed } from './errors.ts';

export const DEFAULT_MAX_BOX_SIZE = 16 * 1024 * 1024;

export interface TopLevelBox {
  type: string;
  /** Position of the box's first byte in the stream (bytes pushed before it). */
  offset: number;
  /** The whole box, header included. */
  bytes: Buffer;
  /** 8, or 16 for a 64-bit largesize. */
  headerSize: number;
}

export interface BoxSplitterOptions {
  /** Largest box accepted, in bytes, header included. */
  maxBoxSize?: number;
}

interface Header {
  type: string;
  /** 0: the box runs to the end of the stream. */
  size: number;
  headerSize: number;
}

export class BoxSplitter {
  readonly maxBoxSize: number;
  /** Stream position of the next byte to be pushed. */
  private position = 0;
  /** Stream position where the box being assembled starts. */
  private boxStart = 0;
  /** A header that spans chunks is gathered here first (a header is at most 16 bytes). */
  private readonly scratch = Buffer.alloc(16);
  private scratchLength = 0;
  /** A box that spans chunks, once its size is known. */
  private partial: { header: Header; bytes: Buffer; filled: number } | undefined;
  /** A size-0 ("to the end") box: its pieces, joined at end(). */
  private toEnd: { header: Header; pieces: Buffer[]; length: number } | undefined;
  private failure: Fmp4Error | undefined;
  private ended = false;

  constructor(options: BoxSplitterOptions = {}) {
    this.maxBoxSize = options.maxBoxSize ?? DEFAULT_MAX_BOX_SIZE;
  }

  /** Bytes held back, waiting for the rest of their box. */
  get bufferedBytes(): number {
    return this.scratchLength + (this.partial?.filled ?? 0) + (this.toEnd?.length ?? 0);
  }

  /**
   * Takes the next chunk of the stream; appends the boxes it completes to `out`, in stream order,
   * and returns `out`. Boxes may be views of `chunk`: do not reuse a chunk's memory afterwards. Throws an Fmp4Error on malformed or oversize data: `out` then holds the
   * good boxes before the bad bytes. After an error the stream is out of step, so every later
   * call throws the same error.
   */
  push(chunk: Buffer, out: TopLevelBox[] = []): TopLevelBox[] {
    if (this.failure) throw this.failure;
    if (this.ended) throw new Error('BoxSplitter.push after end()');
    try {
      this.consume(chunk, out);
      this.position += chunk.length;
      return out;
    } catch (err) {
      if (err instanceof Fmp4Error) this.failure = err;
      throw err;
    }
  }

  /**
   * The stream is over: returns a pending size-0 box, if any. A box left incomplete is an
   * ONAIR_FMP4_TRUNCATED error (until now it was just "more to come").
   */
  end(): TopLevelBox[] {
    if (this.failure) throw this.failure;
    if (this.ended) return [];
    this.ended = true;
    if (this.toEnd) {
      const { header, pieces, length } = this.toEnd;
      this.toEnd = undefined;
      const bytes = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, length);
      return [{ type: header.type, offset: this.boxStart, bytes, headerSize: header.headerSize }];
    }
    let problem: string | undefined;
    if (this.partial) {
      const { header, filled, bytes } = this.partial;
      problem = `stream ended ${filled} bytes into a '${header.type}' box of ${bytes.length} bytes at ${this.boxStart}`;
    } else if (this.scratchLength > 0) {
      problem = `stream ended with ${this.scratchLength} bytes of a box header at ${this.boxStart}`;
    }
    if (problem) {
      this.failure = new Fmp4Error('ONAIR_FMP4_TRUNCATED', problem);
      throw this.failure;
    }
    return [];
  }

  private consume(chunk: Buffer, boxes: TopLevelBox[]): void {
    let at = 0;
    if (this.toEnd) {
      this.appendToEnd(chunk);
      return;
    }
    if (this.scratchLength > 0) {
      // A header began in an earlier chunk: top the scratch up with (at most) enough bytes to read it.
      const take = Math.min(chunk.length, 16 - this.scratchLength);
      chunk.copy(this.scratch, this.scratchLength, 0, take);
      const header = this.readHeader(this.scratch, 0, this.scratchLength + take, this.boxStart);
      if (!header) {
        this.scratchLength += take;
        return;
      }
      const held = this.scratch.subarray(0, this.scratchLength);
      this.scratchLength = 0;
      if (header.size === 0) {
        this.toEnd = { header, pieces: [Buffer.from(held)], length: held.length };
        this.appendToEnd(chunk);
        return;
      }
      // The header is known; the box's bytes so far are the scratch's, the rest comes from this chunk on.
      const bytes = Buffer.allocUnsafe(header.size);
      held.copy(bytes, 0);
      this.partial = { header, bytes, filled: held.length };
    }
    if (this.partial) {
      const partial = this.partial;
      const take = Math.min(chunk.length, partial.bytes.length - partial.filled);
      chunk.copy(partial.bytes, partial.filled, 0, take);
      partial.filled += take;
      at = take;
      if (partial.filled < partial.bytes.length) return;
      this.partial = undefined;
      boxes.push({ type: partial.header.type, offset: this.boxStart, bytes: partial.bytes, headerSize: partial.header.headerSize });
    }
    // Fast path: boxes that lie whole inside this chunk are subarrays of it.
    while (at < chunk.length) {
      const start = this.position + at;
      const header = this.readHeader(chunk, at, chunk.length, start);
      this.boxStart = start;
      if (!header) {
        this.scratchLength = chunk.copy(this.scratch, 0, at);
        break;
      }
      if (header.size === 0) {
        this.toEnd = { header, pieces: [], length: 0 };
        this.appendToEnd(chunk.subarray(at));
        break;
      }
      if (at + header.size <= chunk.length) {
        boxes.push({ type: header.type, offset: start, bytes: chunk.subarray(at, at + header.size), headerSize: header.headerSize });
        at += header.size;
        continue;
      }
      const bytes = Buffer.allocUnsafe(header.size);
      this.partial = { header, bytes, filled: chunk.copy(bytes, 0, at) };
      break;
    }
  }

  private appendToEnd(piece: Buffer): void {
    const toEnd = this.toEnd!;
    if (toEnd.length + piece.length > this.maxBoxSize) {
      throw new Fmp4Error('ONAIR_FMP4_TOO_LARGE', `'${toEnd.header.type}' box at ${this.boxStart} runs to the end of the stream and is past the ${this.maxBoxSize}-byte limit`);
    }
    if (piece.length === 0) return;
    toEnd.pieces.push(piece);
    toEnd.length += piece.length;
  }

  /** The header at `at`, or undefined when fewer bytes than it needs are available before `end`. */
  private readHeader(buf: Buffer, at: number, end: number, streamOffset: number): Header | undefined {
    if (end - at < 8) return undefined;
    if (!isBoxType(buf, at + 4)) {
      throw malformed(`no box at stream byte ${streamOffset}: type 0x${buf.toString('hex', at + 4, at + 8)} is not 4 printable characters`);
    }
    const type = typeName(buf.readUInt32BE(at + 4));
    let size = buf.readUInt32BE(at);
    let headerSize = 8;
    if (size === 1) {
      if (end - at < 16) return undefined;
      const large = buf.readBigUInt64BE(at + 8);
      if (large > BigInt(this.maxBoxSize)) throw this.tooLarge(type, large.toString(), streamOffset);
      size = Number(large);
      headerSize = 16;
    }
    if (size === 0) return { type, size, headerSize };
    if (size < headerSize) throw malformed(`'${type}' box at stream byte ${streamOffset}: size ${size} is smaller than its ${headerSize}-byte header`);
    if (size > this.maxBoxSize) throw this.tooLarge(type, String(size), streamOffset);
    return { type, size, headerSize };
  }

  private tooLarge(type: string, size: string, streamOffset: number): Fmp4Error {
    return new Fmp4Error('ONAIR_FMP4_TOO_LARGE', `'${type}' box at stream byte ${streamOffset} declares ${size} bytes, over the ${this.maxBoxSize}-byte limit`);
  }
}
