import { readLiveState, type LiveStream } from '../../common/src/live-state.ts';
import { ingestStateFile } from '../../common/src/media-layout.ts';
import { isStreamName } from '../../common/src/stream-name.ts';
import type { Logger } from '../../common/src/logger.ts';

/** What viewers may know about a live stream (GET /streams.json): nothing internal, nothing secret. */
export interface PublicStream {
  stream: string;
  state: LiveStream['state'];
  since: string;
  video: LiveStream['video'];
  audio: LiveStream['audio'];
  /** Low-latency HLS: the player tunes for it (PART-HOLD-BACK instead of a segment count). */
  lowLatency: boolean;
}

export const LIVE_POLL_INTERVAL_MS = 1_000;

/**
 * Keeps the list of live streams current by re-reading ingest's live.json every second,
 * so page requests never touch the file system. readLiveState already treats a stale or broken
 * file as "nothing is live".
 */
export class LiveStreams {
  private current: PublicStream[] = [];
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly mediaDir: string,
    private readonly logger: Logger,
    private readonly intervalMs = LIVE_POLL_INTERVAL_MS,
  ) {}

  /** Reads once (so the first page is right), then keeps polling until stop(). */
  async start(): Promise<void> {
    await this.refresh();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  list(): readonly PublicStream[] {
    return this.current;
  }

  private schedule(): void {
    if (this.stopped) return;
    // A chain of timeouts, not an interval: a slow read never overlaps the next one.
    this.timer = setTimeout(() => void this.refresh().finally(() => this.schedule()), this.intervalMs);
    this.timer.unref();
  }

  private async refresh(): Promise<void> {
    try {
      const state = await readLiveState(ingestStateFile(this.mediaDir));
      const next = state.streams
        .filter((s) => isStreamName(s.stream))
        .map(({ stream, state: streamState, since, video, audio, lowLatency }) => ({ stream, state: streamState, since, video, audio, lowLatency }))
        .sort((a, b) => a.stream.localeCompare(b.stream));
      if (JSON.stringify(next) !== JSON.stringify(this.current)) {
        this.logger.info({ streams: next.map((s) => s.stream) }, 'live streams changed');
      }
      this.current = next;
    } catch (err) {
      this.logger.warn({ err }, 'could not read live streams');
    }
  }
}
