import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MIN_PLAYBACK_SECRET_LENGTH, playbackTokenVerifier, signPlaybackToken } from '../src/playback-token.ts';

const SECRET = 'a-test-secret-of-enough-length';
const NOW = 1_800_000_000;

test('a token opens its stream until it expires', () => {
  const verify = playbackTokenVerifier(SECRET);
  const token = signPlaybackToken(SECRET, 'town-hall', NOW + 3600);
  assert.match(token, /^1800003600\.[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(verify(token, 'town-hall', NOW), { ok: true, expiresAt: NOW + 3600 });
  assert.deepEqual(verify(token, 'town-hall', NOW + 3599), { ok: true, expiresAt: NOW + 3600 });
  // Expiry is exclusive: at the expiry second it no longer opens anything.
  assert.deepEqual(verify(token, 'town-hall', NOW + 3600), { ok: false, reason: 'token-expired' });
});

test('another stream, another secret, a changed expiry or MAC, or garbage: token-invalid', () => {
  const verify = playbackTokenVerifier(SECRET);
  const token = signPlaybackToken(SECRET, 'town-hall', NOW + 3600);
  const [expiry, mac] = token.split('.') as [string, string];
  const invalid = { ok: false, reason: 'token-invalid' };
  assert.deepEqual(verify(token, 'all-hands', NOW), invalid, 'signed for another stream');
  assert.deepEqual(verify(signPlaybackToken('another-secret-0123456789', 'town-hall', NOW + 3600), 'town-hall', NOW), invalid);
  assert.deepEqual(verify(`${Number(expiry) + 86_400}.${mac}`, 'town-hall', NOW), invalid, 'expiry moved');
  const flipped = mac.slice(0, 10) + (mac[10] === 'A' ? 'B' : 'A') + mac.slice(11);
  assert.deepEqual(verify(`${expiry}.${flipped}`, 'town-hall', NOW), invalid, 'one MAC character changed');
  // The last base64url character carries 2 unused bits: other spellings of the same MAC are refused too.
  const last = mac[42]!;
  const alias = 'AEIMQUYcgkosw048'.includes(last) ? String.fromCharCode(last.charCodeAt(0) + 1) : last;
  if (alias !== last) assert.deepEqual(verify(`${expiry}.${mac.slice(0, 42)}${alias}`, 'town-hall', NOW), invalid, 'non-canonical base64url');
  for (const junk of ['', '.', 'abc', `${expiry}.`, `.${mac}`, `${expiry}.${mac}x`, `${expiry}.${mac.slice(1)}`, `-1.${mac}`, `1e9.${mac}`, `${expiry} .${mac}`, `${'9'.repeat(13)}.${mac}`]) {
    assert.deepEqual(verify(junk, 'town-hall', NOW), invalid, JSON.stringify(junk));
  }
  // An expired forgery is "invalid", not "expired": nothing is said about tokens we did not sign.
  assert.deepEqual(verify(`${NOW - 10}.${mac}`, 'town-hall', NOW), invalid);
});

test('secrets shorter than the minimum are refused', () => {
  assert.throws(() => playbackTokenVerifier('x'.repeat(MIN_PLAYBACK_SECRET_LENGTH - 1)), RangeError);
  assert.throws(() => signPlaybackToken('short', 'demo', NOW), RangeError);
  assert.throws(() => signPlaybackToken(SECRET, 'demo', 1.5), RangeError);
});
