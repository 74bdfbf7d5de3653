// @ts-check
/**
 * A viewer's virtual playback buffer: each downloaded segment adds its duration, wall time drains
 * it, and a drained buffer is a stall that lasts until the next segment arrives. Times are
 * milliseconds on the driver's clock; the buffer level is in seconds. Plain ES2017 (k6 0.48).
 */
export class PlaybackBuffer {
  constructor() {
    /** Seconds of media buffered at `clockMs`. */
    this.level = 0;
    /** @type {number | null} */
    this.clockMs = null;
    /** @type {number | null} when playback started (the first segment arrived) */
    this.startedAtMs = null;
    /** @type {number | null} when the current stall began */
    this.stalledSinceMs = null;
    this.stalls = 0;
    this.stallSeconds = 0;
  }

  /** @returns {boolean} */
  get playing() {
    return this.startedAtMs !== null;
  }

  /** @returns {boolean} */
  get stalled() {
    return this.stalledSinceMs !== null;
  }

  /**
   * Moves the clock to `nowMs`; playback consumes the buffer meanwhile.
   * @param {number} nowMs
   * @returns {boolean} true when a stall began in this interval
   */
  advance(nowMs) {
    const previous = this.clockMs;
    this.clockMs = nowMs;
    if (previous === null || this.startedAtMs === null || this.stalledSinceMs !== null) return false;
    const elapsedSeconds = (nowMs - previous) / 1000;
    if (elapsedSeconds < this.level) {
      this.level -= elapsedSeconds;
      return false;
    }
    this.stalledSinceMs = previous + this.level * 1000;
    this.level = 0;
    this.stalls += 1;
    return true;
  }

  /**
   * A segment finished downloading at `nowMs`: `durationSeconds` more media to play.
   * @param {number} nowMs
   * @param {number} durationSeconds
   * @returns {{ started: boolean, stallStarted: boolean, stallEndedSeconds: number }}
   */
  append(nowMs, durationSeconds) {
    const stallStarted = this.advance(nowMs);
    let started = false;
    let stallEndedSeconds = 0;
    if (this.startedAtMs === null) {
      this.startedAtMs = nowMs;
      started = true;
    } else if (this.stalledSinceMs !== null) {
      stallEndedSeconds = (nowMs - this.stalledSinceMs) / 1000;
      this.stallSeconds += stallEndedSeconds;
      this.stalledSinceMs = null;
    }
    this.level += durationSeconds;
    return { started: started, stallStarted: stallStarted, stallEndedSeconds: stallEndedSeconds };
  }

  /**
   * The session ends at `nowMs`: a stall still going on counts until then.
   * @param {number} nowMs
   * @returns {{ stallStarted: boolean, stallEndedSeconds: number }}
   */
  finish(nowMs) {
    const stallStarted = this.advance(nowMs);
    let stallEndedSeconds = 0;
    if (this.stalledSinceMs !== null) {
      stallEndedSeconds = (nowMs - this.stalledSinceMs) / 1000;
      this.stallSeconds += stallEndedSeconds;
      this.stalledSinceMs = null;
    }
    return { stallStarted: stallStarted, stallEndedSeconds: stallEndedSeconds };
  }
}
