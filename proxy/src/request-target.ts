import type { IncomingMessage } from 'node:http';
import type { Refusal } from './refusals.ts';

/**
 * What the proxy refuses in a request's method and target before any backend sees it. The web
 * replicas validate their own paths too (web/src/media-path.ts); this is the edge's share, so that
 * monitoring and anything added behind the proxy later get the same protection.
 */

/** Any of these makes the path worth a closer look; a plain path is cleared by this one test. */
const SUSPICIOUS = /[%\\\x00-\x20\x7f-\uffff]|\/\/|\/\.\.?(?:\/|$)/;
const DOT_SEGMENT = /(?:^|\/)\.\.?(?:\/|$)/;
const BAD_DECODED = /[\\\x00-\x1f\x7f]|\/\//;

/**
 * True when the path (no query) contains a dot-segment, a backslash, an empty segment, a control
 * or non-ASCII byte, or percent-encoding that hides one of these: an encoded separator (`%2f`,
 * `%5c`), an encoded dot-segment (`%2e%2e`), double encoding (`%252e`), NUL (`%00`) or invalid
 * UTF-8 such as the overlong `%c0%ae`. No legitimate onair URL needs any of them (names are
 * [a-z0-9_.-]), so refusing is safe and leaves nothing for a backend to decode differently.
 */
export function isBadPath(path: string): boolean {
  if (!SUSPICIOUS.test(path)) return false;
  if (/[\\\x00-\x20\x7f-\uffff]|\/\//.test(path) || DOT_SEGMENT.test(path)) return true;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return true; // a stray %, or bytes that are not UTF-8 (overlong encodings)
  }
  if (decoded.includes('%')) return true; // double encoding
  if (countSlashes(decoded) !== countSlashes(path)) return true; // an encoded "/" would move a segment boundary
  return BAD_DECODED.test(decoded) || DOT_SEGMENT.test(decoded);
}

function countSlashes(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 47) n++;
  return n;
}

function isAllowedMethod(method: string | undefined): boolean {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'POST':
    case 'PUT':
    case 'DELETE':
    case 'PATCH':
    case 'OPTIONS':
      return true;
    default:
      return false;
  }
}

/**
 * The request line and Host, in the order a client would want to hear about them: too long (414),
 * not origin-form (`GET http://evil/`, `OPTIONS *`) or HTTP/1.1 without Host (400), a method we do
 * not relay (405), a path that tries to escape (400). null: fine.
 */
export function requestTargetProblem(req: IncomingMessage, url: string, path: string, maxUrlBytes: number): Refusal | null {
  // The request line is latin1 text: one character per byte.
  if (maxUrlBytes > 0 && url.length > maxUrlBytes) return 'uri-too-long';
  if (path.charCodeAt(0) !== 47 /* "/" */) return 'bad-request';
  if (req.headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor === 1) return 'bad-request';
  if (!isAllowedMethod(req.method)) return 'method-not-allowed';
  if (isBadPath(path)) return 'bad-path';
  return null;
}
