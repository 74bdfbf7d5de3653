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
  /** The rendition it belongs to (a ladder run writes several); null or absent for a single-output run. */
  rendition?: string | null;
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
  /**
   * Several outputs (the quality ladder): one folder per rendition under workDir, each with its
   * own PLAYLIST. Absent: one output straight in workDir (passthrough).
   */
  renditions?: readonly string[];
  /** The whole ffmpeg command line (after the program); default muxerArgs(). */
  args?: readonly string[];
  /** ffmpeg's `-progress pipe:1` output, when the args ask for it. */
  onProgress?: (chunk: string) => void;
}

/** Where one output of a run writes, and how far its hand-over has got. */
interface MuxerOutput {
  rendition: string | null;
  dir: string;
  nextIndex: number;
  elapsedSeconds: number;
  initChecked: boolean;
  gapPending: boolean;
  playlistBroken: boolean;
}

export const MUXER_PLAYLIST = 'ffmpeg.m3u8';
const PLAYLIST = MUXER_PLAYLIST;
const FINISH_TIMEOUT_MS = 10_000;

/** ffmpeg's input options: FLV on stdin. */
export function muxerInputArgs(): string[] {
  return [
    '-hide_banner', '-nostats', '-loglevel', 'warning',
    // The tap starts with the sequence headers, so little probing is needed.
    '-probesize', '262144', '-analyzeduration', '1000000',
    '-f', 'flv', '-i', 'pipe:0',
  ];
}

export function muxerArgs(run: string, workDir: string, segmentSeconds: number): string[] {
  return [...muxerInputArgs(), '-map', '0:v?', '-map', '0:a?', '-c', 'copy', ...hlsOutputArgs(run, workDir, segmentSeconds)];
}

/**
 * The HLS muxer options of one output writing into `dir`. Every output of a ladder run gets the
 * same ones (the same -hls_time on the same keyframe times): their segments are cut alike.
 */
export function hlsOutputArgs(run: string, dir: string, segmentSeconds: number): string[] {
  return [
    '-f', 'hls',
    '-hls_time', String(segmentSeconds),
    '-hls_list_size', '10',
    '-hls_segment_type', 'fmp4',
    '-hls_fmp4_init_filename', `${run}-init.mp4`,
    '-hls_segment_filename', path.join(dir, `${run}-%d.m4s`),
    // temp_file: segment and playlist appear by rename, so a listed segment is complete.
    '-hls_flags', 'temp_file+omit_endlist+independent_segments',
    path.join(dir, PLAYLIST),
  ];
}

export class MuxerRun {
  private child: ChildProcessByStdio<Writable, null, Readable> | null = null;
  private poller: NodeJS.Timeout | null = null;
  private readonly outputs: MuxerOutput[];
  private readonly watchers: FSWatcher[] = [];
  private scanning: Promise<void> = Promise.resolve();
  private scanQueued = false;
  private finishing = false;
  private exited: Promise<void> = Promise.resolve();
  private readonly log: Logger;
  private readonly stderrTail: string[] = [];
  /** Wall clock and FLV timestamp of the first video keyframe: anchors program date times. */
  private anchor: { wallMs: number; flvMs: number } | null = null;
  /** The run's output cannot be played (broken init): it is being killed, nothing more is handed over. */
  private abandoned = false;
  bytesWritten = 0;

  constructor(private readonly options: MuxerRunOptions) {
    this.log = options.logger.child({ component: 'muxer', run: options.run });
    const fresh = (rendition: string | null, dir: string): MuxerOutput => ({ rendition, dir, nextIndex: 0, elapsedSeconds: 0, initChecked: false, gapPending: false, playlistBroken: false });
    this.outputs = options.renditions?.length
      ? options.renditions.map((name) => fresh(name, path.join(options.workDir, name)))
      : [fresh(null, options.workDir)];
  }

