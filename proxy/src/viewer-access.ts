import { createTrustList, inAddressList } from '../../common/src/access-record.ts';

/** Probes and scrapes come from the infrastructure network: never refused by address. */
export function isOpsPath(path: string): boolean {
  return path === '/healthz' || path === '/readyz' || path === '/metrics';
}

/**
 * VIEWER_ALLOW_CIDRS: the networks that may use the proxy at all: viewer pages and media, the
 * monitoring dashboard and API, and the admin API (ops sit on the same closed network). Only
 * /healthz, /readyz and /metrics are outside it. An empty list lets everyone in (local mode).
 * The address checked is the client's as ClientAddresses resolves it: the TCP peer, never a header
 * unless the peer is a configured front proxy.
 */
export class ViewerNetworks {
  private readonly list;

  constructor(cidrs: readonly string[]) {
    this.list = cidrs.length > 0 ? createTrustList(cidrs) : null;
  }

  get restricted(): boolean {
    return this.list !== null;
  }

  allows(ip: string): boolean {
    return this.list === null || inAddressList(this.list, ip);
  }
}
