import type { ServerResponse } from 'node:http';
import path from 'node:path';
import type { Logger } from '../../common/src/logger.ts';
import { answerInSlices, HoldQueue, type HeldTally } from './hold-queue.ts';
import type { MediaRequest } from './media-path.ts';
import { versionLists, type PlaylistVersion } from './playlist-version.ts';
import { sendText } from './responses.ts';

/** How held parts are read and answered (the media handler's segment path). */
export interface PartServing {
  logger: Logger;
  /** A part's body through the segment cache (single-flight); null while it does not exist. */
  loadPart(file: string): Promise<Buffer | null>;
  /** Answers a held request now that the part exists (Range, HEAD, headers as any segment). */
  sendPart(res: ServerResponse, media: MediaRequest, body: Buffer): void;
}

interface Bucket {
  media: MediaRequest;
  queue: HoldQueue;
}

/**
 * Requests for the part a playlist's EXT-X-PRELOAD-HINT names, made before ingest has written it
 * (rfc8216bis §6.2.6: a hinted resource must be requestable): held per name until the file is
 * there. Ingest writes a part before any playlist lists it, so the file is looked for when a
 * file-system event names it, when a version lists it, and on every sweep.
 */
export class HeldParts {
  private readonly buckets = new Map<string, Bucket>();
  private held = 0;

  constructor(
    private readonly dir: string,
    private readonly serving: PartServing,
    private readonly tally: HeldTally,
  ) {}

  get size(): number {
    return this.held;
  }

  has(name: string): boolean {
    return this.buckets.has(name);
  }

  add(res: ServerResponse, media: MediaRequest, deadline: number): void {
    let bucket = this.buckets.get(media.file);
    if (bucket === undefined) {
      bucket = { media, queue: new HoldQueue() };
      this.buckets.set(media.file, bucket);
    }
    bucket.queue.add(res, deadline);
    this.change(1);
    // It may have been written between the miss and now.
    this.lookFor(media.file, false);
  }

  /** A new playlist version: serve what it lists; 404 what it neither lists nor hints any more and is not on disk (a new run, the publisher gone). */
  onVersion(version: PlaylistVersion): void {
    for (const name of this.buckets.keys()) {
      if (versionLists(version, name)) this.lookFor(name, false);
      else if (version.media?.preloadHint !== name) this.lookFor(name, true);
    }
  }

  /** A file-system event in the folder (null: some file, unnamed). */
  onFileEvent(name: string | null): void {
    if (name === null) for (const held of this.buckets.keys()) this.lookFor(held, false);
    else if (this.buckets.has(name)) this.lookFor(name, false);
  }

  /** 404s those past their deadline, forgets clients that left, looks for the rest; returns the earliest deadline left. */
  sweep(now: number): number {
    let earliest = Infinity;
    for (const [name, bucket] of this.buckets) {
      const expired: ServerResponse[] = [];
      const swept = bucket.queue.sweep(now, (res) => expired.push(res));
      if (bucket.queue.size === 0) this.buckets.delete(name);
      else this.lookFor(name, false);
      this.finish({ waiting: expired, gone: swept.gone }, null, bucket.media, 'timeout');
      earliest = Math.min(earliest, swept.earliest);
    }
    return earliest;
  }

  /** 404s everything now (shutdown). */
  releaseAll(): void {
    for (const [name, bucket] of this.buckets) {
      this.buckets.delete(name);
      this.finish(bucket.queue.takeAll(), null, bucket.media, 'timeout');
    }
  }

  /** Serves the name's held requests if the file exists; `abandonIfMissing`: 404 them if it does not. */
  private lookFor(name: string, abandonIfMissing: boolean): void {
    this.serving
      .loadPart(path.join(this.dir, name))
      .then((body) => {
        const bucket = this.buckets.get(name);
        if (bucket === undefined || (body === null && !abandonIfMissing)) return;
        this.buckets.delete(name);
        this.finish(bucket.queue.takeAll(), body, bucket.media, body === null ? 'abandoned' : 'ready');
      })
      // Held on: the next event, version or sweep looks again, the deadline ends it.
      .catch((err: unknown) => this.serving.logger.error({ err, file: name }, 'could not read a hinted part'));
  }

  private finish(taken: { waiting: ServerResponse[]; gone: number }, body: Buffer | null, media: MediaRequest, outcome: 'ready' | 'timeout' | 'abandoned'): void {
    const { waiting, gone } = taken;
    answerInSlices(waiting, (res) => {
      if (body === null) sendText(res.req, res, 404, 'not found\n');
      else this.serving.sendPart(res, media, body);
    });
    if (waiting.length) this.tally.finished[outcome].inc(waiting.length);
    if (gone) this.tally.finished.gone.inc(gone);
    this.change(-(waiting.length + gone));
  }

  private change(delta: number): void {
    this.held += delta;
    this.tally.change(delta);
  }
}
