import type { ServerResponse } from 'node:http';
import path from 'node:path';
import { watchFolder, type FolderWatch } from './folder-watch.ts';
import { HeldParts, type PartServing } from './held-parts.ts';
import { HeldReloads, type BlockingDirectives } from './held-reloads.ts';
import type { HeldTally } from './hold-queue.ts';
import type { MediaRequest } from './media-path.ts';
import type { HeldKind, LowLatencyMetrics, VersionSource } from './metrics.ts';
import { playlistAnswerStatus, playlistHeaders, writePlaylist } from './playlist-answers.ts';
import { playlistVersion, supersedes, type PlaylistVersion } from './playlist-version.ts';
import { sendText } from './responses.ts';

/**
 * The fallback re-read: when neither a file-system event nor the feed has said anything about a
 * playlist for this long and someone is asking or waiting, read the file again (at most this
 * often, one read at a time). It is what keeps blocking reloads working on a file system without
 * change events (NFS) and without the feed, and it checks that the events are still coming.
 */
export const REREAD_MS = 250;
/** rfc8216bis §6.2.5.2: a blocking reload (and a hinted part) is held at most 3 target durations. */
export const HOLD_TARGET_DURATIONS = 3;

/** What a playlist's state needs from web around it. */
export interface LivePlaylistContext extends PartServing {
  now(): number;
  metrics: LowLatencyMetrics;
  /** Counting held requests, by kind, across all playlists. */
  tallies: Record<HeldKind, HeldTally>;
  /** The playlist body, null when the file does not exist. */
  loadPlaylist(file: string): Promise<Buffer | null>;
  /** Watches a folder for renames into it (default: fs.watch); null when it cannot. Tests replace it to be a file system without events. */
  watchFolder?: (dir: string, onChange: (filename: string | null) => void, onError: () => void) => FolderWatch | null;
}

/**
 * One live playlist file (a stream's index.m3u8 or a rendition's <rendition>/index.m3u8): its
 * newest version and the requests held on it. Versions arrive from a file-system watcher on the
 * playlist's folder (ingest renames each new version into place), from ingest's feed, and from
 * re-reads on demand; one replaces the held version only when it is newer (playlist-version.ts),
 * and each new version wakes exactly the held requests it satisfies.
 */
export class LivePlaylist {
  /** undefined: never read; null: the file does not exist (as of the last read). */
  version: PlaylistVersion | null | undefined = undefined;
  /** When a request last asked for this playlist or one of its parts (for dropping idle state). */
  askedAt: number;
  /** When the feed last sent a version of it. */
  feedAt = -Infinity;

