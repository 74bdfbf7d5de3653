/**
 * Ops authentication: `Authorization: Bearer <OPS_TOKEN>` for API clients, or, for the
 * dashboard in a browser, a session cookie obtained by posting the token to /monitor/login.
 * The cookie holds an HMAC of the token, not the token: it stops working when the token changes.
 */
import { createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { secretMatcher } from '../../../common/src/secret-match.ts';

export const SESSION_COOKIE = 'onair_ops';

export class OpsAuth {
  readonly sessionValue: string;
  readonly tokenMatches: (candidate: string) => boolean;
  private readonly sessionMatches: (candidate: string) => boolean;

  constructor(token: string) {
    this.sessionValue = createHmac('sha256', token).update('onair ops session v1').digest('base64url');
    this.tokenMatches = secretMatcher(token);
    this.sessionMatches = secretMatcher(this.sessionValue);
  }

  isAuthenticated(req: IncomingMessage): boolean {
    const header = req.headers.authorization;
    if (header?.startsWith('Bearer ')) return this.tokenMatches(header.slice(7).trim());
    const cookie = readCookie(req, SESSION_COOKIE);
    return cookie !== null && this.sessionMatches(cookie);
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
