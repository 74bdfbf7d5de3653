import type { ServerResponse } from 'node:http';
import { decideReload, type ReloadDirectives } from './blocking-reload.ts';
import { answerInSlices, HoldQueue, type HeldTally } from './hold-queue.ts';
import { playlistAnswerStatus, playlistHeaders, writePlaylist, type PlaylistAnswer } from './playlist-answers.ts';
import type { PlaylistVersion } from './playlist-version.ts';
import { sendText } from './responses.ts';

export type BlockingDirectives = ReloadDirectives & { kind: 'block' };

interface Bucket {
  directives: BlockingDirectives;
  queue: HoldQueue;
}

/**
 * Blocking playlist reloads held on one playlist, in buckets by what they ask for (`_HLS_msn` and
 * `_HLS_part`): viewers at the live edge all ask for the same next part, so a new version is
 * decided once per bucket, not once per request.
 */
export class HeldReloads {
  private readonly buckets = new Map<string, Bucket>();
  private held = 0;

  constructor(private readonly tally: HeldTally) {}

  get size(): number {
    return this.held;
  }

  add(res: ServerResponse, directives: BlockingDirectives, deadline: number): void {
    const key = directives.part === null ? String(directives.msn) : `${directives.msn}.${directives.part}`;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { directives, queue: new HoldQueue() };
      this.buckets.set(key, bucket);
    }
    bucket.queue.add(res, deadline);
    this.change(1);
  }

  /** Answers exactly the buckets `version` satisfies (or ignores the directives of: ENDLIST). */
  wake(version: PlaylistVersion): void {
    for (const [key, bucket] of this.buckets) {
      const decision = version.media === null ? 'plain' : decideReload(version.media, bucket.directives).kind;
      if (decision === 'wait') continue;
      this.buckets.delete(key);
      // 'bad' for a request that was fine when it was held (the playlist went back): the timed-out answer.
      this.finish(bucket.queue.takeAll(), version, decision === 'ready' ? 'satisfied' : decision === 'plain' ? 'plain' : 'timeout');
    }
  }

  /** Answers those past their deadline with `current`, forgets clients that left; returns the earliest deadline left. */
  sweep(now: number, current: PlaylistVersion | null): number {
    let earliest = Infinity;
    for (const [key, bucket] of this.buckets) {
      const expired: ServerResponse[] = [];
      const swept = bucket.queue.sweep(now, (res) => expired.push(res));
      if (bucket.queue.size === 0) this.buckets.delete(key);
      this.finish({ waiting: expired, gone: swept.gone }, current, 'timeout');
      earliest = Math.min(earliest, swept.earliest);
    }
    return earliest;
  }

  /** Answers everything with `current` now (shutdown). */
  releaseAll(current: PlaylistVersion | null): void {
    for (const [key, bucket] of this.buckets) {
      this.buckets.delete(key);
      this.finish(bucket.queue.takeAll(), current, 'timeout');
    }
  }

  private finish(taken: { waiting: ServerResponse[]; gone: number }, version: PlaylistVersion | null, answer: PlaylistAnswer): void {
    const { waiting, gone } = taken;
    if (version === null) answerInSlices(waiting, (res) => sendText(res.req, res, 404, 'not found\n'));
    else {
      // One headers object for all of them.
      const headers = playlistHeaders(answer, version.body, version.targetDuration);
      const status = playlistAnswerStatus(answer);
      answerInSlices(waiting, (res) => writePlaylist(res, status, headers, version.body));
    }
    if (waiting.length) this.tally.finished[answer === 'timeout' ? 'timeout' : 'ready'].inc(waiting.length);
    if (gone) this.tally.finished.gone.inc(gone);
    this.change(-(waiting.length + gone));
  }

  private change(delta: number): void {
    this.held += delta;
    this.tally.change(delta);
  }
}
