/**
 * What the viewers of a fleet felt over one reporting window, aggregated from the viewer model's
 * observer callbacks: the same figures the k6 script reports, plus percentiles for the benchmark.
 */
import type { ErrorKind, RequestWhat, ViewerObserver } from '../lib/viewer.js';

export interface FleetWindow {
  seconds: number;
  viewers: number;
  requests: number;
  failedRequests: number;
  errors: Partial<Record<ErrorKind, number>>;
  bytes: number;
  segments: number;
  /** segment download time ÷ segment duration */
  downloadRatio: Percentiles;
  segmentMs: Percentiles;
  playlistMs: Percentiles;
  startupMs: Percentiles;
  stalls: number;
  stallSeconds: number;
  stalePlaylists: number;
}

export interface Percentiles {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { count: 0, p50: NaN, p95: NaN, p99: NaN, max: NaN };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { count: sorted.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted[sorted.length - 1]! };
}

/** One observer shared by every viewer of the fleet; `take()` returns the window and starts a new one. */
export class FleetStats implements ViewerObserver {
  private windowStartMs = performance.now();
  private requests = 0;
  private failedRequests = 0;
  private errors: Partial<Record<ErrorKind, number>> = {};
  private bytes = 0;
  private downloadRatios: number[] = [];
  private segmentMs: number[] = [];
  private playlistMs: number[] = [];
  private startupMs: number[] = [];
  private stalls = 0;
  private stallSeconds = 0;
  private stalePlaylists = 0;

  request = (what: RequestWhat, ms: number, ok: boolean, bytes: number): void => {
    this.requests += 1;
    if (!ok) this.failedRequests += 1;
    this.bytes += bytes;
    if (what === 'playlist') this.playlistMs.push(ms);
    else if (what === 'segment') this.segmentMs.push(ms);
  };

  startup = (ms: number): void => {
    this.startupMs.push(ms);
  };

  segment = (downloadMs: number, durationSeconds: number): void => {
    this.downloadRatios.push(downloadMs / (durationSeconds * 1000));
  };

  stallStarted = (): void => {
    this.stalls += 1;
  };

  stallEnded = (seconds: number): void => {
    this.stallSeconds += seconds;
  };

  stale = (): void => {
    this.stalePlaylists += 1;
  };

  error = (kind: ErrorKind): void => {
    this.errors[kind] = (this.errors[kind] ?? 0) + 1;
  };

  take(viewers: number): FleetWindow {
    const now = performance.now();
    const window: FleetWindow = {
      seconds: (now - this.windowStartMs) / 1000,
      viewers,
      requests: this.requests,
      failedRequests: this.failedRequests,
      errors: this.errors,
      bytes: this.bytes,
      segments: this.downloadRatios.length,
      downloadRatio: percentiles(this.downloadRatios),
      segmentMs: percentiles(this.segmentMs),
      playlistMs: percentiles(this.playlistMs),
      startupMs: percentiles(this.startupMs),
      stalls: this.stalls,
      stallSeconds: this.stallSeconds,
      stalePlaylists: this.stalePlaylists,
    };
    this.windowStartMs = now;
    this.requests = this.failedRequests = this.bytes = this.stalls = this.stallSeconds = this.stalePlaylists = 0;
    this.errors = {};
    this.downloadRatios = [];
    this.segmentMs = [];
    this.playlistMs = [];
    this.startupMs = [];
    return window;
  }
}
