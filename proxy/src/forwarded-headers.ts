import type { IncomingMessage } from 'node:http';

/**
 * The proxy is the edge: what a client claims about earlier hops is not believed. X-Forwarded-For is
 * overwritten with the client address (the TCP peer, already normalized: no "::ffff:" prefix; or,
 * behind a configured front proxy, the address it forwarded), the other forwarding headers are
 * set from what we saw, and headers a client could use to spoof its address are dropped.
 */
export function setForwardedHeaders(req: IncomingMessage, clientIp: string, requestId: string, proto: 'http' | 'https'): void {
  const headers = req.headers;
  headers['x-forwarded-for'] = clientIp;
  headers['x-forwarded-proto'] = proto;
  headers['x-forwarded-host'] = headers.host ?? '';
  headers['x-request-id'] = requestId;
  if (headers.forwarded !== undefined) delete headers.forwarded;
  if (headers['x-real-ip'] !== undefined) delete headers['x-real-ip'];
  if (headers['x-forwarded-port'] !== undefined) delete headers['x-forwarded-port'];
}
