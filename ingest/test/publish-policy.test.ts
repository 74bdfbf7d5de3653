import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hashStreamKey } from '../../common/src/stream-registry.ts';
import { decidePublish } from '../src/publish-policy.ts';

const entry = { keyHash: hashStreamKey('right-secret'), createdAt: '2026-01-01T00:00:00.000Z', rotatedAt: null };
const lookup = (s: string) => (s === 'team' ? entry : undefined);
const request = (over: Partial<{ app: string; stream: string; query: Record<string, string> }> = {}) => ({
  sessionId: 'x',
  app: 'live',
  stream: 'team',
  query: { key: 'right-secret' },
  clientAddress: '127.0.0.1',
  ...over,
});

test('accepts the right key for a known stream that is not live', () => {
  assert.deepEqual(decidePublish(request(), lookup, () => false), { accept: true });
});

test('refuses with a reason for every wrong case', () => {
  const reason = (r: ReturnType<typeof request>, live = false) => (decidePublish(r, lookup, () => live) as { reason: string }).reason;
  assert.equal(reason(request({ app: 'other' })), 'wrong-app');
  assert.equal(reason(request({ stream: 'Team' })), 'invalid-name');
  assert.equal(reason(request({ stream: 'ghost' })), 'unknown-stream');
  assert.equal(reason(request({ query: {} })), 'missing-key');
  assert.equal(reason(request({ query: { key: 'wrong-secret' } })), 'wrong-key');
  assert.equal(reason(request({ query: { key: 'right-secret ' } })), 'wrong-key');
  assert.equal(reason(request(), true), 'already-live');
});
