/**
 * Reads ffmpeg's fragmented-MP4 byte stream incrementally: chunks in, the init segment once, then
 * one batch of samples per moof+mdat. Errors never escape push()/end(): they go to onError, once,
 * and the reader ignores everything after (a stream that lost sync cannot be trusted again; ingest
 * restarts the muxer). Only an exception thrown by a handler itself propagates.
 * Top-level boxes other than ftyp/moov/moof/mdat are skipped, as ISO BMFF readers should.
 */
import { BoxSplitter, type BoxSplitterOptions, type TopLevelBox } from './box-stream.ts';
import { Fmp4Error, malformed } from './errors.ts';
import { parseFragment, type Fragment, type FragmentContext, type Sample } from './fragment.ts';
import { parseInitSegment, type InitSegment } from './init-segment.ts';

export interface ReaderFragment extends Fragment {
  /** Stream position of the moof. */
  moofOffset: number;
  /** The boxes as read (subarrays of the pushed chunks when a box did not span chunks). */
  moof: Buffer;
  mdat: Buffer;
}

export type { InitSegment };

export interface Fmp4ReaderHandlers {
  onInit(init: InitSegment): void;
  /** Each fragment's samples, as a batch. */
  onFragment?(fragment: ReaderFragment): void;
  /** The same samples one by one, after onFragment, for a consumer that does not care about fragment boundaries. */
  onSample?(sample: Sample): void;
  onError(error: Fmp4Error): void;
}

type ReaderEvent = { init: InitSegment } | { fragment: ReaderFragment };

export class Fmp4Reader {
  private readonly splitter: BoxSplitter;
  private ftyp: Buffer | undefined;
  private initSegment: InitSegment | undefined;
  private context: FragmentContext | undefined;
  private moof: TopLevelBox | undefined;
  private failure: Fmp4Error | undefined;
  private readonly events: ReaderEvent[] = [];
  private ended = false;

  constructor(
    private readonly handlers: Fmp4ReaderHandlers,
    options: BoxSplitterOptions = {},
  ) {
    this.splitter = new BoxSplitter(options);
  }

  get init(): InitSegment | undefined {
    return this.initSegment;
  }

  /** The error reported, if any: from then on the reader ignores its input. */
  get error(): Fmp4Error | undefined {
    return this.failure;
  }

  /** Takes the next chunk of the stream, of any size. Ignored after an error or after end(). */
  push(chunk: Buffer): void {
    if (this.failure || this.ended) return;
    this.run(() => {
      // Boxes before a bad header in the same chunk are still good: take them, then report.
      const boxes: TopLevelBox[] = [];
      let splitError: unknown;
      try {
        this.splitter.push(chunk, boxes);
      } catch (err) {
        splitError = err;
      }
      for (const box of boxes) this.take(box);
      if (splitError !== undefined) throw splitError;
    });
  }

  /** The stream is over: an incomplete box, a moof without its mdat or no init segment at all is an ONAIR_FMP4_TRUNCATED error. */
  end(): void {
    if (this.failure || this.ended) return;
    this.ended = true;
    this.run(() => {
      for (const box of this.splitter.end()) this.take(box);
      if (this.moof) throw new Fmp4Error('ONAIR_FMP4_TRUNCATED', `stream ended after the moof at stream byte ${this.moof.offset}, before its mdat`);
      if (!this.initSegment) throw new Fmp4Error('ONAIR_FMP4_TRUNCATED', 'stream ended before the init segment (ftyp + moov)');
    });
  }

  /** Runs the parsing, then hands out what it produced, outside the try: a handler's own exception is not ours to report. */
  private run(work: () => void): void {
    let error: Fmp4Error | undefined;
    try {
      work();
    } catch (err) {
      error = err instanceof Fmp4Error ? err : new Fmp4Error('ONAIR_FMP4_INTERNAL', `fMP4 reader bug: ${String(err instanceof Error ? err.message : err)}`, { cause: err });
      this.failure = error;
    }
    const events = this.events.splice(0);
    const handlers = this.handlers;
    for (const event of events) {
      if ('init' in event) {
        handlers.onInit(event.init);
        continue;
      }
      handlers.onFragment?.(event.fragment);
      if (handlers.onSample) for (const sample of event.fragment.samples) handlers.onSample(sample);
    }
    if (error) this.handlers.onError(error);
  }

  private take(box: TopLevelBox): void {
    try {
      this.takeBox(box);
    } catch (err) {
      // Say where in the stream: the parsers only know offsets within their box.
      if (err instanceof Fmp4Error && err.code === 'ONAIR_FMP4_MALFORMED') {
        throw new Fmp4Error(err.code, `${err.message} (in the '${box.type}' box at stream byte ${box.offset})`, { cause: err });
      }
      throw err;
    }
  }

  private takeBox(box: TopLevelBox): void {
    const { type } = box;
    if (!this.initSegment) {
      if (type === 'ftyp') {
        if (this.ftyp) throw malformed('a second ftyp before the moov');
        this.ftyp = box.bytes;
      } else if (type === 'moov') {
        // The init file is ftyp + moov exactly as written: one copy, once per stream.
        const init = parseInitSegment(this.ftyp ? Buffer.concat([this.ftyp, box.bytes]) : Buffer.from(box.bytes));
        const defaults = new Map(init.tracks.map((track) => [track.id, track.defaults]));
        this.initSegment = init;
        this.ftyp = undefined;
        this.context = { defaults, nextDecodeTime: new Map() };
        this.events.push({ init });
      } else if (type === 'moof' || type === 'mdat') {
        throw malformed(`'${type}' box before the init segment`);
      }
      return;
    }
    if (type === 'moof') {
      if (this.moof) throw malformed(`moof at stream byte ${this.moof.offset} has no mdat`);
      this.moof = box;
    } else if (type === 'mdat') {
      const moof = this.moof;
      if (!moof) throw malformed('mdat without a moof');
      this.moof = undefined;
      const fragment = parseFragment(this.context!, { moof: moof.bytes, moofOffset: moof.offset, mdat: box.bytes, mdatOffset: box.offset });
      // Built field by field: an object spread here cost more than parsing the fragment (measured).
      const { sequenceNumber, samples, trafs } = fragment;
      this.events.push({ fragment: { sequenceNumber, samples, trafs, moofOffset: moof.offset, moof: moof.bytes, mdat: box.bytes } });
    } else if (type === 'ftyp' || type === 'moov') {
      throw malformed(`a second init segment ('${type}') in the stream`);
    }
    // Any other top-level box (free, styp, sidx, prft, emsg…) carries nothing we need: ISO BMFF readers skip unknown boxes.
  }
}
