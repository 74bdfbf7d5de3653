/**
 * Ops authentication: `Authorization: Bearer <OPS_TOKEN>` for API clients, or, for the
 * dashboard in a browser, a session cookie obtained by posting the token to /monitor/login.
 * The cookie holds an HMAC of the token, not the token: it stops working when the token changes.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const SESSION_COOKIE = 'onair_ops';

export class OpsAuth {
  private readonly tokenBytes: Buffer;
  readonly sessionValue: string;

  constructor(token: string) {
    this.tokenBytes = Buffer.from(token, 'utf8');
    this.sessionValue = createHmac('sha256', token).update('onair ops session v1').digest('base64url');
  }

  tokenMatches(candidate: string): boolean {
    const given = Buffer.from(candidate, 'utf8');
    // Compare digests so length differences do not short-circuit either.
    const a = createHmac('sha256', 'cmp').update(given).digest();
    const b = createHmac('sha256', 'cmp').update(this.tokenBytes).digest();
    return timingSafeEqual(a, b);
  }

  isAuthenticated(req: IncomingMessage): boolean {
    const header = req.headers.authorization;
    if (header?.startsWith('Bearer ')) return this.tokenMatches(header.slice(7).trim());
    const cookie = readCookie(req, SESSION_COOKIE);
    if (!cookie) return false;
    const a = Buffer.from(cookie);
    const b = Buffer.from(this.sessionValue);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  sessionCookie(): string {
    return `${SESSION_COOKIE}=${this.sessionValue}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200`;
  }
}

export function readCookie(req: IncomingMessage, name: string): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}
