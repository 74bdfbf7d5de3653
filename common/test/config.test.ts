import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { ConfigError, env, parseEnv } from '../src/config.ts';

test('reports every bad variable by name at once', () => {
  const schema = z.object({ PORT: env.port(80), FLAG: env.bool(false), NAME: z.string().min(1) });
  assert.deepEqual(parseEnv('svc', schema, { NAME: 'x' }), { PORT: 80, FLAG: false, NAME: 'x' });
  assert.deepEqual(parseEnv('svc', schema, { NAME: 'x', PORT: '8080', FLAG: 'yes' }), { PORT: 8080, FLAG: true, NAME: 'x' });
  try {
    parseEnv('svc', schema, { PORT: '99999', FLAG: 'maybe' });
    assert.fail('should throw');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.problems.length, 3);
    assert.match(err.message, /svc: invalid configuration/);
    assert.match(err.message, /PORT: .*\(got "99999"\)/);
    assert.match(err.message, /FLAG: .*\(got "maybe"\)/);
    assert.match(err.message, /NAME: .*\(unset\)/);
  }
});
