import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { createTrustList, inAddressList, normalizeIp, resolveClientIp } from '../../common/src/access-record.ts';

const kPeerIp = Symbol('onair.proxy.peer-ip');
const kFromFront = Symbol('onair.proxy.from-front-proxy');
type AddressedSocket = Socket & { [kPeerIp]?: string; [kFromFront]?: boolean };

/** Stands in for an address the socket no longer has (closed before we asked); a valid IP for records. */
export const UNKNOWN_PEER = '0.0.0.0';

/**
 * Who the client is. The proxy is the edge, so by default the client is the TCP peer and no header
 * can change that (DESIGN.md: client_ip cannot be forged). Only when the peer is one of
 * FRONT_PROXIES (a TLS terminator or load balancer in front of us) are its X-Forwarded-For and
 * X-Forwarded-Proto believed. The peer's address and whether it is a front proxy are worked out
 * once per connection and kept on the socket.
 */
export class ClientAddresses {
  private readonly front;

  constructor(frontProxies: readonly string[]) {
    this.front = frontProxies.length > 0 ? createTrustList(frontProxies) : null;
  }

  /** The TCP peer, normalized ("::ffff:1.2.3.4" → "1.2.3.4"). */
  peerIp(socket: Socket): string {
    const s = socket as AddressedSocket;
    let ip = s[kPeerIp];
    if (ip === undefined) {
      ip = socket.remoteAddress === undefined ? UNKNOWN_PEER : normalizeIp(socket.remoteAddress);
      s[kPeerIp] = ip;
      s[kFromFront] = this.front !== null && inAddressList(this.front, ip);
    }
    return ip;
  }

  isFrontProxy(socket: Socket): boolean {
    this.peerIp(socket);
    return (socket as AddressedSocket)[kFromFront] === true;
  }

  /** The viewer: the peer, or behind a front proxy the nearest untrusted X-Forwarded-For hop. */
  clientIp(req: IncomingMessage): string {
    const peer = this.peerIp(req.socket);
    if (!(req.socket as AddressedSocket)[kFromFront]) return peer;
    return resolveClientIp(peer, req.headers['x-forwarded-for'], this.front!);
  }

  /** The scheme the client used: ours, or what a front proxy says it terminated. */
  proto(req: IncomingMessage): 'http' | 'https' {
    if (this.isFrontProxy(req.socket)) {
      const claimed = req.headers['x-forwarded-proto'];
      if (claimed === 'https' || claimed === 'http') return claimed;
    }
    return (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
  }
}
