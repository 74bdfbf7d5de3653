/**
 * The one adapter around node-media-server (4.4.3, pinned): RTMP protocol handling comes from
 * the library, everything around it is ours. We own the TCP listener (the library's calls
 * process.exit on EADDRINUSE and cannot limit or time out connections), refuse addresses outside
 * the publisher allowlist before the handshake, give every connection a deadline to start
 * publishing, put limits on the library's parser (protocol-guard.ts) and contain its exceptions
 * per connection, refuse publishes inside the broadcast's auth hook before any media is accepted,
 * and read media through an in-process FLV tap instead of a second RTMP connection.
 */
import { type BlockList, createServer, type Server, type Socket } from 'node:net';
import Context from 'node-media-server/src/core/context.js';
import nmsLogger from 'node-media-server/src/core/logger.js';
import RtmpSession, { type NmsSession, type NmsSubscriber } from 'node-media-server/src/session/rtmp_session.js';
import type { Logger } from '../../../common/src/logger.ts';
import { inAddressList, normalizeIp } from '../../../common/src/access-record.ts';
import { checkFirstBytes, type DropReason, guardSession, ProtocolViolation } from './protocol-guard.ts';

export type { DropReason } from './protocol-guard.ts';

export interface PublishRequest {
  sessionId: string;
  app: string;
  stream: string;
  query: Record<string, string | string[] | undefined>;
  clientAddress: string;
}

export type PublishDecision = { accept: true } | { accept: false; reason: string };

/** A publisher the adapter accepted. */
export interface Publisher {
  readonly sessionId: string;
  readonly stream: string;
  readonly clientAddress: string;
  readonly startedAt: Date;
  /** Subscribes `sink` to the broadcast's FLV stream (header, metadata, sequence headers, GOP, live tags). */
  attachTap(sink: (flv: Buffer) => void): () => void;
  /** Drops the publisher's connection. */
  disconnect(): void;
  inputStats(): PublisherInputStats;
}

export interface PublisherInputStats {
  bytesReceived: number;
  video: { codec: string; width: number; height: number; fps: number } | null;
  audio: { codec: string; sampleRate: number; channels: number } | null;
}

export interface PublishEnd {
  /** The publisher said it was done (deleteStream) before closing; false for a dropped connection. */
  clean: boolean;
}

export interface RtmpServerHandlers {
  /** Synchronous by necessity: the library calls it inside its publish handling. */
  authorizePublish(request: PublishRequest): PublishDecision;
  publishStarted(publisher: Publisher): void;
  publishEnded(publisher: Publisher, end: PublishEnd): void;
  publishRefused(request: PublishRequest, reason: string): void;
  /** A connection refused before the handshake: its address is outside `allowedNetworks`. */
  connectionRefused(clientAddress: string, reason: 'network'): void;
  /** A connection the adapter closed for misbehaving or timing out (already logged here). */
  connectionDropped(clientAddress: string, reason: DropReason): void;
}

export interface RtmpServerOptions {
  port: number;
  host: string;
  /** A connection with no traffic for this long is closed: a dead publisher frees its stream. */
  idleTimeoutMs: number;
  /** A connection must be an accepted publisher this long after connecting (slow handshakes hold a slot). */
  handshakeTimeoutMs: number;
  maxConnections: number;
  /** Publishers may connect only from these networks; null = from anywhere. */
  allowedNetworks: BlockList | null;
  logger: Logger;
  handlers: RtmpServerHandlers;
}

const VIDEO_CODECS: Record<number, string> = { 7: 'h264', 12: 'hevc', 13: 'av1' };
const AUDIO_CODECS: Record<number, string> = { 10: 'aac', 2: 'mp3', 13: 'opus' };

function splitAddress(ip: string): string {
  return normalizeIp(ip.replace(/:\d+$/, ''));
}

let tapCounter = 0;

/** Thrown out of the library's parser once a publish or play is refused: nothing after it is parsed. */
class SessionRefused extends Error {}

