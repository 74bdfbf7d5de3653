import path from 'node:path';
import { isStreamName } from './stream-name.ts';

/**
 * The shared volume's layout (DESIGN.md "Shared volume layout"):
 *   live/<stream>/index.m3u8 + init/segment files   public, served by web/
 *   ingest/live.json                                 which streams are live (written by ingest, read by web)
 *   ingest/work/<stream>/<run>/                      ffmpeg's private output before publication
 *   archive/<stream>/<session>/                      one recorded broadcast (ingest writes, web serves):
 *       index.m3u8 (EVENT playlist, ENDLIST once ended), the init and media segments it names
 *       (hard links of the published ones), session.json, thumbnail.jpg
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
  jpg: 'image/jpeg',
};

export function archiveRoot(mediaDir: string): string {
  return path.join(mediaDir, 'archive');
}

/**
 * A broadcast's session id: its start time (UTC, so names sort by time) and a random tail,
 * e.g. `20261122-041200-a1b2c3`. Lower-case letters, digits and '-' only: safe in URLs and paths.
 */
const SESSION_ID_PATTERN = /^\d{8}-\d{6}-[a-z0-9]{6}$/;

export function isSessionId(value: string): boolean {
  return SESSION_ID_PATTERN.test(value);
}

export function archiveSessionDir(mediaDir: string, stream: string, session: string): string {
  if (!isStreamName(stream)) throw new Error(`not a stream name: ${JSON.stringify(stream)}`);
  if (!isSessionId(session)) throw new Error(`not a session id: ${JSON.stringify(session)}`);
  return path.join(mediaDir, 'archive', stream, session);
}

export const SESSION_FILE = 'session.json';
export const THUMBNAIL_FILE = 'thumbnail.jpg';

/** session.json: what web lists about a recorded broadcast (written by ingest). */
export interface SessionInfo {
  stream: string;
  session: string;
  /** ISO-8601 */
  started: string;
  /** ISO-8601, null while the broadcast goes on */
  ended: string | null;
  /** Sum of the archived segments' durations, seconds */
  durationSeconds: number;
  segments: number;
  /** THUMBNAIL_FILE once it exists, else null */
  thumbnail: string | null;
}
