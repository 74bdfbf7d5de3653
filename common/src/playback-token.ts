import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';

/**
 * Signed, expiring playback tokens: `<expiry, unix seconds>.<base64url HMAC-SHA256>` over the
 * stream name and the expiry. A token opens one stream until its expiry; nothing else is encoded
 * (no viewer identity), so it can be minted offline by anyone holding PLAYBACK_TOKEN_SECRET
 * (`onair tokens sign`) and checked by the proxy without any state.
 */

/** Refusal reasons of a token check, as they appear in access records and metrics. */
export type PlaybackTokenFailure = 'token-invalid' | 'token-expired';
export type PlaybackTokenCheck = { ok: true; expiresAt: number } | { ok: false; reason: PlaybackTokenFailure };

/** Short secrets can be guessed offline from one token; 16 characters is the floor, 32+ random is advised. */
export const MIN_PLAYBACK_SECRET_LENGTH = 16;

/** Up to 12 expiry digits (year 33658) and exactly 43 base64url characters (32 bytes of MAC). */
const TOKEN_PATTERN = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/;

/** What is signed: a version/purpose prefix (no other HMAC of this secret can pass as a token), stream, expiry. */
function signedText(stream: string, expiresAt: number): string {
  return `onair-playback-v1\n${stream}\n${expiresAt}`;
}

function mac(key: KeyObject, stream: string, expiresAt: number): Buffer {
  return createHmac('sha256', key).update(signedText(stream, expiresAt), 'utf8').digest();
}

function keyOf(secret: string): KeyObject {
  if (secret.length < MIN_PLAYBACK_SECRET_LENGTH) throw new RangeError(`the playback token secret must have at least ${MIN_PLAYBACK_SECRET_LENGTH} characters`);
  return createSecretKey(Buffer.from(secret, 'utf8'));
}

/** A token for `stream`, valid until `expiresAt` (unix seconds, an integer). */
export function signPlaybackToken(secret: string, stream: string, expiresAt: number): string {
  if (!Number.isSafeInteger(expiresAt) || expiresAt < 0 || expiresAt > 999_999_999_999) throw new RangeError(`bad expiry ${expiresAt}`);
  return `${expiresAt}.${mac(keyOf(secret), stream, expiresAt).toString('base64url')}`;
}

/**
 * A checker bound to one secret (the key is prepared once, not per request). A token for another
 * stream fails as `token-invalid` (its MAC does not match); an authentic token past its expiry as
 * `token-expired`. The MAC is compared in constant time, and before the expiry is looked at, so a
 * forged token never learns whether its expiry would have passed.
 */
export function playbackTokenVerifier(secret: string): (token: string, stream: string, nowSeconds: number) => PlaybackTokenCheck {
  const key = keyOf(secret);
  return (token, stream, nowSeconds) => {
    const parts = TOKEN_PATTERN.exec(token);
    if (parts === null) return { ok: false, reason: 'token-invalid' };
    const expiresAt = Number(parts[1]);
    // Compared as text (both exactly 43 bytes): decoding would accept 4 spellings of the last character.
    const presented = Buffer.from(parts[2]!, 'latin1');
    const expected = Buffer.from(mac(key, stream, expiresAt).toString('base64url'), 'latin1');
    if (!timingSafeEqual(presented, expected)) return { ok: false, reason: 'token-invalid' };
    if (expiresAt <= nowSeconds) return { ok: false, reason: 'token-expired' };
    return { ok: true, expiresAt };
  };
}