  get run(): string {
    return this.options.run;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  async start(): Promise<void> {
    const { workDir, run, ffmpegPath, segmentSeconds } = this.options;
    for (const output of this.outputs) await mkdir(output.dir, { recursive: true });
    if (this.finishing) return; // the publisher left while we were getting ready
    const args = this.options.args ?? muxerArgs(run, workDir, segmentSeconds);
    // detached: a Ctrl-C in the terminal must not reach ffmpeg; ingest decides when it ends.
    const child = spawn(ffmpegPath, args, { stdio: ['pipe', this.options.onProgress ? 'pipe' : 'ignore', 'pipe'], detached: true }) as unknown as ChildProcessByStdio<Writable, Readable | null, Readable>;
    this.child = child as ChildProcessByStdio<Writable, null, Readable>;
    const onProgress = this.options.onProgress;
    if (onProgress && child.stdout) {
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => onProgress(chunk));
    }
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
    for (const output of this.outputs) {
      const watcher = watch(output.dir, (_event, file) => {
        if (file === PLAYLIST) this.requestScan();
      });
      watcher.on('error', () => undefined);
      this.watchers.push(watcher);
    }
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
    for (const output of this.outputs) {
      if (this.abandoned) return;
      await this.scanOutput(output);
    }
  }

  private async scanOutput(output: MuxerOutput): Promise<void> {
    let text: string;
    try {
      text = await readFile(path.join(output.dir, PLAYLIST), 'utf8');
    } catch {
      return; // not written yet
    }
    // ffmpeg writes its playlist to a temp name and renames it: an empty one is a failed write.
    const broken = !text.startsWith('#EXTM3U');
    const playlistName = output.rendition ? `${output.rendition}/${PLAYLIST}` : PLAYLIST;
    if (broken && !output.playlistBroken) this.options.onOutputProblem?.({ file: 'muxer-playlist', name: playlistName, problem: text ? 'not a playlist' : 'empty file' });
    output.playlistBroken = broken;
    const playlist = parseMediaPlaylist(text);
    const { run } = this.options;
    const workDir = output.dir;
    const prefix = `${run}-`;
    for (const entry of playlist.segments) {
      const name = path.basename(entry.uri);
      if (!name.startsWith(prefix) || !name.endsWith('.m4s')) continue;
      const index = Number.parseInt(name.slice(prefix.length, -4), 10);
      if (!Number.isInteger(index) || index < output.nextIndex) continue;
      if (index > output.nextIndex) {
        this.log.warn({ expected: output.nextIndex, got: index, rendition: output.rendition }, 'segments skipped by the muxer');
        output.gapPending = true;
      }
      output.nextIndex = index + 1;
      const startedAt = this.anchor ? new Date(this.anchor.wallMs + output.elapsedSeconds * 1000) : null;
      output.elapsedSeconds += entry.duration;
      const initName = `${run}-init.mp4`;
      const initWorkPath = path.join(workDir, initName);
      if (!output.initChecked) {
        const init = await checkFmp4(initWorkPath, 'init');
        if (!init.complete) {
          // Every segment of this run needs this init: the run is useless, a new one writes a new init.
          this.options.onOutputProblem?.({ file: 'init', name: initName, problem: init.problem });
          this.abandon(`init segment incomplete (${init.problem})`);
          return;
        }
        output.initChecked = true;
      }
      const workPath = path.join(workDir, name);
      const check = await checkFmp4(workPath, 'segment');
      if (!check.complete) {
        this.options.onOutputProblem?.({ file: 'segment', name, problem: check.problem });
        output.gapPending = true;
        await rm(workPath, { force: true }); // frees what little it holds
        continue;
      }
      const afterGap = output.gapPending;
      output.gapPending = false;
      this.options.onSegment({ run, index, name, workPath, duration: entry.duration, initName, initWorkPath, startedAt, afterGap, rendition: output.rendition });
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
    for (const watcher of this.watchers) watcher.close();
    this.watchers.length = 0;
    if (this.poller) clearInterval(this.poller);
    this.poller = null;
  }
}
