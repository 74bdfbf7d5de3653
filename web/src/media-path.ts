import { classifyMediaFile, isSessionId, THUMBNAIL_FILE, type MediaFileKind } from '../../common/src/media-layout.ts';
import { isRenditionName } from '../../common/src/ladder-spec.ts';
import { isStreamName } from '../../common/src/stream-name.ts';
import { isUploadId, UPLOAD_THUMBNAIL, UPLOADED_FILES_PREFIX } from '../../common/src/upload-layout.ts';

/** A request for one file under MEDIA_DIR/live, validated before anything touches the file system. */
export interface MediaRequest {
  stream: string;
  /** The rendition folder (quality ladder: /live/<stream>/<rendition>/<file>); absent or null at the stream's top. */
  rendition?: string | null;
  file: string;
  kind: MediaFileKind;
  /** File extension, the key into MEDIA_CONTENT_TYPES. */
  ext: string;
}

/** A file of a recorded broadcast: MEDIA_DIR/archive/<stream>/<session>/<file>. */
export interface ArchiveRequest extends MediaRequest {
  session: string;
}

/**
 * A file of an on-demand upload: MEDIA_DIR/uploads/<id>/<file>, or <id>/<rendition>/<file> when it
 * was transcoded to the ladder. `stream` is '' (an upload belongs to no stream).
 */
export interface UploadedRequest extends MediaRequest {
  upload: string;
  rendition: string | null;
}

export type MediaPathResult = { ok: true; media: MediaRequest } | { ok: false; status: 400 | 404; reason: string };
export type ArchivePathResult = { ok: true; media: ArchiveRequest } | { ok: false; status: 400 | 404; reason: string };

export type UploadedPathResult = { ok: true; media: UploadedRequest } | { ok: false; status: 400 | 404; reason: string };

export const LIVE_PREFIX = '/live/';
export const ARCHIVE_PREFIX = '/archive/';

/** The path part of a request target, without the query string. */
export function stripQuery(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/**
 * Parses the raw (undecoded) path of a `/live/...` request.
 * Names of streams and media files only use [a-z0-9_.-], so a legitimate request never needs
 * percent-encoding, a backslash or a dot-segment: any of those is refused as 400 without decoding
 * (decoding first is how `%2e%2e%2f` slips past a check). Anything else that is not exactly
 * `/live/<stream>/<media file>` is 404.
 */
export function parseMediaPath(path: string): MediaPathResult {
  if (!path.startsWith(LIVE_PREFIX)) return { ok: false, status: 404, reason: 'not a media path' };
  const unsafe = unsafePath(path);
  if (unsafe) return unsafe;
  const parts = path.slice(LIVE_PREFIX.length).split('/');
  if (parts.length !== 2 && parts.length !== 3) return { ok: false, status: 404, reason: 'not /live/<stream>/[<rendition>/]<file>' };
  const stream = parts[0]!;
  const file = parts[parts.length - 1]!;
  const rendition = parts.length === 3 ? parts[1]! : null;
  if (!isStreamName(stream)) return { ok: false, status: 404, reason: 'not a stream name' };
  if (rendition !== null && !isRenditionName(rendition)) return { ok: false, status: 404, reason: 'not a rendition name' };
  const kind = classifyMediaFile(file);
  if (kind === null) return { ok: false, status: 404, reason: 'not a media file name' };
  return { ok: true, media: { stream, ...(rendition === null ? {} : { rendition }), file, kind, ext: file.slice(file.lastIndexOf('.') + 1) } };
}

/**
 * Parses the raw path of an `/archive/<stream>/<session>/<file>` request, with the same rules as
 * parseMediaPath; the file is a media file name or the session's thumbnail.
 */
export function parseArchivePath(path: string): ArchivePathResult {
  if (!path.startsWith(ARCHIVE_PREFIX)) return { ok: false, status: 404, reason: 'not an archive path' };
  const unsafe = unsafePath(path);
  if (unsafe) return unsafe;
  const parts = path.slice(ARCHIVE_PREFIX.length).split('/');
  if (parts.length !== 3) return { ok: false, status: 404, reason: 'not /archive/<stream>/<session>/<file>' };
  const [stream, session, file] = parts as [string, string, string];
  if (!isStreamName(stream)) return { ok: false, status: 404, reason: 'not a stream name' };
  if (!isSessionId(session)) return { ok: false, status: 404, reason: 'not a session id' };
  // The thumbnail is written once (atomically) and never changes: cacheable like a segment.
  const kind = file === THUMBNAIL_FILE ? 'segment' : classifyMediaFile(file);
  if (kind === null) return { ok: false, status: 404, reason: 'not a media file name' };
  return { ok: true, media: { stream, session, file, kind, ext: file.slice(file.lastIndexOf('.') + 1) } };
}

/**
 * Parses the raw path of an `/uploaded/<id>/[<rendition>/]<file>` request, with the same rules as
 * parseMediaPath; the file is a media file name or the thumbnail (never upload.json, temp or hidden files).
 */
export function parseUploadedPath(path: string): UploadedPathResult {
  if (!path.startsWith(UPLOADED_FILES_PREFIX)) return { ok: false, status: 404, reason: 'not an uploaded file path' };
  const unsafe = unsafePath(path);
  if (unsafe) return unsafe;
  const parts = path.slice(UPLOADED_FILES_PREFIX.length).split('/');
  if (parts.length !== 2 && parts.length !== 3) return { ok: false, status: 404, reason: 'not /uploaded/<id>/<file>' };
  const upload = parts[0]!;
  const file = parts[parts.length - 1]!;
  const rendition = parts.length === 3 ? parts[1]! : null;
  if (!isUploadId(upload)) return { ok: false, status: 404, reason: 'not an upload id' };
  if (rendition !== null && !isRenditionName(rendition)) return { ok: false, status: 404, reason: 'not a rendition name' };
  const kind = file === UPLOAD_THUMBNAIL && rendition === null ? 'segment' : classifyMediaFile(file);
  if (kind === null) return { ok: false, status: 404, reason: 'not a media file name' };
  return { ok: true, media: { stream: '', upload, rendition, file, kind, ext: file.slice(file.lastIndexOf('.') + 1) } };
}

function unsafePath(path: string): { ok: false; status: 400; reason: string } | null {
  if (path.includes('%')) return { ok: false, status: 400, reason: 'percent-encoding in media path' };
  if (path.includes('\\')) return { ok: false, status: 400, reason: 'backslash in media path' };
  if (path.includes('//')) return { ok: false, status: 400, reason: 'empty path segment' };
  if (path.includes('..')) return { ok: false, status: 400, reason: 'dot-dot in media path' };
  if (/[\x00-\x20\x7f]/.test(path)) return { ok: false, status: 400, reason: 'control character in media path' };
  return null;
}
