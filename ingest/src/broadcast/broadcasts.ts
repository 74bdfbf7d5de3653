/**
 * The broadcasts of this ingest, one per stream: who is live, whether a second publisher must be
 * refused, what GET /streams and live.json show, and the shutdown that ends them all.
 */
import type { Logger } from '../../../common/src/logger.ts';
import { parseLadderSpec, type RenditionSpec } from '../transcode/ladder.ts';
import type { Publisher, PublishEnd } from '../rtmp/rtmp-server.ts';
import { Broadcast, type BroadcastContext, type BroadcastStatus } from './broadcast.ts';

export type { BroadcastStatus } from './broadcast.ts';

export interface BroadcastsOptions extends Omit<BroadcastContext, 'changed'> {
  /** The stream's ladder spec in the registry (undefined: none); read when a broadcast starts. */
  ladderFor: (stream: string) => string | undefined;
  /** Something GET /streams shows changed (live.json is rewritten). */
  onChange: () => void;
}

export class Broadcasts {
  private readonly byStream = new Map<string, Broadcast>();
  private readonly closing = new Set<Promise<void>>();
  private readonly context: BroadcastContext;
  private readonly log: Logger;
  private cpuTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly options: BroadcastsOptions) {
    this.log = options.logger.child({ component: 'broadcasts' });
    this.context = { ...options, changed: () => this.changed() };
  }

  /** Starts the once-a-second ffmpeg CPU and speed sampling. */
  async start(): Promise<void> {
    if (this.cpuTimer || this.closed) return;
    this.cpuTimer = setInterval(() => {
      for (const broadcast of this.byStream.values()) void broadcast.sampleCpu();
    }, 1000);
    this.cpuTimer.unref();
  }

  /** Ends every broadcast (ENDLIST written, last parts flushed, recordings closed). Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.cpuTimer) clearInterval(this.cpuTimer);
    this.cpuTimer = null;
    await Promise.all([...this.byStream.values()].map((b) => b.close()));
    await Promise.all(this.closing);
  }

  /** A stream with a connected publisher: a second publisher is refused. */
  isLive(stream: string): boolean {
    return this.byStream.get(stream)?.state === 'live';
  }

  publishStarted(publisher: Publisher): void {
    if (this.closed) {
      publisher.disconnect();
      return;
    }
    const stream = publisher.stream;
    let broadcast = this.byStream.get(stream);
    if (broadcast?.state !== 'reconnecting') {
      // A broadcast of this stream that is still ending writes its ENDLIST first; the new one continues its numbering.
      const previousEnding = broadcast?.finished ?? Promise.resolve();
      broadcast = new Broadcast(stream, this.context, this.ladderOf(stream), previousEnding);
      this.track(broadcast);
      this.log.info({ stream, client: publisher.clientAddress }, 'broadcast started');
    }
    this.options.metrics.publishesAccepted.inc();
    broadcast.attach(publisher);
    this.changed();
  }

  publishEnded(publisher: Publisher, end: PublishEnd): void {
    const broadcast = this.byStream.get(publisher.stream);
    if (!broadcast) return;
    this.options.metrics.publisherDisconnects.inc({ how: end.clean ? 'clean' : 'dropped' });
    broadcast.publisherLeft(publisher, end);
  }

  status(): BroadcastStatus[] {
    return [...this.byStream.values()]
      .filter((b) => b.state !== 'ending')
      .map((b) => b.status())
      .sort((a, b) => a.stream.localeCompare(b.stream));
  }

  /** Sessions being recorded now (retention never deletes them). */
  recordingSessions(): Set<string> {
    const out = new Set<string>();
    for (const b of this.byStream.values()) if (b.recordingSession) out.add(b.recordingSession);
    return out;
  }

  private track(broadcast: Broadcast): void {
    this.byStream.set(broadcast.stream, broadcast);
    // The broadcast removes itself from the registry once ended; shutdown waits for its recording.
    const watch = (async () => {
      await broadcast.finished;
      if (this.byStream.get(broadcast.stream) === broadcast) this.byStream.delete(broadcast.stream);
      this.changed();
      await broadcast.recordingClosed();
    })();
    this.closing.add(watch);
    void watch.finally(() => this.closing.delete(watch));
  }

  private ladderOf(stream: string): RenditionSpec[] {
    const spec = this.options.ladderFor(stream);
    if (!spec) return [];
    try {
      return parseLadderSpec(spec);
    } catch (err) {
      // The registry validates ladders; a hand-edited bad one must not keep the stream off the air.
      this.log.error({ stream, ladder: spec, err: (err as Error).message }, 'invalid quality ladder in the registry, broadcasting without it');
      return [];
    }
  }

  private changed(): void {
    const counts = { live: 0, reconnecting: 0 };
    for (const b of this.byStream.values()) if (b.state !== 'ending') counts[b.state] += 1;
    this.options.metrics.liveStreams.set({ state: 'live' }, counts.live);
    this.options.metrics.liveStreams.set({ state: 'reconnecting' }, counts.reconnecting);
    this.options.onChange();
  }
}
