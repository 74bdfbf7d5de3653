import { createHash, timingSafeEqual } from 'node:crypto';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * A constant-time check of presented secrets against `secret` (ops token, session value).
 * Digests are compared, so they have equal length whatever was sent and the comparison time
 * says nothing about the secret; the expected digest is computed once.
 */
export function secretMatcher(secret: string): (candidate: string) => boolean {
  const expected = digest(secret);
  return (candidate) => timingSafeEqual(digest(candidate), expected);
}
