import { parse as parseUrl, type Url } from 'node:url';

/**
 * A backend replica and its state machine:
 *
 *   pending ──pass×H──▶ healthy ◀──pass×H── unhealthy
 *      │                   │ fail×U / passive eject ▲
 *      └──────fail×U───────┴────────────────────────┘
 *   pending | healthy | unhealthy ──drain──▶ draining ──(in-flight reaches 0)──▶ removed
 *   draining ──re-add──▶ pending            any ──remove──▶ removed (terminal)
 *
 * H = HEALTHY_THRESHOLD consecutive passing checks, U = UNHEALTHY_THRESHOLD consecutive failures.
 * Only `healthy` backends receive new requests. A passive ejection (a connection error while
 * proxying) moves a healthy backend to `unhealthy` at once; an active check brings it back.
 *
 * Requests web holds until something is published (LL-HLS blocking playlist reloads, hinted parts)
 * are counted in `held`, not `inFlight`: they say nothing about how busy the replica is, and the
 * balancer reads `inFlight` only. When the backend turns unhealthy and another one is in rotation,
 * the pool moves its held requests (moveHolds: cut with HoldMovedError, retried on another backend
 * by their owner): they were only waiting, so nothing is lost, and the viewers do not wait for a
 * replica that may be gone.
 */
export type BackendState = 'pending' | 'healthy' | 'unhealthy' | 'draining' | 'removed';
export const BACKEND_STATES: readonly BackendState[] = ['pending', 'healthy', 'unhealthy', 'draining', 'removed'];

/** Why an attempt to a backend failed; `ejects` says whether it is evidence the replica is down. */
export type UpstreamErrorKind = 'refused' | 'reset' | 'stale_socket' | 'unreachable' | 'aborted' | 'timeout' | 'other';
export const UPSTREAM_ERROR_KINDS: readonly UpstreamErrorKind[] = ['refused', 'reset', 'stale_socket', 'unreachable', 'aborted', 'timeout', 'other'];
export const EJECTING_ERRORS: ReadonlySet<UpstreamErrorKind> = new Set(['refused', 'reset', 'unreachable', 'aborted']);

/** A request held at a backend, which its owner can cut and send to another backend. */
export interface HeldRequest {
  moveHold(): void;
}

/** The error a held request is cut with when its backend turns unhealthy: not a failure of the request. */
export class HoldMovedError extends Error {
  readonly code = 'HOLD_MOVED';
  constructor() {
    super('held request moved: the backend became unhealthy');
  }
}

export interface HealthThresholds {
  healthyThreshold: number;
  unhealthyThreshold: number;
}

export interface StateChange {
  backend: Backend;
  from: BackendState;
  to: BackendState;
  reason: string;
}

export interface LastCheck {
  ok: boolean;
  at: string;
  detail: string;
}

export class Backend {
  readonly url: string;
  /** Options object handed to http-proxy as is: parsed once, and its `target` identifies the attempt in error callbacks. */
  readonly proxyOptions: { target: Url };
  readonly host: string;
  readonly port: number;

  state: BackendState = 'pending';
  stateSince = Date.now();
  /** Requests in flight, held ones excepted: what the balancer compares. */
  inFlight = 0;
  /** Requests web holds until something is published (blocking playlist reloads, hinted parts). */
  held = 0;
  /** Held requests moved to another backend because this one turned unhealthy. */
  holdsMoved = 0;
  requests = 0;
  retries = 0;
  readonly errors: Record<UpstreamErrorKind, number> = { refused: 0, reset: 0, stale_socket: 0, unreachable: 0, aborted: 0, timeout: 0, other: 0 };
  checksPassed = 0;
  checksFailed = 0;
  consecutivePasses = 0;
  consecutiveFailures = 0;
  lastCheck: LastCheck | null = null;
  /** Set while an active check is outstanding, so checks never pile up on a slow replica. */
  checking = false;
  private readonly holding = new Set<HeldRequest>();

