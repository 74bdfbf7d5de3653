/**
 * Housekeeping of MEDIA_DIR/archive: closing recordings a crash left open, and retention.
 * Both only touch sessions that are not being recorded now.
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../../common/src/atomic-file.ts';
import type { Logger } from '../../../common/src/logger.ts';
import { archiveRoot, isSessionId, PUBLIC_PLAYLIST, SESSION_FILE, type SessionInfo } from '../../../common/src/media-layout.ts';
import { isStreamName } from '../../../common/src/stream-name.ts';

export interface ArchivedSession {
  stream: string;
  session: string;
  dir: string;
}

/** Every <stream>/<session> folder, oldest session first (session ids start with their UTC start time). */
export async function listArchivedSessions(mediaDir: string): Promise<ArchivedSession[]> {
  const root = archiveRoot(mediaDir);
  const out: ArchivedSession[] = [];
  let streams: string[];
  try {
    streams = await readdir(root);
  } catch {
    return out;
  }
  for (const stream of streams) {
    if (!isStreamName(stream)) continue;
    let sessions: string[];
    try {
      sessions = await readdir(path.join(root, stream));
    } catch {
      continue;
    }
    for (const session of sessions) if (isSessionId(session)) out.push({ stream, session, dir: path.join(root, stream, session) });
  }
  return out.sort((a, b) => a.session.localeCompare(b.session) || a.stream.localeCompare(b.stream));
}

async function readSessionInfo(dir: string): Promise<SessionInfo | null> {
  try {
    return JSON.parse(await readFile(path.join(dir, SESSION_FILE), 'utf8')) as SessionInfo;
  } catch {
    return null;
  }
}

/**
 * At start, before any publisher: a recording without ENDLIST was cut by a crash. It gets its
 * ENDLIST (it is complete up to its last listed segment) and an end time (its playlist's mtime).
 */
export async function endAbandonedArchives(mediaDir: string, logger: Logger): Promise<string[]> {
  const ended: string[] = [];
  for (const s of await listArchivedSessions(mediaDir)) {
    const playlistFile = path.join(s.dir, PUBLIC_PLAYLIST);
    try {
      const text = await readFile(playlistFile, 'utf8');
      const info = await readSessionInfo(s.dir);
      if (text.includes('#EXT-X-ENDLIST') && info?.ended) continue;
      const { mtime } = await stat(playlistFile);
      if (!text.includes('#EXT-X-ENDLIST')) await writeFileAtomic(playlistFile, `${text.trimEnd()}\n#EXT-X-ENDLIST\n`);
      if (info && !info.ended) await writeFileAtomic(path.join(s.dir, SESSION_FILE), `${JSON.stringify({ ...info, ended: mtime.toISOString() }, null, 2)}\n`);
      ended.push(`${s.stream}/${s.session}`);
    } catch {
      /* no playlist: nothing was recorded (retention removes the folder in time) */
    }
  }
  if (ended.length) logger.warn({ sessions: ended }, 'closed recordings left open by a previous run');
  return ended;
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const st = await stat(path.join(dir, name)).catch(() => null);
    if (st?.isFile()) total += st.size;
  }
  return total;
}

export interface RetentionOptions {
  mediaDir: string;
  /** 0 = no age limit */
  maxAgeHours: number;
  /** 0 = no size cap */
  maxBytes: number;
  /** `<stream>/<session>` of recordings in progress: never deleted. */
  recording: () => Set<string>;
  logger: Logger;
  onDeleted?: (reason: 'age' | 'size') => void;
  now?: () => number;
}

/**
 * One retention pass: deletes ended recordings older than maxAgeHours (by end time), then the
 * oldest ended ones while the archive exceeds maxBytes. Nobody tracks who is watching a
 * recording: a viewer in the middle of one that gets deleted sees the player stop.
 * Sizes count each file once per archive (a segment still in the live window shares its blocks).
 */
export async function applyRetention(options: RetentionOptions): Promise<ArchivedSession[]> {
  const { maxAgeHours, maxBytes, logger } = options;
  if (maxAgeHours <= 0 && maxBytes <= 0) return [];
  const now = options.now?.() ?? Date.now();
  const recording = options.recording();
  const deleted: ArchivedSession[] = [];
  const candidates: Array<ArchivedSession & { bytes: number }> = [];
  let total = 0;
  for (const s of await listArchivedSessions(options.mediaDir)) {
    const bytes = maxBytes > 0 ? await folderBytes(s.dir) : 0;
    const live = recording.has(`${s.stream}/${s.session}`);
    const info = live ? null : await readSessionInfo(s.dir);
    const endedAt = info?.ended ? Date.parse(info.ended) : NaN;
    if (!live && maxAgeHours > 0 && Number.isFinite(endedAt) && now - endedAt > maxAgeHours * 3_600_000) {
      await rm(s.dir, { recursive: true, force: true });
      deleted.push(s);
      options.onDeleted?.('age');
      logger.info({ stream: s.stream, session: s.session, ended: info?.ended }, 'recording deleted: older than ARCHIVE_MAX_AGE_HOURS');
      continue;
    }
    total += bytes;
    // Only finished recordings may go for space (a session.json with an end time).
    if (!live && Number.isFinite(endedAt)) candidates.push({ ...s, bytes });
  }
  if (maxBytes > 0) {
    for (const s of candidates) {
      if (total <= maxBytes) break;
      await rm(s.dir, { recursive: true, force: true });
      total -= s.bytes;
      deleted.push(s);
      options.onDeleted?.('size');
      logger.info({ stream: s.stream, session: s.session, bytes: s.bytes }, 'recording deleted: archive larger than ARCHIVE_MAX_GB');
    }
  }
  return deleted;
}
