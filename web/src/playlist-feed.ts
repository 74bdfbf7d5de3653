import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Logger } from '../../common/src/logger.ts';

/**
 * The reader of ingest's playlist feed (docs/low-latency-hls.md "Ingest's playlist feed"): one
 * long-lived GET of NDJSON lines, `{"type":"playlist","file":"live/…/index.m3u8","text":"…"}` and
 * `{"type":"heartbeat","at":"…"}` every 2 s. It reconnects with a capped backoff when the answer
 * ends or fails, and treats a connection that says nothing for `deadAfterMs` as dead (a peer
 * that vanished without a FIN would otherwise look connected for minutes). Readiness never
 * depends on it: the file system is the fallback.
 */
export interface PlaylistFeedHandlers {
  version(file: string, text: string): void;
  connected(): void;
  disconnected(): void;
}

export interface PlaylistFeedOptions {
  /** No line for this long: the connection is dead. Ingest's heartbeat is every 2 s. */
  deadAfterMs: number;
  firstRetryMs: number;
  maxRetryMs: number;
  /** A longer line is a protocol error (a playlist is a few KiB; ingest drops readers > 1 MiB behind). */
  maxLineChars: number;
}

export const DEFAULT_FEED_OPTIONS: PlaylistFeedOptions = { deadAfterMs: 6_000, firstRetryMs: 250, maxRetryMs: 5_000, maxLineChars: 4 * 1024 * 1024 };

export class PlaylistFeedClient {
  private request: ClientRequest | null = null;
  private deadTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retries = 0;
  private up = false;
  private connectedAt = 0;
  /** Whether the current outage was logged already: once per change, not per retry. */
  private downLogged = false;
  private stopped = false;
  private readonly url: URL;

  constructor(
    url: string,
    private readonly handlers: PlaylistFeedHandlers,
    private readonly logger: Logger,
    private readonly options: PlaylistFeedOptions = DEFAULT_FEED_OPTIONS,
  ) {
    this.url = new URL(url);
  }

  get connected(): boolean {
    return this.up;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.drop();
    if (this.up) {
      this.up = false;
      this.handlers.disconnected();
    }
  }

  private connect(): void {
    this.retryTimer = null;
    if (this.stopped) return;
    const client = this.url.protocol === 'https:' ? https : http;
    // Its own connection (no agent): a pooled socket must not be shared with anything else.
    const request = client.get(this.url, { agent: false, headers: { accept: 'application/x-ndjson' } });
    this.request = request;
    this.deadTimer = setTimeout(() => this.fail(request, `nothing for ${this.options.deadAfterMs} ms`), this.options.deadAfterMs);
    this.deadTimer.unref();
    request.on('response', (res) => this.read(request, res));
    request.on('error', (err) => this.fail(request, err.message));
  }

  private read(request: ClientRequest, res: IncomingMessage): void {
    if (res.statusCode !== 200) {
      res.resume();
      return this.fail(request, `HTTP ${res.statusCode}`);
    }
    if (!this.up) {
      this.up = true;
      this.connectedAt = performance.now();
      this.logger.info({ url: this.url.href }, 'playlist feed connected');
      this.downLogged = false;
      this.handlers.connected();
    }
    res.setEncoding('utf8'); // a multi-byte character split across chunks stays whole
    let rest = '';
    res.on('data', (chunk: string) => {
      if (this.request !== request) return;
      let start = 0;
      let text = rest + chunk;
      for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', start)) {
        this.line(text.slice(start, newline));
        if (this.request !== request) return;
        start = newline + 1;
      }
      text = text.slice(start);
      if (text.length > this.options.maxLineChars) return this.fail(request, 'line too long');
      rest = text;
    });
    res.on('end', () => this.fail(request, 'ended'));
    res.on('error', (err) => this.fail(request, err.message));
    res.on('close', () => this.fail(request, 'closed'));
  }

  private line(line: string): void {
    this.deadTimer?.refresh();
    if (line.trim() === '') return;
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.logger.debug({ length: line.length }, 'playlist feed line is not JSON, skipped');
      return;
    }
    if (typeof message !== 'object' || message === null) return;
    const { type, file, text } = message as Record<string, unknown>;
    if (type !== 'playlist' || typeof file !== 'string' || typeof text !== 'string') return;
    try {
      this.handlers.version(file, text);
    } catch (err) {
      // One bad version must not take the replica down: it keeps following the files.
      this.logger.error({ err, file }, 'playlist feed version could not be taken in');
    }
  }

  /** Ends `request` (if it is still the current one) and schedules the next attempt. */
  private fail(request: ClientRequest, reason: string): void {
    if (this.request !== request) return;
    this.drop();
    if (this.up) {
      this.up = false;
      // A connection that worked for a while: the next outage starts the backoff again. One that
      // ends right after connecting (a flapping peer) keeps backing off.
      if (performance.now() - this.connectedAt >= this.options.deadAfterMs) this.retries = 0;
      this.logger.warn({ url: this.url.href, reason }, 'playlist feed disconnected, following the files until it is back');
      this.downLogged = true;
      this.handlers.disconnected();
    } else if (!this.downLogged) {
      this.logger.warn({ url: this.url.href, reason }, 'playlist feed unreachable, following the files until it connects');
      this.downLogged = true;
    }
    if (this.stopped) return;
    const delay = Math.min(this.options.maxRetryMs, this.options.firstRetryMs * 2 ** this.retries);
    this.retries = Math.min(this.retries + 1, 16);
    // Jitter, so replicas that lost ingest together do not come back in step.
    this.retryTimer = setTimeout(() => this.connect(), delay * (0.75 + Math.random() * 0.5));
    this.retryTimer.unref();
  }

  private drop(): void {
    if (this.deadTimer) clearTimeout(this.deadTimer);
    this.deadTimer = null;
    const request = this.request;
    this.request = null;
    request?.destroy();
  }
}