  constructor(
    url: string,
    private readonly thresholds: HealthThresholds,
    private readonly onChange: (change: StateChange) => void = () => {},
  ) {
    this.url = url;
    const parsed = parseUrl(url);
    this.proxyOptions = { target: parsed };
    this.host = parsed.hostname ?? '127.0.0.1';
    this.port = Number(parsed.port || 80);
  }

  /** In rotation: receives new requests. */
  get available(): boolean {
    return this.state === 'healthy';
  }

  /** Active checks run for backends that may (re)join rotation. */
  get wantsChecks(): boolean {
    return this.state === 'pending' || this.state === 'healthy' || this.state === 'unhealthy';
  }

  recordCheck(ok: boolean, detail: string): void {
    if (!this.wantsChecks) return;
    this.lastCheck = { ok, at: new Date().toISOString(), detail };
    if (ok) {
      this.checksPassed++;
      this.consecutivePasses++;
      this.consecutiveFailures = 0;
      if ((this.state === 'pending' || this.state === 'unhealthy') && this.consecutivePasses >= this.thresholds.healthyThreshold) {
        this.transition('healthy', `passed ${this.consecutivePasses} health check(s)`);
      }
    } else {
      this.checksFailed++;
      this.consecutiveFailures++;
      this.consecutivePasses = 0;
      if ((this.state === 'healthy' || this.state === 'pending') && this.consecutiveFailures >= this.thresholds.unhealthyThreshold) {
        this.transition('unhealthy', `failed ${this.consecutiveFailures} health check(s): ${detail}`);
      }
    }
  }

  /** Passive check: a connection-level error while proxying takes it out of rotation at once. */
  eject(reason: string): void {
    this.consecutivePasses = 0;
    if (this.state === 'healthy') this.transition('unhealthy', `ejected: ${reason}`);
  }

  /** No new requests; removed once the requests in flight have finished. */
  drain(): void {
    if (this.state === 'pending' || this.state === 'healthy' || this.state === 'unhealthy') {
      this.transition('draining', 'drain requested');
      this.removeIfDrained();
    }
  }

  /** Added again while draining: start over as pending (it must pass a check before taking traffic). */
  restore(): void {
    if (this.state !== 'draining') return;
    this.consecutivePasses = 0;
    this.consecutiveFailures = 0;
    this.transition('pending', 'added again');
  }

  remove(reason = 'removed'): void {
    if (this.state !== 'removed') this.transition('removed', reason);
  }

  /** An attempt starts: counted in `inFlight`, or in `held` when `held` is given. */
  startRequest(held: HeldRequest | null = null): void {
    this.requests++;
    if (held === null) this.inFlight++;
    else {
      this.held++;
      this.holding.add(held);
    }
  }

  /** The attempt started by startRequest(held) is over (the same `held`). */
  finishRequest(held: HeldRequest | null = null): void {
    if (held === null) this.inFlight--;
    else if (this.holding.delete(held)) this.held--;
    if (this.state === 'draining') this.removeIfDrained();
  }

  recordError(kind: UpstreamErrorKind): void {
    this.errors[kind]++;
  }

  snapshot(): Record<string, unknown> {
    return {
      url: this.url,
      state: this.state,
      since: new Date(this.stateSince).toISOString(),
      inFlight: this.inFlight,
      held: this.held,
      holdsMoved: this.holdsMoved,
      requests: this.requests,
      retries: this.retries,
      errors: { ...this.errors },
      checks: { passed: this.checksPassed, failed: this.checksFailed, consecutivePasses: this.consecutivePasses, consecutiveFailures: this.consecutiveFailures },
      lastCheck: this.lastCheck,
    };
  }

  private removeIfDrained(): void {
    if (this.inFlight <= 0 && this.held <= 0) this.transition('removed', 'drained');
  }

  /** Cuts every held request: their owners retry them elsewhere (they settle through finishRequest). */
  moveHolds(): void {
    if (this.holding.size === 0) return;
    const moved = [...this.holding];
    this.holdsMoved += moved.length;
    for (const request of moved) request.moveHold();
  }

  private transition(to: BackendState, reason: string): void {
    const from = this.state;
    if (from === to) return;
    this.state = to;
    this.stateSince = Date.now();
    this.onChange({ backend: this, from, to, reason });
  }
}
