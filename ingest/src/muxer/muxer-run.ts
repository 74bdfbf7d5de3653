/**
 * One ffmpeg process remuxing (or, with a quality ladder, transcoding) one publisher's FLV, fed on
 * stdin by the in-process tap, into fragmented MP4 on one pipe per rendition. Each output's byte
 * stream is read as it comes (fmp4/), cut into parts and segments (part-cutter.ts) and handed over
 * in order through `onPart`; what is published, and where, is the playlist's job.
 *
 * Why stdin and not an RTMP pull: when the publisher leaves, ending stdin makes ffmpeg flush the
 * last fragment and exit in milliseconds, while an RTMP pull never sees end-of-stream and needs
 * -rw_timeout (~6 s late) or signals (a second one truncates output). The tap also saves a second
 * RTMP session's serialisation and ffmpeg's RTMP demuxing. Why pipes and not files: ingest learns of
 * every frame at once (parts need that), and writes every public file itself, so a full disk is an
 * error ingest sees (ffmpeg's HLS muxer silently renames truncated files into place).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from '../../../common/src/logger.ts';
import { Fmp4Reader, type InitSegment } from '../fmp4/reader.ts';
import { writeFragment } from '../fmp4/part-writer.ts';
import { FIRST_OUTPUT_FD } from './muxer-args.ts';
import { CutPlan, PartCutter, type CutPart } from './part-cutter.ts';

export interface MuxerPart {
  run: string;
  /** The output it came from: the rendition's name, or '' for a passthrough run's only output. */
  output: string;
  /** The output's init segment (ftyp+moov): the same bytes for every part of the run. */
  init: Buffer;
  part: CutPart;
  /** Wall-clock time of the part's first frame, anchored when the run's first keyframe reached ingest. */
  programDateTime: Date | null;
  /** The output's part target (seconds), as the cutter cuts to it. */
  partTarget: number | null;
}

export interface MuxerRunOptions {
  run: string;
  ffmpegPath: string;
  /** The whole ffmpeg command line after the program (muxer-args.ts). */
  args: readonly string[];
  /** Output names in pipe order ('' for passthrough, else rendition names). */
  outputs: readonly string[];
  partSeconds: number;
  segmentSeconds: number;
  /** The playlist's part target when an earlier run fixed it (every run then cuts to it). */
  partTarget?: number | null;
  logger: Logger;
  onPart: (part: MuxerPart) => void;
  /** ffmpeg exited without being asked to finish (or was killed because its output is unusable). */
  onUnexpectedExit: (code: number | null, signal: NodeJS.Signals | null) => void;
  /** ffmpeg's `-progress pipe:1` output. */
  onProgress?: (chunk: string) => void;
  /** Bytes of FLV waiting for ffmpeg before it is considered stuck. */
  maxBufferedBytes?: number;
}

const FINISH_TIMEOUT_MS = 10_000;

interface Output {
  name: string;
  reader: Fmp4Reader;
  init: InitSegment | null;
  cutter: PartCutter | null;
  ended: Promise<void>;
}

