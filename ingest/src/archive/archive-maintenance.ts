/**
 * Housekeeping of MEDIA_DIR/archive: closing recordings a crash left open, and retention.
 * Both only touch sessions that are not being recorded now; retention also keeps recordings that
 * are being watched (README "Recordings": retention).
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../../common/src/atomic-file.ts';
import type { Logger } from '../../../common/src/logger.ts';
import { archiveRoot, isSessionId, PUBLIC_PLAYLIST, SESSION_FILE, type SessionInfo } from '../../../common/src/media-layout.ts';
import { isStreamName } from '../../../common/src/stream-name.ts';
import type { DeferReason, RecordingWatchers, WatchedRecording } from './recording-watchers.ts';

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
  /**
   * Who watches recordings (monitoring, recording-watchers.ts): asked once per round, and only when
   * something is due. A watched recording is kept; when the answer is not known, nothing is deleted
   * this round. Absent or null = no watch check (ARCHIVE_WATCH_CHECK=off): age and size decide alone.
   */
  watchers?: Pick<RecordingWatchers, 'check'> | null;
  logger: Logger;
  onDeleted?: (reason: RetentionReason) => void;
  /** A recording due for deletion (by `reason`) that was kept because it is being watched. */
  onKept?: (reason: RetentionReason) => void;
  /** A round in which something was due but nothing was deleted: monitoring could not answer. */
  onDeferred?: (reason: DeferReason) => void;
  now?: () => number;
}

export type RetentionReason = 'age' | 'size';

interface EndedRecording extends ArchivedSession {
  bytes: number;
  ended: string;
  endedAt: number;
}

/**
 * One retention pass over ended recordings (recordings in progress are never touched):
 * - older than maxAgeHours (by end time): deleted;
 * - then, while the archive exceeds maxBytes, the oldest remaining ones: deleted;
 * - except those being watched (opts.watchers): kept, logged, counted; a later round deletes them
 *   once nobody has requested their files for the watch window. Under the size cap the next
 *   oldest unwatched recording goes instead, so the cap still holds.
 * - If watchers are configured but cannot answer (monitoring down, an error, no token), the round
 *   deletes nothing (warn log, onDeferred): a replay must never be deleted mid-watch on a guess.
 * Sizes count each file once per archive (a segment still in the live window shares its blocks).
 */
export async function applyRetention(options: RetentionOptions): Promise<ArchivedSession[]> {
  const { maxAgeHours, maxBytes, logger } = options;
  if (maxAgeHours <= 0 && maxBytes <= 0) return [];
  const now = options.now?.() ?? Date.now();
  const recording = options.recording();
  const aged: EndedRecording[] = [];
  const ended: EndedRecording[] = [];
  let total = 0;
  for (const s of await listArchivedSessions(options.mediaDir)) {
    const bytes = maxBytes > 0 ? await folderBytes(s.dir) : 0;
    total += bytes;
    if (recording.has(`${s.stream}/${s.session}`)) continue;
    // Only finished recordings may go (a session.json with an end time).
    const info = await readSessionInfo(s.dir);
    const endedAt = info?.ended ? Date.parse(info.ended) : NaN;
    if (!Number.isFinite(endedAt)) continue;
    const entry = { ...s, bytes, ended: info!.ended!, endedAt };
    if (maxAgeHours > 0 && now - endedAt > maxAgeHours * 3_600_000) aged.push(entry);
    else ended.push(entry);
  }
  const agedBytes = aged.reduce((sum, r) => sum + r.bytes, 0);
  const sizeDue = maxBytes > 0 && total - agedBytes > maxBytes && ended.length > 0;
  if (aged.length === 0 && !sizeDue) return [];

  // Something is due: who is watching? Asked once, just before deleting.
  let watched = new Map<string, WatchedRecording>();
  let windowSeconds: number | null = null;
  if (options.watchers) {
    const check = await options.watchers.check();
    if (!check.ok) {
      options.onDeferred?.(check.reason);
      logger.warn(
        { reason: check.reason, detail: check.detail, dueByAge: aged.length, overSizeCap: sizeDue, archiveBytes: total },
        'recording retention deferred: monitoring cannot say who is watching, so nothing is deleted this round',
      );
      return [];
    }
    watched = check.watched;
    windowSeconds = check.windowSeconds;
  }
  const keep = (r: EndedRecording, reason: RetentionReason): boolean => {
    const viewers = watched.get(`${r.stream}/${r.session}`);
    if (!viewers) return false;
    options.onKept?.(reason);
    logger.info(
      { stream: r.stream, session: r.session, due: reason, ips: viewers.ips, sessions: viewers.sessions, lastRequestAt: viewers.lastRequestAt, windowSeconds },
      'recording kept: being watched (requested within ARCHIVE_WATCH_WINDOW_SECONDS)',
    );
    return true;
  };

  const deleted: ArchivedSession[] = [];
  const remove = async (r: EndedRecording, reason: RetentionReason): Promise<void> => {
    await rm(r.dir, { recursive: true, force: true });
    total -= r.bytes;
    deleted.push({ stream: r.stream, session: r.session, dir: r.dir });
    options.onDeleted?.(reason);
    if (reason === 'age') logger.info({ stream: r.stream, session: r.session, ended: r.ended }, 'recording deleted: older than ARCHIVE_MAX_AGE_HOURS');
    else logger.info({ stream: r.stream, session: r.session, bytes: r.bytes }, 'recording deleted: archive larger than ARCHIVE_MAX_GB');
  };
  for (const r of aged) if (!keep(r, 'age')) await remove(r, 'age');
  if (maxBytes > 0) {
    for (const r of ended) {
      if (total <= maxBytes) break;
      if (!keep(r, 'size')) await remove(r, 'size');
    }
  }
  return deleted;
}
