import { open } from 'node:fs/promises';
import path from 'node:path';
import { archiveRoot, liveRoot } from '../../common/src/media-layout.ts';
import { uploadsRoot } from '../../common/src/upload-layout.ts';
import type { ArchiveRequest, MediaRequest, UploadedRequest } from './media-path.ts';

/** Files above this are streamed from disk per request instead of being held in memory. */
export const MAX_BUFFERED_FILE_BYTES = 64 * 1024 * 1024;

export type LoadedFile = { kind: 'buffer'; data: Buffer } | { kind: 'large'; size: number };

/** Absolute path of a validated media request; only ever inside MEDIA_DIR/live/<stream>/, MEDIA_DIR/archive/<stream>/<session>/ or MEDIA_DIR/uploads/<id>/. */
export function mediaFilePath(mediaDir: string, media: MediaRequest | ArchiveRequest | UploadedRequest): string {
  if ('upload' in media) return path.join(uploadsRoot(mediaDir), media.upload, ...(media.rendition === null ? [] : [media.rendition]), media.file);
  if ('session' in media) return path.join(archiveRoot(mediaDir), media.stream, media.session, media.file);
  return path.join(liveRoot(mediaDir), media.stream, ...(media.rendition ? [media.rendition] : []), media.file);
}

const MISSING = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP', 'ENAMETOOLONG']);

/**
 * Reads a media file. Null when it does not exist (or is not a regular file): segments are
 * deleted while viewers still ask for them, which is normal, not an error. Other failures
 * (permissions, I/O) throw and are answered with 500.
 * One open file handle for stat and read, so a rename in between cannot mix two files.
 */
export async function loadMediaFile(file: string): Promise<LoadedFile | null> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    if (MISSING.has((err as NodeJS.ErrnoException).code ?? '')) return null;
    throw err;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return null;
    if (stat.size > MAX_BUFFERED_FILE_BYTES) return { kind: 'large', size: stat.size };
    return { kind: 'buffer', data: await handle.readFile() };
  } finally {
    await handle.close();
  }
}

/** Playlist bodies for the playlist cache: missing or oversized → null (a playlist is never huge). */
export async function loadPlaylist(file: string): Promise<Buffer | null> {
  const loaded = await loadMediaFile(file);
  return loaded?.kind === 'buffer' ? loaded.data : null;
}
