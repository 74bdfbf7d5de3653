/**
 * A fleet of simulated viewers of one stream whose size can change while it runs (ramps), each
 * on its own loopback address, all reporting into one FleetStats.
 */
import { randomUUID } from 'node:crypto';
import { FleetStats, type FleetWindow } from './fleet-stats.ts';
import { HttpViewer, viewerAddress } from './http-viewer.ts';

export interface FleetOptions {
  /** e.g. http://127.0.0.1:8080 */
  baseUrl: string;
  stream: string;
  variantPolicy?: 'highest' | 'lowest' | 'random';
  /** New viewers join at most this many per second (a crowd arriving, not one instant). */
  joinPerSecond?: number;
}

export class ViewerFleet {
  private readonly viewers: HttpViewer[] = [];
  private readonly stats = new FleetStats();
  private nextIndex = 0;
  private joining: Promise<void> = Promise.resolve();

  constructor(private readonly options: FleetOptions) {}

  get size(): number {
    return this.viewers.length;
  }

  /** Grows or shrinks the fleet to `count` viewers; resolves when the change is done. */
  resize(count: number): Promise<void> {
    this.joining = this.joining.then(async () => {
      while (this.viewers.length > count) await this.viewers.pop()!.stop();
      const pauseMs = 1000 / (this.options.joinPerSecond ?? 200);
      while (this.viewers.length < count) {
        this.viewers.push(this.startViewer());
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    });
    return this.joining;
  }

  /** The figures since the previous call. */
  take(): FleetWindow {
    return this.stats.take(this.viewers.length);
  }

  async stop(): Promise<void> {
    await this.resize(0);
  }

  private startViewer(): HttpViewer {
    // Addresses are not reused within a run, so monitoring's window never merges two viewers.
    const index = this.nextIndex++;
    return new HttpViewer({
      url: `${this.options.baseUrl.replace(/\/+$/, '')}/live/${this.options.stream}/index.m3u8`,
      localAddress: viewerAddress(index),
      sessionId: randomUUID(),
      observer: this.stats,
      variantPolicy: this.options.variantPolicy ?? 'highest',
    });
  }
}
