import { open } from 'node:fs/promises';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { MEDIA_CONTENT_TYPES } from '../../common/src/media-layout.ts';
import type { Logger } from '../../common/src/logger.ts';
import { PUBLIC_PLAYLIST } from '../../common/src/media-layout.ts';
import { decideReload, parseReloadDirectives, type ReloadDirectives } from './blocking-reload.ts';
import { parseByteRange } from './byte-range.ts';
import type { LivePlaylist } from './live-playlist.ts';
import type { LivePlaylists } from './live-playlists.ts';
import type { LiveSegments } from './live-segments.ts';
import { loadMediaFile, loadPlaylist, mediaFilePath } from './media-files.ts';
import { ARCHIVE_PREFIX, parseArchivePath, parseMediaPath, parseUploadedPath, type MediaRequest } from './media-path.ts';
import { UPLOADED_FILES_PREFIX } from '../../common/src/upload-layout.ts';
import type { WebMetrics } from './metrics.ts';
import { playlistHeaders, writePlaylist } from './playlist-answers.ts';
import { PlaylistCache } from './playlist-cache.ts';
import { versionLists } from './playlist-version.ts';
import { sendText } from './responses.ts';

/** DESIGN.md: segment names are never reused, so a segment can be cached forever anywhere. */
const SEGMENT_CACHE_CONTROL = 'public, max-age=31536000, immutable';
/** Revalidate every time: a playlist must never be older than half a target duration. */
const PLAYLIST_CACHE_CONTROL = 'no-cache';
/**
 * A recording's playlist with EXT-X-ENDLIST never changes again (only retention deletes it):
 * browsers and caches may keep it a while. While the broadcast goes on it grows: no-cache.
 */
const ENDED_RECORDING_CACHE_CONTROL = 'public, max-age=3600';
const ENDLIST = Buffer.from('#EXT-X-ENDLIST');

/**
 * GET|HEAD /live/<stream>/<file>, /archive/<stream>/<session>/<file> and /uploaded/<id>/<file>.
 * /live/ is the hot path, a plain node handler (no express) answering from
 * memory whenever it can. The path is validated before the file system is touched.
 * A live media playlist (`index.m3u8`) is answered from its held version (live-playlist.ts), with
 * blocking reloads (`_HLS_msn`/`_HLS_part`); a missing live file that is the playlist's preload
 * hint is held until it is written. Recordings, uploads and other names: as before.
 */
