/**
 * The request side of the segment cache: which requests it takes, and answering them from memory.
 * Runs after admission (allowlist, tokens, limits): a cached segment is no less protected.
 */
import type { IncomingMessage } from 'node:http';
import { describePath } from '../../common/src/access-record.ts';
import type { ProxyResponse } from './proxy-response.ts';
import type { CachedSegment, SegmentCache, SegmentFill } from './segment-cache.ts';

export class CachedSegments {
  constructor(
    private readonly cache: SegmentCache,
    private readonly fill: SegmentFill,
  ) {}

  /**
   * Answers a segment request from the cache (now, or once the fill it waits for is done) and
   * returns true; calls `forward()` instead when the fill brought nothing. Returns false for requests
   * the cache does not take (not a segment, not GET/HEAD, a Range request).
   */
  handle(req: IncomingMessage, res: ProxyResponse, path: string, forward: () => void): boolean {
    if (!this.cache.enabled || (req.method !== 'GET' && req.method !== 'HEAD') || req.headers.range !== undefined) return false;
    if (describePath(path).kind !== 'segment') return false;
    const found = this.cache.lookup(path, this.fill);
    if ('body' in found) {
      answer(req, res, found, 'HIT', true);
      return true;
    }
    const shared = found.shared;
    found.pending.then((segment) => {
      if (res.destroyed) return; // the viewer left while the fill ran
      if (segment === null) forward();
      // The request that caused the fill went upstream (its record names the backend); the ones that waited did not.
      else answer(req, res, segment, shared ? 'SHARED' : 'MISS', shared);
    }, forward);
    return true;
  }
}

function answer(req: IncomingMessage, res: ProxyResponse, segment: CachedSegment, cacheStatus: 'HIT' | 'SHARED' | 'MISS', fromCache: boolean): void {
  res.fromCache = fromCache;
  res.filledFrom = fromCache ? null : segment.filledFrom;
  res.setHeader('x-cache', cacheStatus);
  if (res.setCookie !== null) res.appendHeader('set-cookie', res.setCookie);
  const etag = segment.headers.etag;
  if (segment.status === 200 && etag !== undefined && req.headers['if-none-match'] === etag) {
    res.writeHead(304, { etag, 'cache-control': segment.headers['cache-control'] ?? '' });
    res.end();
    return;
  }
  res.writeHead(segment.status, segment.headers);
  res.end(req.method === 'HEAD' ? undefined : segment.body);
}
