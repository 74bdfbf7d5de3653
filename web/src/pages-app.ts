import express, { type NextFunction, type Request, type Response } from 'express';
import { isStreamName } from '../../common/src/stream-name.ts';
import type { Logger } from '../../common/src/logger.ts';
import type { Asset } from './assets.ts';
import type { LiveStreams } from './live-streams.ts';
import { renderIndexPage, renderNotFoundPage, renderOnDemandPage, renderRecordingPage, renderRecordingsPage, renderUploadPage, renderUploadPlayerPage, renderWatchPage } from './pages.ts';
import type { Recordings } from './recordings.ts';
import type { Uploads } from './uploads.ts';
import { isUploadId } from '../../common/src/upload-layout.ts';
import { isSessionId } from '../../common/src/media-layout.ts';

/** Recordings shown on / under "Recent recordings". */
const RECENT_ON_INDEX = 8;

/**
 * Pages, the stream list and browser assets: low-rate requests where express's convenience is
 * worth its cost. Media (/live/...) never reaches this app.
 */
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export function createPagesApp(options: { liveStreams: LiveStreams; recordings: Recordings; uploads: Uploads; assets: Map<string, Asset>; logger: Logger }): express.Express {
  const { liveStreams, recordings, uploads, assets, logger } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use((req, res, next) => {
    if (req.method === 'GET' || req.method === 'HEAD') return next();
    res.set('allow', 'GET, HEAD').status(405).type('text/plain').send('method not allowed\n');
  });

  const sendPage = (res: Response, status: number, html: string): void => {
    res.status(status).set(PAGE_HEADERS).set('cache-control', status === 200 ? 'no-cache' : 'no-store').type('html').send(html);
  };

  app.get('/', async (_req, res) => {
    const recent = (await recordings.list()).filter((r) => !r.live).slice(0, RECENT_ON_INDEX);
    sendPage(res, 200, renderIndexPage(liveStreams.list(), recent, (await uploads.list()).slice(0, RECENT_ON_INDEX)));
  });

  // Recordings of one stream (?stream=) or of all, newest first. Changes with each segment of a live one.
  app.get('/vod.json', async (req, res) => {
    const stream = typeof req.query.stream === 'string' ? req.query.stream : undefined;
    if (stream !== undefined && !isStreamName(stream)) return void res.status(400).set('cache-control', 'no-store').json({ error: 'not a stream name' });
    // On-demand uploads belong to no stream: listed only without ?stream=.
    const body = stream === undefined ? { recordings: await recordings.list(), uploads: await uploads.list() } : { recordings: await recordings.list(stream) };
    res.set('cache-control', 'no-cache').json(body);
  });

  app.get('/ondemand', async (_req, res) => {
    sendPage(res, 200, renderOnDemandPage(await uploads.list()));
  });

  app.get('/ondemand/:id', async (req, res) => {
    const id = req.params.id;
    const upload = isUploadId(id) ? await uploads.find(id) : null;
    if (!upload) return sendPage(res, 404, renderNotFoundPage('There is no such video (it may have been deleted, or it is still being processed).'));
    sendPage(res, 200, renderUploadPlayerPage(upload));
  });

  app.get('/upload', (_req, res) => {
    sendPage(res, 200, renderUploadPage());
  });

  app.get('/vod/:stream', async (req, res) => {
    const stream = req.params.stream;
    if (!isStreamName(stream)) return sendPage(res, 404, renderNotFoundPage('There is no stream by that name.'));
    sendPage(res, 200, renderRecordingsPage(stream, await recordings.list(stream)));
  });

  app.get('/vod/:stream/:session', async (req, res) => {
    const { stream, session } = req.params;
    const recording = isStreamName(stream) && isSessionId(session) ? await recordings.find(stream, session) : null;
    if (!recording) return sendPage(res, 404, renderNotFoundPage('There is no such recording (it may have been deleted).'));
    sendPage(res, 200, renderRecordingPage(recording));
  });

  app.get('/streams.json', (_req, res) => {
    res.set('cache-control', 'no-cache').json({ streams: liveStreams.list() });
  });

  app.get('/watch/:stream', (req, res) => {
    const stream = req.params.stream;
    if (!isStreamName(stream)) return sendPage(res, 404, renderNotFoundPage('There is no stream by that name.'));
    sendPage(res, 200, renderWatchPage(stream));
  });

  app.get('/assets/:name', (req, res) => {
    const asset = assets.get(req.params.name);
    if (!asset) return void res.status(404).set('cache-control', 'no-store').type('text/plain').send('not found\n');
    const gzip = req.acceptsEncodings('gzip', 'identity') === 'gzip';
    // Revalidated on every page load (a new deploy shows at once), answered with 304 when unchanged.
    res.set({
      'content-type': asset.contentType,
      'cache-control': 'no-cache',
      etag: gzip ? `${asset.etag.slice(0, -1)}-gz"` : asset.etag,
      vary: 'Accept-Encoding',
      'x-content-type-options': 'nosniff',
    });
    if (gzip) res.set('content-encoding', 'gzip');
    res.send(gzip ? asset.gzip : asset.body); // express answers 304 itself when the ETag matches
  });

  app.use((_req, res) => sendPage(res, 404, renderNotFoundPage('There is nothing at this address.')));

  // Malformed URLs (bad percent-encoding) arrive here as 400s from the router; anything else is a bug.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status = httpStatusOf(err);
    if (status >= 500) logger.error({ err, path: req.path }, 'page request failed');
    else logger.debug({ err: String(err), path: req.originalUrl }, 'page request refused');
    if (res.headersSent) return void res.destroy();
    res.status(status).set('cache-control', 'no-store').type('text/plain').send(status >= 500 ? 'internal error\n' : 'bad request\n');
  });

  return app;
}

function httpStatusOf(err: unknown): number {
  const status = (err as { status?: unknown; statusCode?: unknown } | null)?.status ?? (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
}
