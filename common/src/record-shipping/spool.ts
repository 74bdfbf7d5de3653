import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.ts';

/**
 * The disk side of the record shipper: records that do not fit in memory (receiver down or slow)
 * are appended as NDJSON to segment files `seg-<12-digit sequence>.ndjson` in one folder, and read
 * back oldest first for replay.
 *
 * - Every file operation runs on one promise chain, so appends, rotation, sealing and reading a
 *   segment for replay never interleave; callers never wait on it (append() is synchronous).
 * - Only sealed segments are replayed (the one being written is sealed first), so a file being
 *   read never grows.
 * - A segment is deleted only when every one of its records was settled (acknowledged by the
 *   receiver, or unreadable), so a crash during replay replays it again (duplicates, never loss;
 *   the stores deduplicate by record_id).
 * - Bounded: beyond `maxBytes` the oldest segments are deleted and their records counted as dropped.
 * - No fsync per write (the OS page cache survives a process crash); close() fsyncs once.
 * - One process per folder, enforced by a `.lock` file holding the owner's PID: a second process
 *   replaying (and deleting) files another one is still appending to would lose records.
 */

export type SpoolDropReason = 'spool_full' | 'spool_write_error' | 'spool_unavailable';

export interface SpoolOptions {
  dir: string;
  /** A segment is sealed and a new one started before it would grow past this. */
  segmentBytes: number;
  /** Disk cap; segmentBytes is limited to a quarter of it so the cap is kept to within one segment. */
  maxBytes: number;
  logger: Logger;
  /** Records written to disk (the spilled counter). */
  onWritten(count: number): void;
  onDropped(count: number, reason: SpoolDropReason): void;
}

type SegmentState = 'active' | 'sealed' | 'replaying' | 'dropped' | 'deleted';

export class SpoolSegment {
  bytes = 0;
  /** Lines in the file, as far as known (exact once read for replay). */
  records = 0;
  /** Lines handed to memory for replay. */
  loaded = 0;
  /** Of those, acknowledged or discarded as unreadable. */
  settled = 0;
  state: SegmentState = 'sealed';
  constructor(readonly path: string) {}

  /** Still on disk: its records in memory need not be written again. */
  get live(): boolean {
    return this.state !== 'dropped' && this.state !== 'deleted';
  }
}

const SEGMENT_NAME = /^seg-(\d{12})\.ndjson$/;
const LOCK_FILE = '.lock';

export class Spool {
  readonly dir: string;
  private readonly segmentBytes: number;
  private readonly maxBytes: number;
  /** Live segments, oldest first. */
  private readonly segments: SpoolSegment[] = [];
  private active: { segment: SpoolSegment; handle: FileHandle } | null = null;
  private nextSeq = 0;
  private chain: Promise<void>;
  private buffer: string[] = [];
  private writing = 0;
  private drainQueued = false;
  private available = true;
  private totalBytes = 0;
  private onDisk = 0;
  private writeFailing = false;

