import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../common/src/atomic-file.ts';
import type { LiveState, LiveStream } from '../../common/src/live-state.ts';
import type { Logger } from '../../common/src/logger.ts';

/**
 * Publishes "which streams are live" to MEDIA_DIR/ingest/live.json for the web tier: at once on
 * every change, and as a heartbeat, so readers can tell a stale file (ingest gone) from a quiet one.
 */
export interface LiveStateWriteHooks {
  /** Instead of logging each failure (the heartbeat would repeat it every few seconds). */
  failed(err: Error): void;
  succeeded(): void;
}

export class LiveStateWriter {
  private timer: NodeJS.Timeout | null = null;
  private writing = false;
  private dirty = false;

  constructor(
    private readonly file: string,
    private readonly heartbeatMs: number,
    private readonly snapshot: () => LiveStream[],
    private readonly logger: Logger,
    private readonly hooks?: LiveStateWriteHooks,
  ) {}

  async start(): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    await this.writeNow();
    this.timer = setInterval(() => this.update(), this.heartbeatMs);
  }

  /** Schedules a write; bursts of changes coalesce into one. */
  update(): void {
    if (this.writing) {
      this.dirty = true;
      return;
    }
    void this.writeNow();
  }

  /** Writes a final state with no live streams. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.write({ version: 1, updatedAt: new Date().toISOString(), heartbeatMs: this.heartbeatMs, streams: [] });
  }

  private async writeNow(): Promise<void> {
    this.writing = true;
    do {
      this.dirty = false;
      const streams = this.snapshot().map(({ stream, state, since, video, audio, bitrateKbps, lowLatency }) => ({ stream, state, since, video, audio, bitrateKbps, lowLatency }));
      await this.write({ version: 1, updatedAt: new Date().toISOString(), heartbeatMs: this.heartbeatMs, streams });
    } while (this.dirty);
    this.writing = false;
  }

  private async write(state: LiveState): Promise<void> {
    try {
      await writeFileAtomic(this.file, JSON.stringify(state));
    } catch (err) {
      if (this.hooks) this.hooks.failed(err as Error);
      else this.logger.error({ err, file: this.file }, 'cannot write the live-state file');
      return;
    }
    this.hooks?.succeeded();
  }
}
