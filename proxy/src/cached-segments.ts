/**
 * The request side of the proxy's media caches (segment-cache.ts, playlist-cache.ts): which
 * requests they take, and answering them from memory. Runs after admission (allowlist, tokens,
 * limits): a held answer is no less protected.
 *
 * Playlists: the canonical LL-HLS directives of the query are part of the key and of the fill
 * (hls-directives.ts); the rest of the query is not. A request with malformed directives is not
 * cached: it is forwarded exactly as sent (web answers 400, or what it decides). Every request also
 * learns here whether web will hold it (`res.held`: a blocking reload, a hinted part), which the
 * forwarder needs when the request is relayed rather than answered from memory.
 */
import type { IncomingMessage } from 'node:http';
import { describePath } from '../../common/src/access-record.ts';
import { canonicalDirectives, isBlockingDirective, mayBlock } from './hls-directives.ts';
import type { PlaylistCache } from './playlist-cache.ts';
import type { PreloadHints } from './preload-hints.ts';
import type { ProxyResponse } from './proxy-response.ts';
import type { CachedSegment, FillWait, SegmentCache, SegmentFill } from './segment-cache.ts';

export class CachedSegments {
  constructor(
    private readonly segments: SegmentCache,
    private readonly playlists: PlaylistCache,
    private readonly fill: SegmentFill,
    private readonly hints: PreloadHints | null = null,
  ) {}

  /**
   * Answers a segment or playlist request from memory (now, or once the fill it waits for is done)
   * and returns true; calls `forward()` instead when the fill brought nothing. Returns false for
   * requests the caches do not take (other paths, not GET/HEAD, a Range request, a cache turned
   * off, malformed directives). `query` is the raw query string, without `?`.
   */
  handle(req: IncomingMessage, res: ProxyResponse, path: string, query: string, forward: () => void): boolean {
    const kind = describePath(path).kind;
    if (kind !== 'playlist' && kind !== 'segment') return false;
    const takes = (req.method === 'GET' || req.method === 'HEAD') && req.headers.range === undefined;
    let found: CachedSegment | FillWait;
    if (kind === 'playlist') {
      const directives = canonicalDirectives(query);
      res.held = directives === null ? mayBlock(query) : isBlockingDirective(directives);
      if (!takes || !this.playlists.enabled) return false;
      if (directives === null) {
        this.playlists.bypassed();
        return false;
      }
      found = this.playlists.lookup(path, directives, this.fill);
    } else {
      res.held = this.hints !== null && this.hints.isHinted(path);
      if (!takes || !this.segments.enabled) return false;
      found = this.segments.lookup(path, this.fill, res.held);
    }
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
  // Replayed headers never include Age (segment-cache.ts replayedHeaders): hls.js would read a
  // held playlist's Age as "the edge is behind" and ask further ahead (LL-HLS CDN tune-in).
  res.writeHead(held.status, held.headers);
  res.end(req.method === 'HEAD' ? undefined : held.body);
}
