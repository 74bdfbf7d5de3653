import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { Readiness } from '../../common/src/ops-endpoints.ts';

export const MEDIA_CHECK_INTERVAL_MS = 1_000;

/**
 * Ready = listening, not shutting down, and MEDIA_DIR/live reachable. The directory is checked
 * in the background every second so that /readyz (polled by the proxy) never waits on the disk.
 */
export class ReadinessState {
  private listening = false;
  private draining = false;
  private mediaProblem: string | null = 'media directory not checked yet';
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly liveDir: string, private readonly intervalMs = MEDIA_CHECK_INTERVAL_MS) {}

  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  markListening(): void {
    this.listening = true;
  }

  /** First step of shutdown: the proxy stops sending us viewers before connections close. */
  markDraining(): void {
    this.draining = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  readonly readiness: Readiness = () => {
    if (this.draining) return 'shutting down';
    if (!this.listening) return 'not listening yet';
    return this.mediaProblem;
  };

  private async check(): Promise<void> {
    try {
      await access(this.liveDir, constants.R_OK | constants.X_OK);
      this.mediaProblem = null;
    } catch (err) {
      this.mediaProblem = `media directory unreachable (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    }
  }
}
