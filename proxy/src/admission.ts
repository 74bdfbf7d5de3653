import type { IncomingMessage } from 'node:http';
import type { ClientAddresses } from './client-address.ts';
import type { ClientLimits, ClientState } from './client-limits.ts';
import type { PlaybackGate } from './playback-gate.ts';
import type { ProxyResponse } from './proxy-response.ts';
import { refuse, type Refusal } from './refusals.ts';
import { isBadPath, requestTargetProblem } from './request-target.ts';

export interface UpgradeRefusal {
  reason: Refusal;
  retryAfter?: number;
}

/**
 * Whether the proxy serves a request at all, checked in this order (cheapest and least revealing
 * first): the client's network (403, VIEWER_ALLOW_CIDRS, decided once per address by
 * ClientLimits), its connection count (429) and request rate (429), the
 * request target (414/400/405), and the playback token (403). Runs for everything but the
 * proxy's own /healthz, /readyz and /metrics.
 */
export class Admission {
  constructor(
    private readonly limits: ClientLimits,
    private readonly addresses: ClientAddresses,
    private readonly gate: PlaybackGate | null,
    private readonly maxUrlBytes: number,
  ) {}

  /** Answers the request with its refusal and returns true, or returns false: go on. */
  refuses(req: IncomingMessage, res: ProxyResponse, url: string, path: string, now: number): boolean {
    const state = this.stateOf(req, res.clientIp, now);
    if (!state.allowed) {
      refuse(res, 'network', { close: true });
      return true;
    }
    if (this.limits.overConnectionLimit(req.socket)) {
      refuse(res, 'too-many-connections', { retryAfter: 1, close: true });
      return true;
    }
    const wait = this.limits.takeRequest(state, now);
    if (wait > 0) {
      refuse(res, 'rate-limited', { retryAfter: wait });
      return true;
    }
    const problem = requestTargetProblem(req, url, path, this.maxUrlBytes);
    if (problem !== null) {
      refuse(res, problem);
      return true;
    }
    if (this.gate !== null) {
      const decision = this.gate.check(path, url, req.headers.cookie, this.addresses.proto(req) === 'https', Math.floor(Date.now() / 1000));
      if (!decision.ok) {
        refuse(res, decision.reason);
        return true;
      }
      res.setCookie = decision.setCookie;
    }
    return false;
  }

  /** The same address checks for a WebSocket upgrade (the monitoring dashboard), which has no ServerResponse. */
  upgradeRefusal(req: IncomingMessage, clientIp: string, url: string, path: string, now: number): UpgradeRefusal | null {
    const state = this.stateOf(req, clientIp, now);
    if (!state.allowed) return { reason: 'network' };
    if (this.limits.overConnectionLimit(req.socket)) return { reason: 'too-many-connections', retryAfter: 1 };
    const wait = this.limits.takeRequest(state, now);
    if (wait > 0) return { reason: 'rate-limited', retryAfter: wait };
    if (this.maxUrlBytes > 0 && url.length > this.maxUrlBytes) return { reason: 'uri-too-long' };
    if (isBadPath(path)) return { reason: 'bad-path' };
    return null;
  }

  /** Behind a front proxy the client is the forwarded address; otherwise the state pinned on the connection. */
  private stateOf(req: IncomingMessage, clientIp: string, now: number): ClientState {
    if (!this.addresses.isFrontProxy(req.socket)) {
      const pinned = this.limits.peerState(req.socket);
      if (pinned !== undefined) return pinned;
    }
    return this.limits.client(clientIp, now);
  }
}
