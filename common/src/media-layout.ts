import path from 'node:path';
import { isStreamName } from './stream-name.ts';

/**
 * The shared volume's layout (DESIGN.md "Shared volume layout"):
 *   live/<stream>/index.m3u8 + init/segment files   public, served by web/
 *   ingest/live.json                                 which streams are live (written by ingest, read by web)
 *   ingest/work/<stream>/<run>/                      ffmpeg's private output before publication
 */
export const PUBLIC_PLAYLIST = 'index.m3u8';

export function liveRoot(mediaDir: string): string {
  return path.join(mediaDir, 'live');
}

export function streamDir(mediaDir: string, stream: string): string {
  if (!isStreamName(stream)) throw new Error(`not a stream name: ${JSON.stringify(stream)}`);
  return path.join(mediaDir, 'live', stream);
}

export function ingestStateFile(mediaDir: string): string {
  return path.join(mediaDir, 'ingest', 'live.json');
}

export function ingestWorkDir(mediaDir: string, stream: string, run: string): string {
  return path.join(mediaDir, 'ingest', 'work', stream, run);
}

/**
 * Names of files a viewer may fetch inside live/<stream>/: the playlist, init segments and
 * media segments as ingest names them. Anything else (temp files, dotfiles, other extensions,
 * anything with a separator) is not media and is refused before touching the file system.
 */
const MEDIA_FILE_PATTERN = /^[a-z0-9][a-z0-9_-]{0,127}\.(m3u8|m4s|mp4|ts|aac)$/;

export type MediaFileKind = 'playlist' | 'segment';

export function classifyMediaFile(name: string): MediaFileKind | null {
  const match = MEDIA_FILE_PATTERN.exec(name);
  if (!match) return null;
  return match[1] === 'm3u8' ? 'playlist' : 'segment';
}

export const MEDIA_CONTENT_TYPES: Readonly<Record<string, string>> = {
  m3u8: 'application/vnd.apple.mpegurl',
  m4s: 'video/iso.segment',
  mp4: 'video/mp4',
  ts: 'video/mp2t',
  aac: 'audio/aac',
};
