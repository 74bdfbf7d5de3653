/**
 * The upload API on ingest's control port (the proxy relays /uploads* to it):
 *   POST   /uploads        multipart/form-data: `file` (the video) and `title` → 202 {id, status, …}
 *   GET    /uploads        every upload with its state, newest first, and the size limit
 *   GET    /uploads/<id>   one upload: state queued|transcoding|ready|failed, percent, error
 *   DELETE /uploads/<id>   deletes it (stops its transcode)
 * Everything needs `Authorization: Bearer <OPS_TOKEN>`; without OPS_TOKEN the API answers 503.
 * Errors are JSON `{"error": "…"}` with a sentence a person can act on.
 */
import { createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import type { Logger } from '../../../common/src/logger.ts';
import { secretMatcher } from '../../../common/src/secret-match.ts';
import { isUploadId } from '../../../common/src/upload-layout.ts';
import { probeMedia } from './media-probe.ts';
import type { UploadJobs } from './upload-jobs.ts';
import type { UploadMetrics, UploadRefusal } from './upload-metrics.ts';

export const UPLOADS_PATH = '/uploads';
/** Room for the multipart framing and the title around the file, when checking Content-Length. */
export const MULTIPART_OVERHEAD_BYTES = 1024 * 1024;
const MAX_TITLE_CHARS = 200;

export interface UploadApiOptions {
  opsToken: string | undefined;
  maxBytes: number;
  idleTimeoutMs: number;
  ffprobePath: string;
  jobs: UploadJobs;
  metrics: UploadMetrics;
  logger: Logger;
}

/** How long a refused upload's body is still read and thrown away, so its client gets to read the answer. */
const REFUSED_BODY_LINGER_MS = 10_000;

/**
 * The rest of a refused request's body is read and discarded (a client that sends its whole body
 * before reading would otherwise see a reset instead of our answer), for REFUSED_BODY_LINGER_MS at most.
 */
function discardRestOfBody(req: IncomingMessage): void {
  if (req.complete) return;
  req.unpipe();
  req.resume();
  const timer = setTimeout(() => req.socket.destroy(), REFUSED_BODY_LINGER_MS);
  timer.unref();
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
}

/** A file name as shown to people: no folders, no control characters, not endless. */
export function cleanFileName(name: string | undefined): string {
  const base = (name ?? '').split(/[\\/]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  const clean = base.replace(/[\x00-\x1f\x7f]/g, '').trim().slice(0, MAX_TITLE_CHARS);
  return clean || 'the file';
}

/** The title given, or the file's name without its extension. */
export function titleFor(title: string | null, originalName: string): string {
  // eslint-disable-next-line no-control-regex
  const given = (title ?? '').replace(/[\x00-\x1f\x7f]/g, ' ').trim().slice(0, MAX_TITLE_CHARS);
  if (given) return given;
  const dot = originalName.lastIndexOf('.');
  return (dot > 0 ? originalName.slice(0, dot) : originalName) || 'Untitled';
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return void res.destroy();
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Returns a handler that answers /uploads and /uploads/<id> (true) or leaves the request alone (false). */
export function createUploadApi(options: UploadApiOptions): (req: IncomingMessage, res: ServerResponse, path: string) => boolean {
  const { jobs, metrics, logger } = options;
  const matches = options.opsToken ? secretMatcher(options.opsToken) : null;

  const refuse = (req: IncomingMessage, res: ServerResponse, status: number, reason: UploadRefusal, message: string, bodyPending = false): void => {
    if (req.method === 'POST') metrics.refused.inc({ reason });
    sendJson(res, status, { error: message });
    if (bodyPending) discardRestOfBody(req);
  };

  const authorized = (req: IncomingMessage, res: ServerResponse): boolean => {
    const bodyPending = req.method === 'POST';
    if (matches === null) {
      refuse(req, res, 503, 'disabled', 'uploads are disabled: ingest has no OPS_TOKEN configured', bodyPending);
      return false;
    }
    const header = req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (token === '' || !matches(token)) {
      refuse(req, res, 401, 'unauthorized', 'this needs the ops token: Authorization: Bearer <OPS_TOKEN>', bodyPending);
      return false;
    }
    return true;
  };

  return (req, res, path) => {
    if (path !== UPLOADS_PATH && !path.startsWith(`${UPLOADS_PATH}/`)) return false;
    const id = path === UPLOADS_PATH ? null : path.slice(UPLOADS_PATH.length + 1);
    const method = req.method ?? 'GET';
    const allowed = id === null ? ['GET', 'HEAD', 'POST'] : ['GET', 'HEAD', 'DELETE'];
    if (!allowed.includes(method)) {
      sendJson(res, 405, { error: `use ${allowed.join(', ')} on ${id === null ? '/uploads' : '/uploads/<id>'}` }, { allow: allowed.join(', ') });
      return true;
    }
    if (!authorized(req, res)) return true;
    if (id === null) {
      if (method === 'POST') receive(req, res, options);
      else sendJson(res, 200, { uploads: jobs.list(), maxBytes: options.maxBytes });
      return true;
    }
    const status = isUploadId(id) ? jobs.status(id) : null;
    if (status === null) {
      sendJson(res, 404, { error: `there is no upload ${JSON.stringify(id)}` });
      return true;
    }
    if (method === 'DELETE') {
      jobs.delete(id).then(
        (deleted) => (deleted ? sendJson(res, 200, { deleted: id }) : sendJson(res, 404, { error: `there is no upload ${JSON.stringify(id)}` })),
        (err: unknown) => {
          logger.error({ err, upload: id }, 'could not delete an upload');
          sendJson(res, 500, { error: `could not delete the upload: ${(err as Error).message}` });
        },
      );
      return true;
    }
    sendJson(res, 200, status);
    return true;
  };
}

/** POST /uploads: the file streams to staging (never held in memory), then ffprobe decides. */
function receive(req: IncomingMessage, res: ServerResponse, options: UploadApiOptions): void {
  const { jobs, metrics, logger, maxBytes } = options;
  const contentType = req.headers['content-type'] ?? '';
  const fail = (status: number, reason: UploadRefusal, message: string): void => {
    if (settled) return;
    settled = true;
    metrics.refused.inc({ reason });
    logger.info({ upload: id, reason, status, file: originalName, bytes }, `upload refused: ${message}`);
    sendJson(res, status, { error: message });
    discardRestOfBody(req);
    void cleanup();
  };
  let settled = false;
  const id = jobs.newId();
  const staging = jobs.stagingFile(id);
  let originalName = 'the file';
  let bytes = 0;
  let stagingOpened = false;
  let fileStream: Readable | null = null;
  let written: Promise<void> | null = null;
  /** Stops writing (the pipeline ends, the file is closed), then deletes the partial file. */
  const cleanup = async (): Promise<void> => {
    fileStream?.destroy();
    if (written) await written.catch(() => undefined);
    if (stagingOpened) await rm(staging, { force: true }).catch((err: unknown) => logger.error({ err, staging }, 'could not delete a refused upload'));
  };

  if (!/^multipart\/form-data\s*;/i.test(contentType)) {
    return fail(400, 'bad-request', 'send the video as multipart/form-data with a part named "file" (and a "title" field)');
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes + MULTIPART_OVERHEAD_BYTES) {
    return fail(413, 'too-large', `the file is too large: uploads are limited to ${maxBytes} bytes (UPLOAD_MAX_BYTES)`);
  }
  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers: req.headers, limits: { files: 1, fileSize: maxBytes, fields: 4, fieldSize: 4096, parts: 8, headerPairs: 16 } });
  } catch (err) {
    return fail(400, 'bad-request', `malformed multipart request: ${(err as Error).message}`);
  }

  let title: string | null = null;
  let fileSeen = false;
  const startedAt = new Date();

  // No byte for UPLOAD_IDLE_TIMEOUT_MS: the uploader is gone or stuck.
  req.socket.setTimeout(options.idleTimeoutMs, () => {
    fail(408, 'idle-timeout', `the upload stalled: nothing arrived for ${options.idleTimeoutMs / 1000} s`);
    req.destroy();
  });
  res.once('close', () => req.socket.setTimeout(0));
  req.once('close', () => {
    if (settled || req.complete) return;
    settled = true;
    metrics.refused.inc({ reason: 'aborted' });
    logger.info({ upload: id, file: originalName, bytes }, 'upload abandoned by the client');
    void cleanup();
  });

  parser.on('file', (name, stream, info) => {
    if (name !== 'file' || fileSeen) {
      stream.resume();
      return;
    }
    fileSeen = true;
    originalName = cleanFileName(info.filename);
    stagingOpened = true;
    fileStream = stream;
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      metrics.receivedBytes.inc(chunk.length);
    });
    stream.once('limit', () => fail(413, 'too-large', `${originalName} is too large: uploads are limited to ${maxBytes} bytes (UPLOAD_MAX_BYTES)`));
    written = pipeline(stream, createWriteStream(staging, { flags: 'wx' }));
    written.catch((err: unknown) => {
      if (!settled) {
        logger.error({ err, upload: id }, 'could not write an upload to staging');
        fail(500, 'error', `could not store the upload: ${(err as Error).message}`);
      }
    });
  });
  parser.on('field', (name, value) => {
    if (name === 'title') title = value;
  });
  parser.once('error', (err: Error) => fail(400, 'bad-request', `malformed multipart body: ${err.message}`));
  parser.once('close', () => {
    if (settled) return;
    if (!fileSeen || written === null) return fail(400, 'bad-request', 'no file: send the video in a multipart part named "file"');
    (written as Promise<void>)
      .then(async () => {
        if (settled) return;
        const size = (await stat(staging)).size;
        const verdict = await probeMedia(options.ffprobePath, staging);
        if (settled) return;
        if (!verdict.ok) return fail(415, 'not-video', `${originalName} is not a video file: ${verdict.problem}`);
        settled = true;
        const job = await jobs.accept({ id, title: titleFor(title, originalName), originalName, bytes: size, created: startedAt, video: verdict.video });
        logger.info({ upload: id, title: job.title, file: originalName, bytes: size, durationSeconds: job.durationSeconds }, 'upload accepted');
        sendJson(res, 202, { id, status: `/uploads/${id}`, state: job.state, title: job.title, durationSeconds: job.durationSeconds }, { location: `/uploads/${id}` });
      })
      .catch((err: unknown) => {
        if (settled && res.headersSent) return;
        settled = false;
        logger.error({ err, upload: id }, 'upload could not be accepted');
        fail(500, 'error', `could not accept the upload: ${(err as Error).message}`);
      });
  });
  req.pipe(parser);
}
