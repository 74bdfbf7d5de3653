/**
 * One ffmpeg process remuxing one publisher's FLV (fed on stdin by the in-process tap) to fMP4
 * HLS in a private work folder. Finished segments are handed over in order through `onSegment`;
 * the public playlist is someone else's job.
 *
 * Why stdin and not an RTMP pull: when the publisher leaves, ending stdin makes ffmpeg flush
 * the last segment and exit in milliseconds, while an RTMP pull never sees end-of-stream and
 * needs -rw_timeout (~6 s late) or signals (a second one truncates output). The tap also
 * saves a second RTMP session's serialisation and ffmpeg's RTMP demuxing. See README "Ingest".
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from '../../../common/src/logger.ts';
import { checkFmp4 } from './fmp4-check.ts';
import { parseMediaPlaylist } from './media-playlist.ts';

export interface MuxerSegment {
  run: string;
  index: number;
  /** File name, identical in the work folder and once published. */
  name: string;
  workPath: string;
  duration: number;
  initName: string;
  initWorkPath: string;
  /** Wall-clock time of the segment's first frame, measured when it reached ingest. */
  startedAt: Date | null;
  /** Segments before this one were lost (not written completely, or never listed): a timeline gap. */
  afterGap: boolean;
}

/** Output ffmpeg failed to write (it does not say so itself; see fmp4-check.ts). */
export type MuxerOutputProblem = { file: 'segment' | 'init' | 'muxer-playlist'; name: string; problem: string };

export interface MuxerRunOptions {
  run: string;
  workDir: string;
  ffmpegPath: string;
  segmentSeconds: number;
  logger: Logger;
  onSegment: (segment: MuxerSegment) => void;
  /** ffmpeg exited without being asked to finish (or was killed because its output is unusable). */
  onUnexpectedExit: (code: number | null, signal: NodeJS.Signals | null) => void;
  /** A file ffmpeg wrote is incomplete (typically: the media disk is full). */
  onOutputProblem?: (problem: MuxerOutputProblem) => void;
  /** Bytes of FLV waiting for ffmpeg before it is considered stuck. */
  maxBufferedBytes?: number;
}

const PLAYLIST = 'ffmpeg.m3u8';
const FINISH_TIMEOUT_MS = 10_000;

export function muxerArgs(run: string, workDir: string, segmentSeconds: number): string[] {
  return [
    '-hide_banner', '-nostats', '-loglevel', 'warning',
    // The tap starts with the sequence headers, so little probing is needed.
    '-probesize', '262144', '-analyzeduration', '1000000',
    '-f', 'flv', '-i', 'pipe:0',
    '-map', '0:v?', '-map', '0:a?', '-c', 'copy',
    '-f', 'hls',
    '-hls_time', String(segmentSeconds),
    '-hls_list_size', '10',
    '-hls_segment_type', 'fmp4',
    '-hls_fmp4_init_filename', `${run}-init.mp4`,
    '-hls_segment_filename', path.join(workDir, `${run}-%d.m4s`),
    // temp_file: segment and playlist appear by rename, so a listed segment is complete.
    '-hls_flags', 'temp_file+omit_endlist+independent_segments',
    path.join(workDir, PLAYLIST),
  ];
}

export class MuxerRun {
  private child: ChildProcessByStdio<Writable, null, Readable> | null = null;
  private watcher: FSWatcher | null = null;
  private poller: NodeJS.Timeout | null = null;
  private nextIndex = 0;
  private scanning: Promise<void> = Promise.resolve();
  private scanQueued = false;
  private finishing = false;
  private exited: Promise<void> = Promise.resolve();
  private readonly log: Logger;
  private readonly stderrTail: string[] = [];
  /** Wall clock and FLV timestamp of the first video keyframe: anchors program date times. */
  private anchor: { wallMs: number; flvMs: number } | null = null;
  private elapsedSeconds = 0;
  private initChecked = false;
  /** The run's output cannot be played (broken init): it is being killed, nothing more is handed over. */
  private abandoned = false;
  private gapPending = false;
  private playlistBroken = false;
  bytesWritten = 0;

  constructor(private readonly options: MuxerRunOptions) {
    this.log = options.logger.child({ component: 'muxer', run: options.run });
  }