  constructor(private readonly options: SpoolOptions) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes;
    this.segmentBytes = Math.max(1024, Math.min(options.segmentBytes, Math.floor(options.maxBytes / 4)));
    this.chain = this.scan().catch((err: unknown) => {
      this.available = false;
      options.logger.error({ err, dir: this.dir }, 'record spool unavailable: records that do not fit in memory will be dropped');
    });
  }

  /** Resolves once the folder was scanned (files left by a previous run are counted). */
  ready(): Promise<void> {
    return this.chain;
  }

  /** Records on disk not yet acknowledged (including ones loaded for replay). */
  get records(): number {
    return this.onDisk;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** Lines accepted by append() and not yet written. */
  get buffered(): number {
    return this.buffer.length + this.writing;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  /** Something on disk (or about to be) that replay has not picked up yet. */
  get hasUnreplayed(): boolean {
    return this.buffered > 0 || this.segments.some((s) => s.state === 'sealed' || (s.state === 'active' && s.records > 0));
  }

  /** Queues NDJSON lines (without newline) for writing; never blocks, never throws. */
  append(lines: readonly string[]): void {
    if (lines.length === 0) return;
    if (!this.available) {
      this.options.onDropped(lines.length, 'spool_unavailable');
      return;
    }
    for (const line of lines) this.buffer.push(line);
    if (this.drainQueued) return;
    this.drainQueued = true;
    void this.enqueue(async () => {
      this.drainQueued = false;
      await this.writeBuffered();
    });
  }

  /** Resolves when everything appended so far is written (or dropped). */
  flush(): Promise<void> {
    return this.enqueue(async () => this.writeBuffered());
  }

  /**
   * The oldest segment not yet being replayed, with its lines; the segment being written is sealed
   * first when it is the only one. null when the spool is empty.
   */
  nextReplaySegment(): Promise<{ segment: SpoolSegment; lines: string[] } | null> {
    return this.enqueue(async () => {
      for (;;) {
        let segment = this.segments.find((s) => s.state === 'sealed');
        if (!segment && this.active && this.active.segment.records > 0) {
          await this.sealActive();
          segment = this.segments.find((s) => s.state === 'sealed');
        }
        if (!segment) return null;
        let text: string;
        try {
          text = await readFile(segment.path, 'utf8');
        } catch (err) {
          // Removed or unreadable behind our back: its records cannot be replayed.
          this.options.logger.error({ err, file: segment.path }, 'cannot read a record spool file; its records are lost');
          this.dropSegment(segment, 'spool_unavailable');
          continue;
        }
        const lines = text.split('\n');
        if (lines[lines.length - 1] === '') lines.pop();
        // The file is authoritative (a crash may have left a torn last line, counted here as a record).
        this.onDisk += lines.length - segment.records;
        segment.records = lines.length;
        segment.state = 'replaying';
        segment.loaded = 0;
        segment.settled = 0;
        if (lines.length === 0) {
          this.maybeDelete(segment);
          continue;
        }
        return { segment, lines };
      }
    });
  }

  /** `count` records of a replaying segment were acknowledged or discarded. */
  settle(segment: SpoolSegment, count: number): void {
    if (!segment.live) return;
    segment.settled += count;
    this.onDisk -= count;
    this.maybeDelete(segment);
  }

  /** Writes what is buffered, fsyncs and closes the segment being written. */
  close(): Promise<void> {
    return this.enqueue(async () => {
      await this.writeBuffered();
      if (this.active) {
        await this.active.handle.sync().catch(() => {});
        await this.sealActive();
      }
      if (this.available) await unlink(path.join(this.dir, LOCK_FILE)).catch(() => {});
    });
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const result = this.chain.then(op);
    this.chain = result.then(
      () => {},
      (err: unknown) => this.options.logger.error({ err }, 'record spool operation failed'),
    );
    return result;
  }

  private async scan(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await this.lock();
    const names = (await readdir(this.dir)).filter((name) => SEGMENT_NAME.test(name)).sort();
    for (const name of names) {
      const seq = Number(SEGMENT_NAME.exec(name)![1]);
      this.nextSeq = Math.max(this.nextSeq, seq + 1);
      const file = path.join(this.dir, name);
      const { size } = await stat(file);
      if (size === 0) {
        await unlink(file).catch(() => {});
        continue;
      }
      const segment = new SpoolSegment(file);
      segment.bytes = size;
      segment.records = await countLines(file);
      this.segments.push(segment);
      this.totalBytes += size;
      this.onDisk += segment.records;
    }
    // A smaller cap than the previous run's: keep the newest.
    this.makeRoom(0);
  }

  /** Takes the folder's lock, or throws when a live process holds it. */
  private async lock(): Promise<void> {
    const file = path.join(this.dir, LOCK_FILE);
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    // Our own PID: a previous incarnation (a restarted container is PID 1 again).
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
      throw new Error(`spool folder ${this.dir} is in use by process ${owner}; give each process its own SPOOL_DIR (or INSTANCE)`);
    }
    await writeFile(file, `${process.pid}\n`);
  }

  private async writeBuffered(): Promise<void> {
    while (this.buffer.length > 0) {
      const lines = this.buffer;
      this.buffer = [];
      this.writing = lines.length;
      try {
        if (this.available) await this.writeLines(lines);
        else this.options.onDropped(lines.length, 'spool_unavailable');
      } finally {
        this.writing = 0;
      }
    }
  }

  /** Splits lines into chunks that respect the segment size, rotating between them. */
  private async writeLines(lines: string[]): Promise<void> {
    let chunk: string[] = [];
    let chunkBytes = 0;
    for (const line of lines) {
      const size = Buffer.byteLength(line) + 1;
      const activeBytes = this.active?.segment.bytes ?? 0;
      if (activeBytes + chunkBytes > 0 && activeBytes + chunkBytes + size > this.segmentBytes) {
        if (chunk.length > 0) await this.writeChunk(chunk, chunkBytes);
        chunk = [];
        chunkBytes = 0;
        await this.sealActive();
      }
      chunk.push(line);
      chunkBytes += size;
    }
    if (chunk.length > 0) await this.writeChunk(chunk, chunkBytes);
  }

  private async writeChunk(lines: string[], bytes: number): Promise<void> {
    this.makeRoom(bytes);
    if (this.totalBytes + bytes > this.maxBytes) {
      this.options.onDropped(lines.length, 'spool_full');
      return;
    }
    try {
      const active = this.active ?? (await this.openActive());
      await active.handle.appendFile(`${lines.join('\n')}\n`);
      active.segment.bytes += bytes;
      active.segment.records += lines.length;
      this.totalBytes += bytes;
      this.onDisk += lines.length;
      this.options.onWritten(lines.length);
      if (this.writeFailing) this.options.logger.info({ dir: this.dir }, 'record spool writable again');
      this.writeFailing = false;
    } catch (err) {
      if (!this.writeFailing) this.options.logger.error({ err, dir: this.dir }, 'cannot write to the record spool; records are being dropped');
      this.writeFailing = true;
      this.options.onDropped(lines.length, 'spool_write_error');
      // A partial write may have left a torn line: start a fresh file (the torn line is counted at replay).
      await this.sealActive().catch(() => {});
    }
  }

  private async openActive(): Promise<{ segment: SpoolSegment; handle: FileHandle }> {
    const file = path.join(this.dir, `seg-${String(this.nextSeq++).padStart(12, '0')}.ndjson`);
    const handle = await open(file, 'a');
    const segment = new SpoolSegment(file);
    segment.state = 'active';
    this.segments.push(segment);
    this.active = { segment, handle };
    return this.active;
  }

  private async sealActive(): Promise<void> {
    const active = this.active;
    if (!active) return;
    this.active = null;
    await active.handle.close().catch(() => {});
    const { segment } = active;
    if (segment.state === 'active') segment.state = 'sealed';
    if (segment.records === 0 && segment.live) {
      this.removeSegment(segment, 'deleted');
      await unlink(segment.path).catch(() => {});
    }
  }

  /** Deletes the oldest segments until `bytes` more fit under the cap (never the one being written). */
  private makeRoom(bytes: number): void {
    while (this.totalBytes + bytes > this.maxBytes) {
      const victim = this.segments.find((s) => s.state === 'sealed' || s.state === 'replaying');
      if (!victim) return;
      this.dropSegment(victim, 'spool_full');
    }
  }

  private dropSegment(segment: SpoolSegment, reason: SpoolDropReason): void {
    // Records of a replaying segment already loaded stay in memory: they are delivered (or
    // spilled again on shutdown), so only the ones never loaded are lost.
    const lost = segment.state === 'replaying' ? segment.records - segment.loaded : segment.records - segment.settled;
    this.removeSegment(segment, 'dropped');
    if (lost > 0) this.options.onDropped(lost, reason);
    this.options.logger.warn({ file: segment.path, records: lost, reason, capBytes: this.maxBytes }, 'record spool file dropped');
    void unlink(segment.path).catch(() => {});
  }

  private maybeDelete(segment: SpoolSegment): void {
    if (segment.state !== 'replaying' || segment.settled < segment.records) return;
    this.removeSegment(segment, 'deleted');
    void unlink(segment.path).catch((err: unknown) => this.options.logger.warn({ err, file: segment.path }, 'cannot delete a replayed spool file'));
  }

  private removeSegment(segment: SpoolSegment, state: 'dropped' | 'deleted'): void {
    const index = this.segments.indexOf(segment);
    if (index !== -1) this.segments.splice(index, 1);
    this.totalBytes -= segment.bytes;
    this.onDisk -= segment.records - segment.settled;
    segment.state = state;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Lines in a file (a last line without newline counts), streamed so any size works. */
async function countLines(file: string): Promise<number> {
  let lines = 0;
  let last = 0x0a;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) lines++;
    if (chunk.length > 0) last = chunk[chunk.length - 1]!;
  }
  return last === 0x0a ? lines : lines + 1;
}
