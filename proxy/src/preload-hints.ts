/**
 * The part each live media playlist hints (`EXT-X-PRELOAD-HINT:TYPE=PART`), as read from the
 * playlist answers the cache fills bring. Web holds a request for the hinted part until it is
 * written, so such a request is a held one (backend.ts): it must not count as in flight for the
 * balancer. hls.js 1.7 never asks for hinted parts; Safari does.
 */
import { hintedPartPath } from './hls-directives.ts';

/** Beyond this many playlists with a hint, forget them all (only real live playlists have one). */
const MAX_PLAYLISTS = 4_096;

export class PreloadHints {
  /** Playlist path → the path of the part it hints. */
  private readonly byPlaylist = new Map<string, string>();
  private readonly hinted = new Set<string>();

  /** A fresh answer for `playlistPath`. */
  update(playlistPath: string, body: Buffer): void {
    const part = hintedPartPath(playlistPath, body);
    const previous = this.byPlaylist.get(playlistPath);
    if (previous === part) return;
    if (previous !== undefined) this.hinted.delete(previous);
    if (part === null) {
      this.byPlaylist.delete(playlistPath);
      return;
    }
    if (this.byPlaylist.size >= MAX_PLAYLISTS) {
      this.byPlaylist.clear();
      this.hinted.clear();
    }
    this.byPlaylist.set(playlistPath, part);
    this.hinted.add(part);
  }

  /** Whether `path` is the part a playlist hints now (web will hold a request for it until it exists). */
  isHinted(path: string): boolean {
    return this.hinted.size > 0 && this.hinted.has(path);
  }
}
