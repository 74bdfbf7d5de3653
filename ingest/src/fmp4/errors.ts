/**
 * The one error type of the fMP4 toolkit. Callers branch on `code`, never on the message: the
 * message says what was wrong and where, for logs; the code is stable.
 */
export type Fmp4ErrorCode =
  /** The bytes are not the ISO BMFF structure they claim to be (bad header, box outside its parent, sample data outside the mdat…). */
  | 'ONAIR_FMP4_MALFORMED'
  /** A box declares more bytes than the configured limit: refused before anything is allocated. */
  | 'ONAIR_FMP4_TOO_LARGE'
  /** The stream ended inside a box, or with a moof whose mdat never came. */
  | 'ONAIR_FMP4_TRUNCATED'
  /** A bug in this toolkit surfaced as an unexpected exception; the reader reports it rather than throwing. */
  | 'ONAIR_FMP4_INTERNAL';

export class Fmp4Error extends Error {
  override readonly name = 'Fmp4Error';

  constructor(
    readonly code: Fmp4ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function malformed(message: string): Fmp4Error {
  return new Fmp4Error('ONAIR_FMP4_MALFORMED', message);
}
