/**
 * GET /playlists/feed on ingest's control port: every new playlist text, pushed to web replicas the
 * moment it is renamed into place (docs/low-latency-hls.md "Ingest's playlist feed"). Web learns of a
 * new part from the file system where it can (inotify on one machine), but inotify does not cross
 * NFS clients and NFS caches attributes: on a multi-node volume the feed is what keeps blocking
 * playlist reloads prompt. The files themselves are still read from the shared volume.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export const PLAYLIST_FEED_PATH = '/playlists/feed';
const HEARTBEAT_MS = 2_000;
/** A reader this far behind is cut off; it reconnects and gets the current versions. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
/** Ended playlists are still sent to new readers for this long (their viewers get the ENDLIST). */
const ENDED_KEPT_MS = 60_000;

interface Latest {
  line: string;
  ended: boolean;
  at: number;
}

export class PlaylistFeed {
  private readonly latest = new Map<string, Latest>();
  private readonly readers = new Set<ServerResponse>();
  private heartbeat: NodeJS.Timeout | null = null;
  /** Readers cut off for falling behind. */
  droppedReaders = 0;

  async start(): Promise<void> {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Ends every reader's stream (shutdown); idempotent. */
  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    for (const reader of this.readers) reader.end();
    this.readers.clear();
  }

  get readerCount(): number {
    return this.readers.size;
  }

  /** A playlist's new text is in place: `file` relative to MEDIA_DIR. */
  publish(file: string, text: string): void {
    const line = `${JSON.stringify({ type: 'playlist', file, text })}\n`;
    this.latest.set(file, { line, ended: text.includes('#EXT-X-ENDLIST'), at: Date.now() });
    for (const reader of this.readers) this.send(reader, line);
  }

  /** Answers GET /playlists/feed; true when it was that request. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (path !== PLAYLIST_FEED_PATH) return false;
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET', 'content-type': 'text/plain; charset=utf-8' });
      res.end('method not allowed\n');
      return true;
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    req.socket.setNoDelay(true);
    this.readers.add(res);
    res.once('close', () => this.readers.delete(res));
    for (const entry of this.latest.values()) this.send(res, entry.line);
    return true;
  }

  private send(reader: ServerResponse, line: string): void {
    if (reader.writableLength > MAX_BUFFERED_BYTES) {
      this.droppedReaders += 1;
      this.readers.delete(reader);
      reader.destroy();
      return;
    }
    reader.write(line);
  }

  private beat(): void {
    const now = Date.now();
    for (const [file, entry] of this.latest) if (entry.ended && now - entry.at > ENDED_KEPT_MS) this.latest.delete(file);
    const line = `${JSON.stringify({ type: 'heartbeat', at: new Date(now).toISOString() })}\n`;
    for (const reader of this.readers) this.send(reader, line);
  }
}
