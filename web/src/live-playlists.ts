import path from 'node:path';
import { PUBLIC_PLAYLIST } from '../../common/src/media-layout.ts';
import { LivePlaylist, type LivePlaylistContext } from './live-playlist.ts';
import { mediaFilePath } from './media-files.ts';
import { parseMediaPath } from './media-path.ts';
import type { HeldTally } from './hold-queue.ts';
import type { HeldKind } from './metrics.ts';

/** A playlist nobody asked about and the feed did not update for this long is forgotten (with its watcher). */
export const IDLE_PLAYLIST_MS = 60_000;
/** At most this many playlist states (each may hold a watcher): made-up stream names cannot grow memory. */
export const MAX_LIVE_PLAYLISTS = 1_000;
const IDLE_SWEEP_MS = 10_000;
/** Moving a state to the recent end of the map at most this often per playlist, not on every request. */
const RECENCY_STEP_MS = 1_000;

export interface LivePlaylistLimits {
  maxPlaylists: number;
  idleMs: number;
  /** How often idle states are looked for. */
  sweepMs: number;
}

/**
 * The states of the live media playlists (`live/<stream>/index.m3u8`, `live/<stream>/<rendition>/index.m3u8`),
 * created on demand for validated paths, by a request or by the feed, dropped when idle, bounded.
 * Map order is recency of asking (to the second), so the bound drops the least recently asked.
 */
export class LivePlaylists {
  private readonly playlists = new Map<string, LivePlaylist>();
  private readonly context: LivePlaylistContext;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly held: Record<HeldKind, number> = { playlist: 0, part: 0 };
  private closed = false;

  constructor(
    private readonly mediaDir: string,
    context: Omit<LivePlaylistContext, 'tallies'>,
    private readonly limits: LivePlaylistLimits = { maxPlaylists: MAX_LIVE_PLAYLISTS, idleMs: IDLE_PLAYLIST_MS, sweepMs: IDLE_SWEEP_MS },
  ) {
    const tally = (kind: HeldKind): HeldTally => ({
      finished: context.metrics.finished[kind],
      change: (delta) => {
        this.held[kind] += delta;
      },
    });
    this.context = { ...context, tallies: { playlist: tally('playlist'), part: tally('part') } };
  }

  start(): void {
    this.idleTimer = setInterval(() => this.dropIdle(this.context.now()), this.limits.sweepMs);
    this.idleTimer.unref();
  }

  /** Answers everything held and stops all watchers (shutdown: held requests must not hold it up). */
  close(): void {
    this.closed = true;
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = null;
    for (const playlist of this.playlists.values()) playlist.close();
    this.playlists.clear();
  }

  get size(): number {
    return this.playlists.size;
  }

  /** Requests held now, across all playlists. */
  heldNow(kind: HeldKind): number {
    return this.held[kind];
  }

  /**
   * The state of a live playlist a request asks for (`file`: the absolute path of a validated
   * `index.m3u8`); null only when the bound is reached and every state holds requests.
   */
  forRequest(file: string): LivePlaylist | null {
    const now = this.context.now();
    const known = this.playlists.get(file);
    if (known !== undefined) {
      if (now - known.askedAt >= RECENCY_STEP_MS) {
        this.playlists.delete(file);
        this.playlists.set(file, known);
      }
      known.askedAt = now;
      return known;
    }
    return this.create(file);
  }

  /** The playlist whose folder holds `segmentFile` (a part or segment of a validated live path). */
  forFolderOf(segmentFile: string): LivePlaylist | null {
    return this.forRequest(path.join(path.dirname(segmentFile), PUBLIC_PLAYLIST));
  }

  /**
   * A version from ingest's feed. `file` is relative to MEDIA_DIR and must be exactly
   * `live/<stream>/index.m3u8` or `live/<stream>/<rendition>/index.m3u8` by the same rules as a
   * viewer's path (so the feed can never make web serve anything else); false when refused.
   */
  feedVersion(file: string, text: string): boolean {
    const parsed = parseMediaPath(`/${file}`);
    if (!parsed.ok || parsed.media.file !== PUBLIC_PLAYLIST || !text.startsWith('#EXTM3U')) return false;
    const absolute = mediaFilePath(this.mediaDir, parsed.media);
    const playlist = this.playlists.get(absolute) ?? this.create(absolute);
    if (playlist === null) return false;
    playlist.offerFeedText(text);
    return true;
  }

  /** Until the feed is back, every playlist goes by its file again. */
  feedLost(): void {
    for (const playlist of this.playlists.values()) playlist.feedLost();
  }

  /** Null after close (draining: no new holds) or when the bound is reached and every state holds requests. */
  private create(file: string): LivePlaylist | null {
    if (this.closed) return null;
    if (this.playlists.size >= this.limits.maxPlaylists && !this.dropOne()) return null;
    const playlist = new LivePlaylist(file, this.context);
    this.playlists.set(file, playlist);
    return playlist;
  }

  /** Drops the least recently asked state that holds nothing; false when all hold requests. */
  private dropOne(): boolean {
    for (const [file, playlist] of this.playlists) {
      if (playlist.holds > 0) continue;
      playlist.close();
      this.playlists.delete(file);
      return true;
    }
    return false;
  }

  private dropIdle(now: number): void {
    for (const [file, playlist] of this.playlists) {
      if (playlist.holds > 0 || now - playlist.askedAt < this.limits.idleMs || now - playlist.feedAt < this.limits.idleMs) continue;
      playlist.close();
      this.playlists.delete(file);
    }
  }
}
