/**
 * Is a file ffmpeg wrote a complete fragmented MP4? When the media disk is full ffmpeg does not
 * stop or complain: it renames 0-byte or cut-off segments into place and lists them (measured
 * with ffmpeg 5.1 on a full tmpfs). A complete file is a run of ISO BMFF boxes whose sizes add up
 * to exactly the file's length and that include the boxes a player needs; a truncated write
 * breaks that sum. Only box headers are read, not the media.
 */
import { open } from 'node:fs/promises';

export type Fmp4Kind = 'init' | 'segment';

/** Boxes each kind must contain: an init needs the track setup, a segment a fragment with its data. */
const REQUIRED_BOXES: Record<Fmp4Kind, readonly string[]> = {
  init: ['ftyp', 'moov'],
  segment: ['moof', 'mdat'],
};

export type Fmp4Check = { complete: true } | { complete: false; problem: string };

export async function checkFmp4(file: string, kind: Fmp4Kind): Promise<Fmp4Check> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    return { complete: false, problem: `cannot open: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  try {
    const { size } = await handle.stat();
    if (size === 0) return { complete: false, problem: 'empty file' };
    const seen = new Set<string>();
    const header = Buffer.alloc(16);
    let offset = 0;
    while (offset < size) {
      if (size - offset < 8) return { complete: false, problem: `${size - offset} stray bytes at ${offset}` };
      await handle.read(header, 0, 16, offset);
      let boxSize = header.readUInt32BE(0);
      const type = header.toString('latin1', 4, 8);
      if (!/^[a-z0-9 ]{4}$/i.test(type)) return { complete: false, problem: `no box at ${offset}` };
      if (boxSize === 1) boxSize = Number(header.readBigUInt64BE(8)); // 64-bit size follows the type
      if (boxSize === 0) boxSize = size - offset; // "to the end of the file": ffmpeg does not write it, but it is legal
      if (boxSize < 8 || offset + boxSize > size) return { complete: false, problem: `${type} box of ${boxSize} bytes at ${offset} runs past the end (${size} bytes): truncated` };
      seen.add(type);
      offset += boxSize;
    }
    const missing = REQUIRED_BOXES[kind].filter((box) => !seen.has(box));
    if (missing.length) return { complete: false, problem: `no ${missing.join('/')} box` };
    return { complete: true };
  } finally {
    await handle.close();
  }
}
