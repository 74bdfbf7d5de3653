import type { ServerResponse } from 'node:http';
import type { Count, HeldOutcome } from './metrics.ts';

/** Where held requests of one kind are counted: how they ended (metrics), and how many are held now (gauge). */
export interface HeldTally {
  finished: Record<HeldOutcome, Count>;
  change(delta: number): void;
}

/**
 * Requests held for one thing (a playlist position, a hinted part), in arrival order. A held
 * request costs two array slots: its response and its deadline. No timer, no closure and no
 * 'close' listener per request: the owner sweeps deadlines with one timer, and a client that has
 * gone is noticed (res.destroyed) when the queue is swept or answered.
 */
export class HoldQueue {
  private responses: ServerResponse[] = [];
  private deadlines: number[] = [];

  get size(): number {
    return this.responses.length;
  }

  add(res: ServerResponse, deadline: number): void {
    this.responses.push(res);
    this.deadlines.push(deadline);
  }

  /** Empties the queue; returns the responses whose clients are still there and how many had gone. */
  takeAll(): { waiting: ServerResponse[]; gone: number } {
    const all = this.responses;
    this.responses = [];
    this.deadlines = [];
    const waiting = all.filter((res) => !res.destroyed);
    return { waiting, gone: all.length - waiting.length };
  }

  /**
   * Takes out the requests past their deadline (handed to `expired`) and those whose client has
   * gone (counted); returns the earliest deadline left (Infinity when empty) and the gone count.
   */
  sweep(now: number, expired: (res: ServerResponse) => void): { earliest: number; gone: number } {
    let kept = 0;
    let gone = 0;
    let earliest = Infinity;
    const { responses, deadlines } = this;
    for (let i = 0; i < responses.length; i++) {
      const res = responses[i]!;
      const deadline = deadlines[i]!;
      if (res.destroyed) gone++;
      else if (deadline <= now) expired(res);
      else {
        responses[kept] = res;
        deadlines[kept] = deadline;
        kept++;
        if (deadline < earliest) earliest = deadline;
      }
    }
    responses.length = kept;
    deadlines.length = kept;
    return { earliest, gone };
  }
}

/** Responses answered per turn of the event loop when many are woken at once. */
export const WAKE_SLICE = 200;

/**
 * Answers `responses` in slices of WAKE_SLICE with a turn of the event loop between them: a wake
 * of thousands (~0.1 ms each, plus their access records) must not stall every other request
 * for a fraction of a second. Arrival order is kept; a client that left meanwhile is skipped.
 */
export function answerInSlices(responses: readonly ServerResponse[], answer: (res: ServerResponse) => void): void {
  let next = 0;
  const slice = (): void => {
    const end = Math.min(responses.length, next + WAKE_SLICE);
    for (; next < end; next++) {
      const res = responses[next]!;
      // headersSent: answered some other way (it never should be), and a second answer would throw.
      if (!res.destroyed && !res.headersSent) answer(res);
    }
    if (next < responses.length) setImmediate(slice);
  };
  slice();
}
