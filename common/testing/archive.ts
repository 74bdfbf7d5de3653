/**
 * Reading a broadcast recording (MEDIA_DIR/archive/<stream>/<session>/) from a test.
 */
import { execFile } from 'node:child_process';
import { open, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { archiveRoot, type SessionInfo } from '../src/media-layout.ts';
import { waitFor } from './processes.ts';

const run = promisify(execFile);

export interface ArchivedPlaylist {
  text: string;
  type: string | null;
  targetDuration: number;
  segments: Array<{ uri: string; duration: number; init: string; discontinuity: boolean }>;
  maps: number;
  discontinuities: number;
  ended: boolean;
  totalSeconds: number;
}

export function viewArchivePlaylist(text: string): ArchivedPlaylist {
  const segments: ArchivedPlaylist['segments'] = [];
  let duration = NaN;
  let init = '';
  let discontinuity = false;
  let maps = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-MAP:URI="')) {
      init = line.slice(16, -1);
      maps++;
    } else if (line === '#EXT-X-DISCONTINUITY') discontinuity = true;
    else if (line.startsWith('#EXTINF:')) duration = Number.parseFloat(line.slice(8));
    else if (line && !line.startsWith('#')) {
      segments.push({ uri: line, duration, init, discontinuity });
      discontinuity = false;
    }
  }
  return {
    text,
    type: /^#EXT-X-PLAYLIST-TYPE:(\w+)/m.exec(text)?.[1] ?? null,
    targetDuration: Number(/^#EXT-X-TARGETDURATION:(\d+)/m.exec(text)?.[1] ?? NaN),
    segments,
    maps,
    discontinuities: segments.filter((s) => s.discontinuity).length,
    ended: text.includes('#EXT-X-ENDLIST'),
    totalSeconds: segments.reduce((sum, s) => sum + s.duration, 0),
  };
}

/** The stream's session folders, oldest first. */
export async function archivedSessions(mediaDir: string, stream: string): Promise<string[]> {
  return (await readdir(path.join(archiveRoot(mediaDir), stream)).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
}

export async function readArchive(mediaDir: string, stream: string, session: string): Promise<{ dir: string; playlist: ArchivedPlaylist; info: SessionInfo }> {
  const dir = path.join(archiveRoot(mediaDir), stream, session);
  return {
    dir,
    playlist: viewArchivePlaylist(await readFile(path.join(dir, 'index.m3u8'), 'utf8')),
    info: JSON.parse(await readFile(path.join(dir, 'session.json'), 'utf8')) as SessionInfo,
  };
}

/**
 * Waits for the recording of a broadcast that just stopped: the stream's one session besides `known`
 * whose session.json has an end time (and, with `thumbnail`, its thumbnail). Returns its session id.
 */
export function waitForEndedRecording(mediaDir: string, stream: string, options: { known?: readonly string[]; thumbnail?: boolean } = {}): Promise<string> {
  const known = options.known ?? [];
  return waitFor('the recording to end', async () => {
    const fresh = (await archivedSessions(mediaDir, stream)).filter((s) => !known.includes(s));
    if (fresh.length !== 1) return undefined;
    const archive = await readArchive(mediaDir, stream, fresh[0]!).catch(() => null);
    return archive?.info.ended && (!options.thumbnail || archive.info.thumbnail) ? fresh[0] : undefined;
  }, 30_000, 200);
}

/** The type of the first ISO BMFF box of a file ('styp', 'moof', 'ftyp', …). */
export async function firstBox(file: string): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(8);
    await handle.read(buffer, 0, 8, 0);
    return buffer.subarray(4, 8).toString('latin1');
  } finally {
    await handle.close();
  }
}

/** ffprobe's view of init + segment (one fragmented MP4): codec names and the fragment's duration. */
export async function probeSegment(initFile: string, segmentFile: string): Promise<{ codecs: string[]; duration: number }> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name:format=duration', '-of', 'json', `concat:${initFile}|${segmentFile}`]);
  const parsed = JSON.parse(stdout) as { streams: Array<{ codec_name: string }>; format: { duration?: string } };
  return { codecs: parsed.streams.map((s) => s.codec_name).sort(), duration: Number(parsed.format.duration ?? NaN) };
}