  private readonly dir: string;
  private readonly name: string;
  private readonly dirName: string;
  /** The watcher has announced changes and none has been missed since: held versions are current. */
  private watchTrusted = false;
  /** The feed (connected) has sent this playlist: it will send every new version. */
  private feedTrusted = false;
  /** A file-system event announced a new version the read under way has not taken in yet. */
  private changeAnnounced = false;
  /** The last file-system event or feed version. */
  private heardAt = -Infinity;
  /** When the last finished read started (freshness counts from the start, like PlaylistCache). */
  private readAt = -Infinity;
  private reading: Promise<void> | null = null;
  private readAgain = false;
  private watcher: FolderWatch | null = null;
  private readonly reloads: HeldReloads;
  private readonly parts: HeldParts;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    readonly file: string,
    private readonly context: LivePlaylistContext,
  ) {
    this.dir = path.dirname(file);
    this.name = path.basename(file);
    this.dirName = path.basename(this.dir);
    this.askedAt = context.now();
    this.reloads = new HeldReloads(context.tallies.playlist);
    this.parts = new HeldParts(this.dir, context, context.tallies.part);
  }

  /** Requests held on this playlist (reloads and hinted parts). */
  get holds(): number {
    return this.reloads.size + this.parts.size;
  }

  /**
   * Whether a request may be answered from `version` without reading the file first. True when a
   * push source vouches for it (then a quiet playlist is still re-read in the background, which
   * is how a watcher that stopped delivering is found out), or when it was read < REREAD_MS ago.
   */
  current(now: number): boolean {
    if (this.version === undefined || this.changeAnnounced) return false;
    const pushed = this.watchTrusted || this.feedTrusted;
    if (pushed && now - Math.max(this.heardAt, this.readAt) >= REREAD_MS) this.readInBackground();
    return pushed || now - this.readAt < REREAD_MS;
  }

  /** Reads the file (joining a read under way); rejects when the file cannot be read (not when it is missing). */
  refresh(): Promise<void> {
    return this.read('read');
  }

  /** A version from ingest's feed. */
  offerFeedText(text: string): void {
    const now = this.context.now();
    this.feedTrusted = true;
    this.heardAt = now;
    this.feedAt = now;
    this.offer(Buffer.from(text, 'utf8'), 'feed', 'feed');
  }

  /** The feed disconnected: until it is back, versions come from the file. */
  feedLost(): void {
    this.feedTrusted = false;
  }

  /** Holds a blocking reload until a version satisfies it, at most 3 × TARGETDURATION. */
  holdReload(res: ServerResponse, directives: BlockingDirectives): void {
    const version = this.version;
    if (this.closed || !version) {
      if (!version) return void sendText(res.req, res, 404, 'not found\n');
      return writePlaylist(res, playlistAnswerStatus('timeout'), playlistHeaders('timeout', version.body, version.targetDuration), version.body);
    }
    this.reloads.add(res, directives, this.deadline(version));
    this.sweepSoon();
  }

  /** Whether `file` (a name in this playlist's folder) is the part the current version hints at (EXT-X-PRELOAD-HINT). */
  isHintedPart(file: string): boolean {
    return this.version?.media?.preloadHint === file;
  }

  /** Holds a request for the hinted part until it exists, at most 3 × TARGETDURATION (then 404). */
  holdHintedPart(res: ServerResponse, media: MediaRequest): void {
    const version = this.version;
    if (this.closed || !version) return void sendText(res.req, res, 404, 'not found\n');
    this.context.metrics.hintedPartHolds.inc();
    this.parts.add(res, media, this.deadline(version));
    this.sweepSoon();
  }

  /** Answers everything held (with what there is), stops the timer and the watcher. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.stopWatching();
    this.reloads.releaseAll(this.version ?? null);
    this.parts.releaseAll();
  }

  private deadline(version: PlaylistVersion): number {
    return this.context.now() + HOLD_TARGET_DURATIONS * version.targetDuration * 1000;
  }

  // --- versions -------------------------------------------------------------------------------

  private read(trigger: 'watch' | 'read'): Promise<void> {
    if (this.reading) {
      // The read under way may have opened the file before this event's rename: read once more.
      if (trigger === 'watch') this.readAgain = true;
      return this.reading;
    }
    this.reading = this.readLoop(trigger).finally(() => {
      this.reading = null;
    });
    return this.reading;
  }

  private readInBackground(trigger: 'watch' | 'read' = 'read'): void {
    this.read(trigger).catch((err: unknown) => this.context.logger.warn({ err, file: this.file }, 'could not re-read a live playlist'));
  }

  private async readLoop(trigger: 'watch' | 'read'): Promise<void> {
    let source: VersionSource = trigger;
    for (;;) {
      this.readAgain = false;
      this.changeAnnounced = false;
      const startedAt = this.context.now();
      let body: Buffer | null;
      try {
        body = await this.context.loadPlaylist(this.file);
      } finally {
        this.readAt = startedAt;
      }
      if (this.closed) return;
      const replaced = this.offer(body, 'file', source);
      // A version that no event and no feed message announced: they are not to be trusted for
      // now (trust comes back with the next event or feed message).
      if (replaced && source === 'read') this.watchTrusted = this.feedTrusted = false;
      let again = this.readAgain;
      if (body === null) this.stopWatching();
      // A new watcher: read once more, so that a rename between this read and the watch is not missed.
      else if (this.watcher === null && this.watch()) again = true;
      if (!again) return;
      if (this.readAgain) source = 'watch';
    }
  }

  /** Takes in a version if it is newer than the held one; returns whether it replaced it. */
  private offer(body: Buffer | null, origin: 'file' | 'feed', source: VersionSource): boolean {
    const held = this.version;
    if (body === null) {
      // Missing from the file. While the feed is connected and sent it, believe the feed: a network
      // file system may not show a new stream's folder yet.
      if (held && held.origin === 'feed' && this.feedTrusted) return false;
      this.version = null;
      return held !== null && held !== undefined;
    }
    if (held && held.body.equals(body)) return false;
    const candidate = playlistVersion(body, origin);
    if (held && !supersedes(candidate, held)) return false;
    this.version = candidate;
    this.context.metrics.versions[source].inc();
    // Exactly the held requests this version satisfies.
    this.reloads.wake(candidate);
    this.parts.onVersion(candidate);
    return true;
  }

  // --- the sweep: deadlines, clients gone, the fallback re-read ---------------------------------

  private sweepSoon(): void {
    if (this.timer === null && !this.closed) this.schedule(REREAD_MS);
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(this.sweep, Math.max(1, delayMs));
    this.timer.unref();
  }

  private readonly sweep = (): void => {
    this.timer = null;
    const now = this.context.now();
    const earliest = Math.min(this.reloads.sweep(now, this.version ?? null), this.parts.sweep(now));
    if (this.holds === 0) return;
    if (now - Math.max(this.heardAt, this.readAt) >= REREAD_MS) this.readInBackground();
    this.schedule(Math.min(REREAD_MS, earliest - now));
  };

  // --- the watcher ----------------------------------------------------------------------------

  /** Starts watching the playlist's folder; false when it cannot (the folder went since the read: reads only, the next one tries again). */
  private watch(): boolean {
    if (this.watcher !== null || this.closed) return false;
    this.watcher = (this.context.watchFolder ?? watchFolder)(this.dir, (filename) => this.onChange(filename), () => this.stopWatching());
    return this.watcher !== null;
  }

  private stopWatching(): void {
    this.watchTrusted = false;
    if (this.watcher === null) return;
    this.watcher.close();
    this.watcher = null;
  }

  private onChange(filename: string | null): void {
    if (filename === this.dirName) {
      // The folder itself was renamed or removed (inotify says so with its name; a same-named entry
      // inside is harmless): this watcher is blind from now on, the next read sets up a new one.
      this.stopWatching();
      this.readInBackground();
      return;
    }
    if (filename === this.name || filename === null) {
      this.watchTrusted = true;
      this.heardAt = this.context.now();
      this.changeAnnounced = true;
      this.readInBackground('watch');
    }
    this.parts.onFileEvent(filename);
  }
}