class AcceptedPublisher implements Publisher {
  readonly startedAt = new Date();
  clean = false;
  ended = false;
  constructor(private readonly session: NmsSession) {
    // The library ignores deleteStream; it is how a client says "I am done" before closing.
    const rtmp = session.rtmp;
    const original = rtmp.onDeleteStream.bind(rtmp);
    rtmp.onDeleteStream = (message: unknown) => {
      this.clean = true;
      original(message);
    };
  }
  get sessionId(): string {
    return this.session.id;
  }
  get stream(): string {
    return this.session.streamName;
  }
  get clientAddress(): string {
    return splitAddress(this.session.ip);
  }
  attachTap(sink: (flv: Buffer) => void): () => void {
    const broadcast = this.session.broadcast;
    const tap: NmsSubscriber = {
      id: `onair-tap-${++tapCounter}`,
      ip: '', // empty ip: the library treats it as internal (no auth, no play events)
      protocol: 'flv',
      streamPath: this.session.streamPath,
      sendBuffer: sink,
      close: () => undefined,
    };
    broadcast.postPlay(tap);
    let attached = true;
    return () => {
      if (!attached) return;
      attached = false;
      broadcast.donePlay(tap);
    };
  }
  disconnect(): void {
    this.session.socket.destroy();
  }
  inputStats(): PublisherInputStats {
    const s = this.session;
    return {
      bytesReceived: s.inBytes,
      video: s.videoWidth
        ? { codec: VIDEO_CODECS[s.videoCodec] ?? String(s.videoCodec), width: s.videoWidth, height: s.videoHeight, fps: s.videoFramerate }
        : null,
      audio: s.audioSamplerate
        ? { codec: AUDIO_CODECS[s.audioCodec] ?? String(s.audioCodec), sampleRate: s.audioSamplerate, channels: s.audioChannels }
        : null,
    };
  }
}