export class MuxerRun {
  private child: ChildProcess | null = null;
  private readonly outputs: Output[] = [];
  /** The first output decides where parts start; the others follow it (a quality ladder). */
  private readonly plan = new CutPlan();
  private finishing = false;
  private exited: Promise<void> = Promise.resolve();
  private readonly log: Logger;
  private readonly stderrTail: string[] = [];
  /** FLV timestamp of the first video keyframe: media time 0 of the outputs. */
  private firstKeyframeMs: number | null = null;
  /**
   * Wall clock minus FLV timestamp, the smallest seen on a video tag: tags that arrive live give
   * it (the GOP cache a restarted run gets first arrives late for its timestamps).
   */
  private clockOffsetMs = Number.POSITIVE_INFINITY;
  /** The output cannot be used (malformed fMP4): the run is being killed. */
  private abandoned = false;
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
    if (this.finishing) return; // the publisher left while we were getting ready
    const { ffmpegPath, args, outputs, onProgress } = this.options;
    const stdio: Array<'pipe' | 'ignore'> = ['pipe', onProgress ? 'pipe' : 'ignore', 'pipe', ...outputs.map(() => 'pipe' as const)];
    // detached: a Ctrl-C in the terminal must not reach ffmpeg; ingest decides when it ends.
    const child = spawn(ffmpegPath, args, { stdio, detached: true });
    this.child = child;
    if (onProgress && child.stdout) {
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => onProgress(chunk));
    }
    (child.stdin as Writable).on('error', (err) => this.log.debug({ err: err.message }, 'ffmpeg stdin closed'));
    const stderr = child.stderr as Readable;
    stderr.setEncoding('utf8');
    stderr.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) {
        if (!line.trim()) continue;
        this.stderrTail.push(line);
        if (this.stderrTail.length > 20) this.stderrTail.shift();
        this.log.debug({ ffmpeg: line }, 'ffmpeg');
      }
    });
    outputs.forEach((name, i) => this.outputs.push(this.readOutput(name, child.stdio[FIRST_OUTPUT_FD + i] as Readable, i === 0 ? 'leader' : 'follower')));
    const outputsEnded = Promise.all(this.outputs.map((o) => o.ended));
    this.exited = new Promise((resolve) => {
      let settled = false;
      const settle = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (settled) return;
        settled = true;
        // Whatever ffmpeg flushed before exiting is handed over first.
        void outputsEnded.then(() => {
          if (!this.finishing) {
            this.log.warn({ code, signal, ffmpeg: this.stderrTail.slice(-5) }, 'ffmpeg exited unexpectedly');
            this.options.onUnexpectedExit(code, signal);
          }
          resolve();
        });
      };
      child.once('exit', settle);
      // Spawn failures (ffmpeg missing) emit 'error' and maybe no 'exit'.
      child.once('error', (err) => {
        this.log.error({ err, ffmpegPath }, 'could not run ffmpeg');
        for (const output of this.outputs) output.reader.end();
        settle(null, null);
      });
    });
    this.log.info({ pid: child.pid, outputs: outputs.length }, 'ffmpeg started');
  }

  /** Feeds one FLV chunk from the tap. Returns false when ffmpeg is hopelessly behind. */
  write(flv: Buffer): boolean {
    const stdin = this.child?.stdin;
    if (!stdin || this.finishing || stdin.destroyed) return true;
    if (flv.length >= 13 && flv[0] === 9) this.noteVideoTag(flv);
    this.bytesWritten += flv.length;
    stdin.write(flv);
    return stdin.writableLength <= (this.options.maxBufferedBytes ?? 32 * 1024 * 1024);
  }

  /** Ends the input; ffmpeg flushes the last fragment and exits. Resolves when every part is handed over. */
  async finish(): Promise<void> {
    if (this.finishing) return this.exited;
    this.finishing = true;
    const child = this.child;
    if (!child) return;
    child.stdin?.end();
    const timer = setTimeout(() => {
      // Never a second SIGINT/SIGTERM (that truncates output): a stuck ffmpeg is killed outright.
      this.log.error('ffmpeg did not finish after its input ended, killing it');
      child.kill('SIGKILL');
    }, FINISH_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }

  /** Kills ffmpeg at once (used when it is stuck); media not yet read is lost. */
  kill(): void {
    this.child?.kill('SIGKILL');
  }

  private readOutput(name: string, pipe: Readable, role: 'leader' | 'follower'): Output {
    const output: Output = {
      name,
      init: null,
      cutter: null,
      ended: Promise.resolve(),
      reader: new Fmp4Reader({
        onInit: (init) => {
          if (output.init) return this.abandon(`${name || 'output'}: a second init segment`);
          output.init = init;
          output.cutter = new PartCutter({
            tracks: init.tracks,
            partSeconds: this.options.partSeconds,
            segmentSeconds: this.options.segmentSeconds,
            partTarget: this.options.partTarget,
            plan: this.options.outputs.length > 1 ? { plan: this.plan, role } : undefined,
            write: writeFragment,
            onPart: (part) => this.handOver(output, part),
          });
        },
        onSample: (sample) => output.cutter?.push(sample),
        onError: (err) => this.abandon(`${name || 'output'}: ${err.message}`),
      }),
    };
    output.ended = new Promise((resolve) => {
      pipe.on('data', (chunk: Buffer) => {
        if (!this.abandoned) output.reader.push(chunk);
      });
      pipe.once('error', () => undefined);
      pipe.once('close', () => {
        // The run's last part ends with the output: its durations are as known so far.
        if (!this.abandoned) output.cutter?.flush();
        resolve();
      });
    });
    return output;
  }

  private handOver(output: Output, part: CutPart): void {
    if (this.abandoned) return;
    this.options.onPart({
      run: this.options.run,
      output: output.name,
      init: output.init!.bytes,
      part,
      programDateTime: this.firstKeyframeMs === null ? null : new Date(this.clockOffsetMs + this.firstKeyframeMs + part.start * 1000),
      partTarget: output.cutter!.partTarget,
    });
  }

  /** FLV video tag: type(1) size(3) timestamp(3 + 1 extended) streamId(3), frame type/codec(1), AVC packet type(1). */
  private noteVideoTag(flv: Buffer): void {
    const ms = ((flv[7]! << 24) | (flv[4]! << 16) | (flv[5]! << 8) | flv[6]!) >>> 0;
    const offset = Date.now() - ms;
    if (offset < this.clockOffsetMs) this.clockOffsetMs = offset;
    if (this.firstKeyframeMs === null && flv[11]! >> 4 === 1 && flv[12] === 1) this.firstKeyframeMs = ms;
  }

  /** Kills a run whose output cannot be used; the owner sees an unexpected exit and starts another. */
  private abandon(reason: string): void {
    if (this.abandoned || this.finishing) return;
    this.abandoned = true;
    this.log.error({ reason }, 'muxer output unusable, killing ffmpeg');
    this.child?.kill('SIGKILL');
  }
}

