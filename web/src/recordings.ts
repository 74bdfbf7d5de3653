import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { archiveRoot, isSessionId, SESSION_FILE, type SessionInfo } from '../../common/src/media-layout.ts';
import { isStreamName } from '../../common/src/stream-name.ts';
import type { Logger } from '../../common/src/logger.ts';
import { CachedListing } from './cached-listing.ts';

/** What viewers see of a recorded broadcast (GET /vod.json): URLs ready to use, nothing internal. */
export interface PublicRecording {
  stream: string;
  session: string;
  started: string;
  ended: string | null;
  /** Still being recorded: the playlist grows (watch it from the start while live). */
  live: boolean;
  durationSeconds: number;
  segments: number;
  page: string;
  playlist: string;
  thumbnail: string | null;
}

/** The listing is re-read at most this often: it changes with each segment, nobody needs it fresher. */
export const RECORDINGS_TTL_MS = 2_000;

/**
 * Recorded broadcasts, read from ingest's session.json files under MEDIA_DIR/archive (web never
 * writes there). One directory walk per TTL whatever the number of requests; newest first.
 */
export class Recordings {
  private readonly listing: CachedListing<PublicRecording>;

  constructor(
    private readonly mediaDir: string,
    private readonly logger: Logger,
    ttlMs = RECORDINGS_TTL_MS,
  ) {
    this.listing = new CachedListing(ttlMs, () => this.scan());
  }

  async list(stream?: string): Promise<PublicRecording[]> {
    const all = await this.all();
    return stream === undefined ? all : all.filter((r) => r.stream === stream);
  }

  async find(stream: string, session: string): Promise<PublicRecording | null> {
    return (await this.all()).find((r) => r.stream === stream && r.session === session) ?? null;
  }

  private all(): Promise<PublicRecording[]> {
    return this.listing.get();
  }

  private async scan(): Promise<PublicRecording[]> {
    const root = archiveRoot(this.mediaDir);
    const out: PublicRecording[] = [];
    const streams = await readdir(root).catch(() => [] as string[]);
    for (const stream of streams) {
      if (!isStreamName(stream)) continue;
      const sessions = await readdir(path.join(root, stream)).catch(() => [] as string[]);
      for (const session of sessions) {
        if (!isSessionId(session)) continue;
        const info = await readInfo(path.join(root, stream, session, SESSION_FILE));
        // No session.json yet, or no segment yet: nothing to play.
        if (!info || info.segments < 1) continue;
        out.push(toPublic(stream, session, info));
      }
    }
    this.logger.debug({ recordings: out.length }, 'recordings listed');
    return out.sort((a, b) => b.session.localeCompare(a.session) || a.stream.localeCompare(b.stream));
  }
}

async function readInfo(file: string): Promise<SessionInfo | null> {
  try {
    const info = JSON.parse(await readFile(file, 'utf8')) as Partial<SessionInfo>;
    if (typeof info.started !== 'string' || typeof info.segments !== 'number' || typeof info.durationSeconds !== 'number') return null;
    return info as SessionInfo;
  } catch {
    return null;
  }
}

function toPublic(stream: string, session: string, info: SessionInfo): PublicRecording {
  const base = `/archive/${stream}/${session}`;
  return {
    stream,
    session,
    started: info.started,
    ended: typeof info.ended === 'string' ? info.ended : null,
    live: typeof info.ended !== 'string',
    durationSeconds: info.durationSeconds,
    segments: info.segments,
    page: `/vod/${stream}/${session}`,
    playlist: `${base}/index.m3u8`,
    thumbnail: info.thumbnail === 'thumbnail.jpg' ? `${base}/thumbnail.jpg` : null,
  };
}