export class RtmpServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly publishers = new Map<NmsSession, AcceptedPublisher>();
  private readonly publishAttempts = new WeakSet<NmsSession>();
  private readonly log: Logger;

  constructor(private readonly options: RtmpServerOptions) {
    this.log = options.logger.child({ component: 'rtmp' });
    this.routeLibraryLogs();
    // Both checks go through our verifyAuth override; the library's signed-URL scheme is unused.
    Context.config = { auth: { publish: true, play: true, secret: '' } };
    Context.eventEmitter.on('prePublish', this.onPrePublish);
    Context.eventEmitter.on('prePlay', this.onPrePlay);
    Context.eventEmitter.on('postPublish', this.onPostPublish);
    Context.eventEmitter.on('donePublish', this.onDonePublish);
    this.server = createServer(this.onConnection);
    this.server.maxConnections = options.maxConnections;
    // Node closes connections over maxConnections itself; it only tells us through 'drop'.
    this.server.on('drop', (peer) => this.dropped(splitAddress(`${peer?.remoteAddress ?? ''}:0`), peer?.remotePort, 'connection-limit', `limit ${options.maxConnections} connections`));
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => this.log.error({ err }, 'RTMP listener error'));
        const address = this.server.address();
        resolve(typeof address === 'object' && address ? address.port : this.options.port);
      });
    });
  }

  /** Stops accepting connections; existing publishers are left to the caller to end. */
  stopAccepting(): void {
    // Not awaiting close(): it only calls back once every existing connection has gone.
    if (this.server.listening) this.server.close();
  }

  /** Closes every remaining connection (publishers see their sessions end). */
  disconnectAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  close(): void {
    Context.eventEmitter.off('prePublish', this.onPrePublish);
    Context.eventEmitter.off('prePlay', this.onPrePlay);
    Context.eventEmitter.off('postPublish', this.onPostPublish);
    Context.eventEmitter.off('donePublish', this.onDonePublish);
    this.stopAccepting();
    this.disconnectAll();
  }

  private onConnection = (socket: Socket): void => {
    const client = splitAddress(`${socket.remoteAddress ?? ''}:0`);
    const allowed = this.options.allowedNetworks;
    if (allowed && !inAddressList(allowed, client)) {
      // Before the handshake: nothing is parsed or allocated for it.
      socket.destroy();
      this.options.handlers.connectionRefused(client, 'network');
      return;
    }
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5_000);
    const session = new RtmpSession(socket);
    const drop = (reason: DropReason, detail: string): void => {
      if (socket.destroyed) return;
      socket.destroy();
      this.dropped(client, socket.remotePort, reason, detail, this.publishers.get(session)?.stream);
    };
    socket.setTimeout(this.options.idleTimeoutMs, () => drop('idle', `no data for ${this.options.idleTimeoutMs} ms`));
    // The idle timeout alone would let a client that trickles a byte now and then hold a slot forever.
    const deadline = setTimeout(() => {
      if (!this.publishers.has(session)) drop('handshake-timeout', `not publishing ${this.options.handshakeTimeoutMs} ms after connecting`);
    }, this.options.handshakeTimeoutMs);
    socket.on('close', () => {
      clearTimeout(deadline);
      this.sockets.delete(socket);
    });
    guardSession(session, () => this.publishers.has(session) && !socket.destroyed);
    const parse = session.onData;
    // The library's parser throws on malformed input (e.g. a bad tcUrl) and on our limits: drop that client only.
    session.onData = (data: Buffer) => {
      if (socket.destroyed) return;
      try {
        checkFirstBytes(session, data);
        parse(data);
      } catch (err) {
        if (err instanceof SessionRefused) return; // logged and closed by verify()
        if (err instanceof ProtocolViolation) drop(err.reason, err.message);
        else drop('malformed', (err as Error).message);
      }
    };
    session.run();
    Context.sessions.set(session.id, session);
    socket.once('close', () => Context.sessions.delete(session.id));
  };

  private dropped(client: string, port: number | undefined, reason: DropReason, detail: string, stream?: string): void {
    this.log.warn({ client, port, reason, detail, ...(stream ? { stream } : {}) }, 'RTMP connection dropped');
    this.options.handlers.connectionDropped(client, reason);
  }

  private onPrePublish = (session: NmsSession): void => {
    this.publishAttempts.add(session);
    // The library's own resume window would splice a new publisher into the old timeline;
    // continuity across reconnects is handled by our playlist instead.
    session.broadcast.publishGraceMs = 0;
    session.broadcast.verifyAuth = this.verify;
  };

  private onPrePlay = (session: NmsSession): void => {
    session.broadcast.verifyAuth = this.verify;
  };

  /**
   * Called by the library right after prePublish/prePlay, before any media is accepted: true
   * accepts; a refusal closes the socket and throws SessionRefused out of the library's parser.
   */
  private verify = (_secret: string | undefined, session: NmsSession): boolean => {
    if (session.socket.destroyed) throw new SessionRefused();
    if (!this.publishAttempts.has(session)) {
      this.log.warn({ client: splitAddress(session.ip), path: session.streamPath }, 'RTMP play refused: viewers watch over HTTP');
      session.socket.destroy();
      throw new SessionRefused();
    }
    const request: PublishRequest = {
      sessionId: session.id,
      app: session.streamApp,
      stream: session.streamName,
      query: session.streamQuery ?? {},
      clientAddress: splitAddress(session.ip),
    };
    let decision: PublishDecision;
    if (session.broadcast.publisher !== null) decision = { accept: false, reason: 'already-live' };
    else {
      try {
        decision = this.options.handlers.authorizePublish(request);
      } catch (err) {
        this.log.error({ err }, 'publish authorization failed');
        decision = { accept: false, reason: 'internal-error' };
      }
    }
    if (decision.accept) return true;
    this.options.handlers.publishRefused(request, decision.reason);
    // A refused publisher must not get to send media: drop the connection now, and stop parsing
    // the rest of what it already sent (media after the publish command would otherwise reach
    // the broadcast of the path it named, which may be someone else's live stream).
    session.socket.destroy();
    throw new SessionRefused();
  };

  private onPostPublish = (session: NmsSession): void => {
    if (session.socket.destroyed) return;
    const publisher = new AcceptedPublisher(session);
    this.publishers.set(session, publisher);
    try {
      this.options.handlers.publishStarted(publisher);
    } catch (err) {
      this.log.error({ err, stream: publisher.stream }, 'could not start the stream, dropping the publisher');
      session.socket.destroy();
    }
  };

  private onDonePublish = (session: NmsSession): void => {
    const publisher = this.publishers.get(session);
    if (!publisher || publisher.ended) return;
    publisher.ended = true;
    this.publishers.delete(session);
    this.options.handlers.publishEnded(publisher, { clean: publisher.clean });
  };

  private routeLibraryLogs(): void {
    const log = this.log.child({ library: 'node-media-server' });
    nmsLogger.level = 'info';
    // The library prints with console.log; its info-level chatter is our debug.
    nmsLogger.log = (message: string, level = 'info') => {
      if (level === 'error' || level === 'warn') log.warn(message);
      else log.debug(message);
    };
  }
}
