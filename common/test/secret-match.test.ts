import assert from 'node:assert/strict';
import { test } from 'node:test';
import { secretMatcher } from '../src/secret-match.ts';

test('matches exactly the secret, whatever the length of what was sent', () => {
  const matches = secretMatcher('correct-horse-battery');
  assert.ok(matches('correct-horse-battery'));
  for (const wrong of ['', 'correct-horse-batter', 'correct-horse-battery ', 'Correct-horse-battery', 'x'.repeat(10_000)]) assert.ok(!matches(wrong), wrong.slice(0, 30));
});