  get run(): string {
    return this.options.run;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  async start(): Promise<void> {
    const { workDir, run, ffmpegPath, segmentSeconds } = this.options;
    await mkdir(workDir, { recursive: true });
    if (this.finishing) return; // the publisher left while we were getting ready
    // detached: a Ctrl-C in the terminal must not reach ffmpeg; ingest decides when it ends.
    const child = spawn(ffmpegPath, muxerArgs(run, workDir, segmentSeconds), { stdio: ['pipe', 'ignore', 'pipe'], detached: true });
    this.child = child;
    child.stdin.on('error', (err) => this.log.debug({ err: err.message }, 'ffmpeg stdin closed'));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) {
        if (!line.trim()) continue;
        this.stderrTail.push(line);
        if (this.stderrTail.length > 20) this.stderrTail.shift();
        this.log.debug({ ffmpeg: line }, 'ffmpeg');
      }
    });
    this.exited = new Promise((resolve) => {
      let settled = false;
      const settle = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (settled) return;
        settled = true;
        this.stopWatching();
        if (!this.finishing) {
          this.log.warn({ code, signal, ffmpeg: this.stderrTail.slice(-5) }, 'ffmpeg exited unexpectedly');
          void this.scan().finally(() => this.options.onUnexpectedExit(code, signal));
        }
        resolve();
      };
      child.once('exit', settle);
      // Spawn failures (ffmpeg missing) emit 'error' and maybe no 'exit'.
      child.once('error', (err) => {
        this.log.error({ err, ffmpegPath }, 'could not run ffmpeg');
        settle(null, null);
      });
    });
    this.watcher = watch(workDir, (_event, file) => {
      if (file === PLAYLIST) this.requestScan();
    });
    this.watcher.on('error', () => undefined);
    // inotify is the fast path; the poll covers file systems where it is unreliable.
    this.poller = setInterval(() => this.requestScan(), 500);
    this.log.info({ pid: child.pid }, 'ffmpeg started');
  }

  /** Feeds one FLV chunk from the tap. Returns false when ffmpeg is hopelessly behind. */
  write(flv: Buffer): boolean {
    const child = this.child;
    if (!child || this.finishing || child.stdin.destroyed) return true;
    if (this.anchor === null) this.noteKeyframe(flv);
    this.bytesWritten += flv.length;
    child.stdin.write(flv);
    return child.stdin.writableLength <= (this.options.maxBufferedBytes ?? 32 * 1024 * 1024);
  }

  /** Ends the input; ffmpeg flushes the last segment and exits. Resolves when all segments are handed over. */
  async finish(): Promise<void> {
    if (this.finishing) return this.exited;
    this.finishing = true;
    const child = this.child;
    if (!child) return;
    child.stdin.end();
    const timer = setTimeout(() => {
      // Never a second SIGINT/SIGTERM (that truncates output): a stuck ffmpeg is killed outright.
      this.log.error('ffmpeg did not finish after its input ended, killing it');
      child.kill('SIGKILL');
    }, FINISH_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
    await this.scan();
  }

  /** Kills ffmpeg at once (used when it is stuck); segments not yet written are lost. */
  kill(): void {
    this.child?.kill('SIGKILL');
  }

  async removeWorkDir(): Promise<void> {
    await rm(this.options.workDir, { recursive: true, force: true });
  }

  private noteKeyframe(flv: Buffer): void {
    // FLV tag: type(1) size(3) timestamp(3+1) streamId(3) then for video: frame/codec(1) AVC packet type(1).
    if (flv.length < 13 || flv[0] !== 9) return;
    const frameType = flv[11]! >> 4;
    const avcPacketType = flv[12]!;
    if (frameType !== 1 || avcPacketType !== 1) return;
    const flvMs = ((flv[7]! << 24) | (flv[4]! << 16) | (flv[5]! << 8) | flv[6]!) >>> 0;
    this.anchor = { wallMs: Date.now(), flvMs };
  }

  private requestScan(): void {
    if (this.scanQueued) return;
    this.scanQueued = true;
    this.scanning = this.scanning.then(async () => {
      this.scanQueued = false;
      await this.scanOnce();
    });
  }

  private scan(): Promise<void> {
    this.requestScan();
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    if (this.abandoned) return;
    let text: string;
    try {
      text = await readFile(path.join(this.options.workDir, PLAYLIST), 'utf8');
    } catch {
      return; // not written yet
    }
    // ffmpeg writes its playlist to a temp name and renames it: an empty one is a failed write.
    const broken = !text.startsWith('#EXTM3U');
    if (broken && !this.playlistBroken) this.options.onOutputProblem?.({ file: 'muxer-playlist', name: PLAYLIST, problem: text ? 'not a playlist' : 'empty file' });
    this.playlistBroken = broken;
    const playlist = parseMediaPlaylist(text);
    const { run, workDir } = this.options;
    const prefix = `${run}-`;
    for (const entry of playlist.segments) {
      const name = path.basename(entry.uri);
      if (!name.startsWith(prefix) || !name.endsWith('.m4s')) continue;
      const index = Number.parseInt(name.slice(prefix.length, -4), 10);
      if (!Number.isInteger(index) || index < this.nextIndex) continue;
      if (index > this.nextIndex) {
        this.log.warn({ expected: this.nextIndex, got: index }, 'segments skipped by the muxer');
        this.gapPending = true;
      }
      this.nextIndex = index + 1;
      const startedAt = this.anchor ? new Date(this.anchor.wallMs + this.elapsedSeconds * 1000) : null;
      this.elapsedSeconds += entry.duration;
      const initName = `${run}-init.mp4`;
      const initWorkPath = path.join(workDir, initName);
      if (!this.initChecked) {
        const init = await checkFmp4(initWorkPath, 'init');
        if (!init.complete) {
          // Every segment of this run needs this init: the run is useless, a new one writes a new init.
          this.options.onOutputProblem?.({ file: 'init', name: initName, problem: init.problem });
          this.abandon(`init segment incomplete (${init.problem})`);
          return;
        }
        this.initChecked = true;
      }
      const workPath = path.join(workDir, name);
      const check = await checkFmp4(workPath, 'segment');
      if (!check.complete) {
        this.options.onOutputProblem?.({ file: 'segment', name, problem: check.problem });
        this.gapPending = true;
        await rm(workPath, { force: true }); // frees what little it holds
        continue;
      }
      const afterGap = this.gapPending;
      this.gapPending = false;
      this.options.onSegment({ run, index, name, workPath, duration: entry.duration, initName, initWorkPath, startedAt, afterGap });
    }
  }

  /** Kills a run whose output cannot be used; the owner sees an unexpected exit and starts another. */
  private abandon(reason: string): void {
    if (this.abandoned || this.finishing) return;
    this.abandoned = true;
    this.log.error({ reason }, 'muxer output unusable, killing ffmpeg');
    this.child?.kill('SIGKILL');
  }

  private stopWatching(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.poller) clearInterval(this.poller);
    this.poller = null;
  }
}
