import type { Socket } from 'node:net';
import { createTrustList, inAddressList } from '../../common/src/access-record.ts';

/** What the proxy knows about one client address. Kept while it has connections or recent requests. */
export class ClientState {
  /** Open connections whose TCP peer is this address. */
  connections = 0;
  /** Token bucket: requests this address may still send at once. */
  tokens: number;
  /** performance.now() of the last refill. */
  refilledAt: number;
  lastSeen: number;

  constructor(
    readonly ip: string,
    /** VIEWER_ALLOW_CIDRS admits it (worked out once per address, not per request). */
    readonly allowed: boolean,
    /** LIMIT_EXEMPT_CIDRS or FRONT_PROXIES: no per-address limits. */
    readonly exempt: boolean,
    tokens: number,
    now: number,
  ) {
    this.tokens = tokens;
    this.refilledAt = now;
    this.lastSeen = now;
  }
}

export interface ClientLimitsOptions {
  /** Open connections per address (0 = off). */
  maxConnectionsPerIp: number;
  /** Requests per second per address, sustained (0 = off). */
  ratePerIp: number;
  /** Bucket size: requests an address may send at once. */
  rateBurst: number;
  /** Addresses without per-address limits (LIMIT_EXEMPT_CIDRS plus FRONT_PROXIES). */
  exempt: readonly string[];
  /** VIEWER_ALLOW_CIDRS as a predicate. */
  allows: (ip: string) => boolean;
}

const kState = Symbol('onair.proxy.client-state');
const kOverLimit = Symbol('onair.proxy.over-connection-limit');
type CountedSocket = Socket & { [kState]?: ClientState; [kOverLimit]?: boolean };

/** How often idle addresses are forgotten. One timer for all of them, not one per address. */
export const SWEEP_INTERVAL_MS = 10_000;
/** Beyond this many tracked addresses a sweep runs at once (at most once a second), not only on the timer. */
const EAGER_SWEEP_SIZE = 100_000;

/**
 * Per-address limits, cheap enough for every request: one Map keyed by address; a request does a
 * lookup (or reads the state pinned on its connection), a few arithmetic operations and no
 * allocation. Addresses without connections whose bucket has refilled are dropped by a periodic
 * sweep, so forgetting them changes nothing.
 *
 * - Connections: counted per TCP peer at accept; a connection beyond MAX_CONNECTIONS_PER_IP is
 *   marked, and its requests are refused (429, then closed) so the client learns why.
 * - Rate: a token bucket per client address, refilled at RATE_LIMIT_PER_IP per second up to
 *   RATE_LIMIT_BURST; an empty bucket means 429 with the seconds until the next token.
 */
export class ClientLimits {
  private readonly clients = new Map<string, ClientState>();
  private readonly exemptList;
  private readonly ratePerMs: number;
  /** An idle address is forgotten only once its bucket is full again, so forgetting it changes nothing. */
  private readonly forgetAfterMs: number;
  private sweeper: NodeJS.Timeout | null = null;
  private lastEagerSweep = 0;
  /** Client connections open now (all addresses). */
  openConnections = 0;

  constructor(private readonly options: ClientLimitsOptions) {
    this.exemptList = options.exempt.length > 0 ? createTrustList(options.exempt) : null;
    this.ratePerMs = options.ratePerIp / 1000;
    this.forgetAfterMs = Math.max(SWEEP_INTERVAL_MS, options.ratePerIp > 0 ? (options.rateBurst / options.ratePerIp) * 1000 : 0);
    const limits = this;
    this.onSocketClose = function (this: CountedSocket) {
      const state = this[kState];
      if (state === undefined) return;
      state.connections--;
      state.lastSeen = performance.now();
      limits.openConnections--;
    };
  }

  get trackedClients(): number {
    return this.clients.size;
  }

  /** The state of `ip`, created on first sight. */
  client(ip: string, now: number): ClientState {
    let state = this.clients.get(ip);
    if (state === undefined) {
      if (this.clients.size >= EAGER_SWEEP_SIZE && now - this.lastEagerSweep > 1_000) {
        this.lastEagerSweep = now;
        this.sweep(now);
      }
      const exempt = this.exemptList !== null && inAddressList(this.exemptList, ip);
      state = new ClientState(ip, this.options.allows(ip), exempt, this.options.rateBurst, now);
      this.clients.set(ip, state);
    } else {
      state.lastSeen = now;
    }
    return state;
  }

  /** A new connection from `peerIp` (at accept, or after the TLS handshake). */
  connectionOpened(socket: Socket, peerIp: string, now: number): void {
    const state = this.client(peerIp, now);
    state.connections++;
    this.openConnections++;
    const s = socket as CountedSocket;
    s[kState] = state;
    const max = this.options.maxConnectionsPerIp;
    if (max > 0 && !state.exempt && state.connections > max) s[kOverLimit] = true;
    socket.once('close', this.onSocketClose);
  }

  /** The state of the connection's peer (pinned: it cannot be swept while the connection is open). */
  peerState(socket: Socket): ClientState | undefined {
    return (socket as CountedSocket)[kState];
  }

  /** The connection was opened beyond MAX_CONNECTIONS_PER_IP. */
  overConnectionLimit(socket: Socket): boolean {
    return (socket as CountedSocket)[kOverLimit] === true;
  }

  /** Takes one request from the address's bucket: 0 when allowed, else the seconds until it may retry. */
  takeRequest(state: ClientState, now: number): number {
    if (this.ratePerMs === 0 || state.exempt) return 0;
    let tokens = state.tokens + (now - state.refilledAt) * this.ratePerMs;
    if (tokens > this.options.rateBurst) tokens = this.options.rateBurst;
    state.refilledAt = now;
    if (tokens >= 1) {
      state.tokens = tokens - 1;
      return 0;
    }
    state.tokens = tokens;
    return Math.max(1, Math.ceil((1 - tokens) / (this.ratePerMs * 1000)));
  }

  /** Forgets addresses without connections that have been quiet long enough for their bucket to refill. */
  sweep(now: number): number {
    let removed = 0;
    for (const [ip, state] of this.clients) {
      if (state.connections === 0 && now - state.lastSeen >= this.forgetAfterMs) {
        this.clients.delete(ip);
        removed++;
      }
    }
    return removed;
  }

  start(): void {
    this.sweeper ??= setInterval(() => this.sweep(performance.now()), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  private readonly onSocketClose: (this: CountedSocket) => void;
}