export function createMediaHandler(options: { mediaDir: string; liveSegments: LiveSegments; livePlaylists: LivePlaylists; metrics: WebMetrics; logger: Logger }) {
  const { mediaDir, liveSegments, livePlaylists, metrics, logger } = options;
  // Keyed by the file's absolute path, built only from validated names.
  const playlists = new PlaylistCache(loadPlaylist);

  const fail = (req: IncomingMessage, res: ServerResponse, media: MediaRequest, err: unknown): void => {
    logger.error({ err, stream: media.stream, file: media.file }, 'could not read media file');
    if (res.headersSent) res.destroy();
    else sendText(req, res, 500, 'could not read the file\n');
  };

  const servePlaylist = (req: IncomingMessage, res: ServerResponse, media: MediaRequest, file: string): void => {
    const fresh = playlists.peek(file);
    if (fresh !== undefined) {
      metrics.playlistCacheHits.inc();
      sendMedia(req, res, media, fresh);
      return;
    }
    metrics.playlistCacheMisses.inc();
    playlists
      .get(file)
      .then((body) => sendMedia(req, res, media, body))
      .catch((err: unknown) => fail(req, res, media, err));
  };

  /** Answers from the held version: plain, satisfied reload, 400, or held until a version satisfies it. */
  const answerLivePlaylist = (req: IncomingMessage, res: ServerResponse, playlist: LivePlaylist, directives: ReloadDirectives): void => {
    const version = playlist.version;
    if (!version) return sendText(req, res, 404, 'not found\n');
    const decision = version.media === null ? null : decideReload(version.media, directives);
    if (decision === null || decision.kind === 'plain') return writePlaylist(res, 200, playlistHeaders('plain', version.body, version.targetDuration), version.body);
    if (decision.kind === 'ready') return writePlaylist(res, 200, playlistHeaders('satisfied', version.body, version.targetDuration), version.body);
    if (decision.kind === 'bad') {
      logger.debug({ url: req.url, reason: decision.reason }, 'blocking reload refused');
      return sendText(req, res, 400, `bad request: ${decision.reason}\n`);
    }
    if (directives.kind === 'block') playlist.holdReload(res, directives);
  };

  const serveLivePlaylist = (req: IncomingMessage, res: ServerResponse, media: MediaRequest, file: string): void => {
    const playlist = livePlaylists.forRequest(file);
    // Every playlist state holds requests and the bound is reached: no blocking, as before LL-HLS.
    if (playlist === null) return servePlaylist(req, res, media, file);
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const directives = parseReloadDirectives(q === -1 ? '' : url.slice(q + 1));
    if (playlist.current(performance.now())) {
      metrics.playlistCacheHits.inc();
      return answerLivePlaylist(req, res, playlist, directives);
    }
    metrics.playlistCacheMisses.inc();
    playlist
      .refresh()
      .then(() => answerLivePlaylist(req, res, playlist, directives))
      .catch((err: unknown) => fail(req, res, media, err));
  };

  /** A live file that is not there: held if it is the part the playlist hints at, else 404. */
  const serveMissingLiveFile = (req: IncomingMessage, res: ServerResponse, media: MediaRequest, file: string): void => {
    const playlist = livePlaylists.forFolderOf(file);
    if (playlist === null) return sendText(req, res, 404, 'not found\n');
    const decide = (): void => {
      if (playlist.isHintedPart(media.file)) return playlist.holdHintedPart(res, media);
      // Written and listed between our miss and now: read it once more.
      const version = playlist.version;
      if (version && versionLists(version, media.file)) {
        liveSegments
          .loadBody(file)
          .then((body) => sendMedia(req, res, media, body))
          .catch((err: unknown) => fail(req, res, media, err));
        return;
      }
      sendText(req, res, 404, 'not found\n');
    };
    if (playlist.current(performance.now())) return decide();
    playlist
      .refresh()
      .then(decide)
      .catch((err: unknown) => fail(req, res, media, err));
  };

  const serveSegment = (req: IncomingMessage, res: ServerResponse, media: MediaRequest, file: string): void => {
    if (isStored(media)) {
      // Recordings (and uploads) stay out of the segment cache: one viewer of an old recording must not evict
      // the live segments that hundreds are fetching (the OS page cache still helps).
      loadMediaFile(file)
        .then((loaded) => {
          if (loaded?.kind === 'large') return streamLargeFile(req, res, media, file);
          sendMedia(req, res, media, loaded?.data ?? null);
        })
        .catch((err: unknown) => fail(req, res, media, err));
      return;
    }
    const cached = liveSegments.cached(file);
    if (cached !== undefined) {
      metrics.segmentCacheHits.inc();
      sendMedia(req, res, media, cached);
      return;
    }
    metrics.segmentCacheMisses.inc();
    liveSegments
      .load(file)
      .then((loaded) => {
        if (loaded?.kind === 'large') return streamLargeFile(req, res, media, file);
        if (loaded === null) return serveMissingLiveFile(req, res, media, file);
        sendMedia(req, res, media, loaded.data);
      })
      .catch((err: unknown) => fail(req, res, media, err));
  };

  return function handleMedia(req: IncomingMessage, res: ServerResponse, path: string): void {
    const parsed = path.startsWith(ARCHIVE_PREFIX) ? parseArchivePath(path) : path.startsWith(UPLOADED_FILES_PREFIX) ? parseUploadedPath(path) : parseMediaPath(path);
    if (!parsed.ok) {
      logger.debug({ path, reason: parsed.reason }, 'media path refused');
      sendText(req, res, parsed.status, parsed.status === 400 ? 'bad request\n' : 'not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(req, res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
      return;
    }
    const media = parsed.media;
    const file = mediaFilePath(mediaDir, media);
    if (media.kind === 'segment') serveSegment(req, res, media, file);
    else if (!isStored(media) && media.file === PUBLIC_PLAYLIST) serveLivePlaylist(req, res, media, file);
    else servePlaylist(req, res, media, file);
  };
}

/** A recording or an on-demand upload: read from disk per request, a complete VOD playlist may be cached. */
function isStored(media: MediaRequest): boolean {
  return 'session' in media || 'upload' in media;
}

function playlistCacheControl(media: MediaRequest, body: Buffer | null): string {
  return isStored(media) && body !== null && body.includes(ENDLIST) ? ENDED_RECORDING_CACHE_CONTROL : PLAYLIST_CACHE_CONTROL;
}

function mediaHeaders(media: MediaRequest, body: Buffer | null = null): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {
    'content-type': MEDIA_CONTENT_TYPES[media.ext] ?? 'application/octet-stream',
    'cache-control': media.kind === 'playlist' ? playlistCacheControl(media, body) : SEGMENT_CACHE_CONTROL,
    'access-control-allow-origin': '*',
  };
  if (media.kind === 'segment') headers['accept-ranges'] = 'bytes';
  return headers;
}

/** Answers with `body` (null: the file does not exist), honouring a single Range on segments. */
export function sendMedia(req: IncomingMessage, res: ServerResponse, media: MediaRequest, body: Buffer | null): void {
  if (body === null) {
    sendText(req, res, 404, 'not found\n');
    return;
  }
  const headers = mediaHeaders(media, body);
  const range = media.kind === 'segment' ? parseByteRange(req.headers.range, body.length) : null;
  if (range === 'unsatisfiable') {
    sendText(req, res, 416, 'range not satisfiable\n', { 'content-range': `bytes */${body.length}` });
    return;
  }
  let status = 200;
  let part = body;
  if (range !== null) {
    status = 206;
    part = body.subarray(range.start, range.end + 1);
    headers['content-range'] = `bytes ${range.start}-${range.end}/${body.length}`;
  }
  headers['content-length'] = part.length;
  res.writeHead(status, headers);
  if (req.method === 'HEAD') res.end();
  else res.end(part);
}

/** Files too big to hold in memory: streamed from one open handle (a rename cannot swap it mid-way). */
async function streamLargeFile(req: IncomingMessage, res: ServerResponse, media: MediaRequest, file: string): Promise<void> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    sendText(req, res, 404, 'not found\n');
    return;
  }
  try {
    const { size } = await handle.stat();
    const headers = mediaHeaders(media);
    const range = parseByteRange(req.headers.range, size);
    if (range === 'unsatisfiable') {
      sendText(req, res, 416, 'range not satisfiable\n', { 'content-range': `bytes */${size}` });
      return;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? size - 1;
    if (range) headers['content-range'] = `bytes ${start}-${end}/${size}`;
    headers['content-length'] = end - start + 1;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    // A client that goes away mid-file ends the pipeline; there is nothing left to answer.
    await pipeline(handle.createReadStream({ start, end, autoClose: false }), res).catch(() => res.destroy());
  } finally {
    await handle.close();
  }
}
