import path from 'node:path';

/**
 * On-demand uploads on the shared volume (README "On-demand uploads"):
 *   uploads/<id>/                   a published upload (ingest writes it whole, by rename; web serves it):
 *       index.m3u8                  VOD playlist (a master playlist when transcoded to the ladder)
 *       init.mp4, seg-NNNNN.m4s     fMP4 (or <rendition>/… with the ladder)
 *       thumbnail.jpg, upload.json  poster frame and what web lists (UploadInfo)
 *   ingest/uploads/                 ingest's private side: never served
 *       jobs/<id>.json              every accepted upload's job (queued, transcoding, ready, failed)
 *       staging/<id>.upload         the received file until its job ends
 *       work/<id>/                  ffmpeg's output before publication
 */
export const UPLOAD_INFO_FILE = 'upload.json';
export const UPLOAD_PLAYLIST = 'index.m3u8';
export const UPLOAD_THUMBNAIL = 'thumbnail.jpg';

/**
 * An upload id: when it was received (UTC, so names sort by time) and a random tail, like a
 * recording's session id (`20261122-041200-a1b2c3`). URLs put it after /ondemand/ and /uploaded/,
 * never where a stream name goes, so it cannot collide with a stream.
 */
const UPLOAD_ID_PATTERN = /^\d{8}-\d{6}-[a-z0-9]{6}$/;

export function isUploadId(value: string): boolean {
  return UPLOAD_ID_PATTERN.test(value);
}

export function uploadsRoot(mediaDir: string): string {
  return path.join(mediaDir, 'uploads');
}

export function uploadDir(mediaDir: string, id: string): string {
  if (!isUploadId(id)) throw new Error(`not an upload id: ${JSON.stringify(id)}`);
  return path.join(mediaDir, 'uploads', id);
}

/** Ingest's private upload folders (jobs, staging, work): on MEDIA_DIR so publication is a rename. */
export function uploadsPrivateRoot(mediaDir: string): string {
  return path.join(mediaDir, 'ingest', 'uploads');
}

/** The player page of an upload and the URL prefix of its files (web). */
export const ONDEMAND_PAGE_PREFIX = '/ondemand/';
export const UPLOADED_FILES_PREFIX = '/uploaded/';

export function uploadPageUrl(id: string): string {
  return `${ONDEMAND_PAGE_PREFIX}${id}`;
}

export function uploadFilesUrl(id: string, file: string): string {
  return `${UPLOADED_FILES_PREFIX}${id}/${file}`;
}

/** upload.json: what web lists about a published upload (written by ingest once it is playable). */
export interface UploadInfo {
  id: string;
  title: string;
  originalName: string;
  /** ISO-8601: when the upload was received. */
  created: string;
  /** ISO-8601: when it became playable. */
  published: string;
  durationSeconds: number;
  status: 'ready';
  width: number | null;
  height: number | null;
  /** Names of the renditions when transcoded to the ladder (index.m3u8 is then a master playlist). */
  renditions: string[];
  /** UPLOAD_THUMBNAIL once it exists, else null. */
  thumbnail: string | null;
}
