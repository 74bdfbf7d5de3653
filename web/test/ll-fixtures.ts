import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../common/src/atomic-file.ts';
import { parseMediaPlaylist, renderMediaPlaylist, type MediaPlaylistState, type PlaylistPart, type PlaylistSegment } from '../../common/src/hls/media-playlist.ts';

/**
 * Low-latency playlists for the web tests, made the way ingest makes them (docs/low-latency-hls.md):
 * parts `<run>-p<k>.m4s` numbered across the run, segments `<run>-<n>.m4s` listing their parts,
 * the open segment's parts, the preload hint for the next part; rendered by `renderMediaPlaylist`.
 * Not a test file itself.
 */
export interface LowLatencyShape {
  run: string;
  targetDuration: number;
  partTarget: number;
  partsPerSegment: number;
  windowSegments: number;
  /** Media sequence number of the first segment. */
  firstMsn: number;
}

export const DEFAULT_SHAPE: LowLatencyShape = { run: 'mfz3k2a1b2c3', targetDuration: 1, partTarget: 0.25, partsPerSegment: 4, windowSegments: 6, firstMsn: 0 };

export class LowLatencyPlaylist {
  readonly shape: LowLatencyShape;
  private segments: PlaylistSegment[] = [];
  private open: PlaylistPart[] = [];
  private mediaSequence: number;
  private nextPart = 0;
  private nextSegment: number;
  ended = false;

  constructor(shape: Partial<LowLatencyShape> = {}) {
    this.shape = { ...DEFAULT_SHAPE, ...shape };
    this.mediaSequence = this.shape.firstMsn;
    this.nextSegment = this.shape.firstMsn;
  }

  /** The media sequence number of the open segment (= last complete + 1). */
  get openMsn(): number {
    return this.mediaSequence + this.segments.length;
  }

  get openParts(): number {
    return this.open.length;
  }

  /** The name the next part will have (the preload hint). */
  get hint(): string {
    return partName(this.shape.run, this.nextPart);
  }

  /** Adds the next part; completes the segment when it has all its parts. Returns what was added. */
  addPart(): { part: string; segment: string | null; segmentParts: string[] } {
    const part = this.hint;
    const independent = this.open.length === 0;
    this.open.push({ uri: part, duration: this.shape.partTarget, independent });
    this.nextPart++;
    if (this.open.length < this.shape.partsPerSegment) return { part, segment: null, segmentParts: [] };
    const parts = this.open;
    const segment = `${this.shape.run}-${this.nextSegment}.m4s`;
    this.segments.push({
      uri: segment,
      duration: parts.reduce((sum, p) => sum + p.duration, 0),
      initUri: `${this.shape.run}-init.mp4`,
      discontinuity: false,
      programDateTime: null,
      parts,
    });
    this.nextSegment++;
    this.open = [];
    while (this.segments.length > this.shape.windowSegments) {
      this.segments.shift();
      this.mediaSequence++;
    }
    return { part, segment, segmentParts: parts.map((p) => p.uri) };
  }

  state(): MediaPlaylistState {
    return {
      targetDuration: this.shape.targetDuration,
      mediaSequence: this.mediaSequence,
      discontinuitySequence: 0,
      segments: this.segments,
      ended: this.ended,
      lowLatency: {
        partTarget: this.shape.partTarget,
        partHoldBack: 3 * this.shape.partTarget,
        open: this.ended ? null : { initUri: `${this.shape.run}-init.mp4`, discontinuity: false, programDateTime: null, parts: this.open },
        preloadHint: this.ended ? null : this.hint,
      },
    };
  }

  render(): string {
    return renderMediaPlaylist(this.state());
  }
}

export function partName(run: string, k: number): string {
  return `${run}-p${k}.m4s`;
}

/** Recognisable bytes for a media file (its name inside, so a mix-up shows). */
export function mediaBytes(name: string, size = 2_000): Buffer {
  const body = Buffer.alloc(size, 0x2e);
  body.write(name, 0, 'latin1');
  return body;
}

/**
 * Writes a low-latency stream into a live folder as ingest does: each part atomically, then the
 * segment (its parts' bytes) when complete, then the playlist atomically, so the playlist never
 * lists a file that is not there.
 */
export class LowLatencyWriter {
  readonly bodies = new Map<string, Buffer>();

  constructor(
    readonly dir: string,
    readonly playlist: LowLatencyPlaylist,
  ) {}

  async start(initialParts = 0): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await this.writeMedia(`${this.playlist.shape.run}-init.mp4`, mediaBytes('init', 700));
    for (let i = 0; i < initialParts; i++) await this.writeMediaFor(this.playlist.addPart());
    await this.writePlaylist();
  }

  /** The next part, published: part file, segment file when complete, playlist. Returns the part's name. */
  async publishPart(): Promise<string> {
    const added = this.playlist.addPart();
    await this.writeMediaFor(added);
    await this.writePlaylist();
    return added.part;
  }

  /** Writes the next part's file only (the playlist still hints at it). */
  async writeNextPartFileOnly(): Promise<{ name: string; commit: () => Promise<void> }> {
    const added = this.playlist.addPart();
    await this.writeMediaFor(added);
    return { name: added.part, commit: () => this.writePlaylist() };
  }

  async writePlaylist(): Promise<void> {
    await writeFileAtomic(path.join(this.dir, 'index.m3u8'), this.playlist.render());
  }

  private async writeMediaFor(added: { part: string; segment: string | null; segmentParts: string[] }): Promise<void> {
    await this.writeMedia(added.part, mediaBytes(added.part));
    if (added.segment) await this.writeMedia(added.segment, Buffer.concat(added.segmentParts.map((p) => this.bodies.get(p)!)));
  }

  private async writeMedia(name: string, body: Buffer): Promise<void> {
    this.bodies.set(name, body);
    await writeFileAtomic(path.join(this.dir, name), body);
  }
}

/** Whether a playlist text lists `name` as a part (not merely as the preload hint). */
export function listsPart(text: string | Buffer, name: string): boolean {
  const playlist = parseMediaPlaylist(text.toString());
  return [...playlist.segments.flatMap((s) => s.parts), ...playlist.openParts].some((p) => p.uri === name);
}
