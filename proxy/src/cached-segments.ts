/**
 * The request side of the proxy's media caches (segment-cache.ts, playlist-cache.ts): which
 * requests they take, and answering them from memory. Runs after admission (allowlist, tokens,
 * limits): a held answer is no less protected.
 */
import type { IncomingMessage } from 'node:http';
import { describePath } from '../../common/src/access-record.ts';
import type { PlaylistCache } from './playlist-cache.ts';
import type { ProxyResponse } from './proxy-response.ts';
import type { CachedSegment, FillWait, SegmentCache, SegmentFill } from './segment-cache.ts';

export class CachedSegments {
  constructor(
    private readonly segments: SegmentCache,
    private readonly playlists: PlaylistCache,
    private readonly fill: SegmentFill,
  ) {}

  /**
   * Answers a segment or playlist request from memory (now, or once the fill it waits for is done)
   * and returns true; calls `forward()` instead when the fill brought nothing. Returns false for
   * requests the caches do not take (other paths, not GET/HEAD, a Range request, a cache turned off).
   */
  handle(req: IncomingMessage, res: ProxyResponse, path: string, forward: () => void): boolean {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || req.headers.range !== undefined) return false;
    const kind = describePath(path).kind;
    let found: CachedSegment | FillWait;
    if (kind === 'segment' && this.segments.enabled) found = this.segments.lookup(path, this.fill);
    else if (kind === 'playlist' && this.playlists.enabled) found = this.playlists.lookup(path, this.fill);
    else return false;
    if ('body' in found) {
      answer(req, res, found, 'HIT', true);
      return true;
    }
    const shared = found.shared;
    found.pending.then((held) => {
      if (res.destroyed) return; // the viewer left while the fill ran
      if (held === null) forward();
      // The request that caused the fill went upstream (its record names the backend); the ones that waited did not.
      else answer(req, res, held, shared ? 'SHARED' : 'MISS', shared);
    }, forward);
    return true;
  }
}

function answer(req: IncomingMessage, res: ProxyResponse, held: CachedSegment, cacheStatus: 'HIT' | 'SHARED' | 'MISS', fromCache: boolean): void {
  res.fromCache = fromCache;
  res.filledFrom = fromCache ? null : held.filledFrom;
  res.setHeader('x-cache', cacheStatus);
  if (res.setCookie !== null) res.appendHeader('set-cookie', res.setCookie);
  const etag = held.headers.etag;
  if (held.status === 200 && etag !== undefined && req.headers['if-none-match'] === etag) {
    res.writeHead(304, { etag, 'cache-control': held.headers['cache-control'] ?? '' });
    res.end();
    return;
  }
  res.writeHead(held.status, held.headers);
  res.end(req.method === 'HEAD' ? undefined : held.body);
}
