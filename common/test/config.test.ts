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

test('never echoes the value of a credential, only its length', () => {
  const schema = z.object({ OPS_TOKEN: z.string().min(12), PLAYBACK_TOKEN_SECRET: z.string().min(16), ELASTIC_PASSWORD: z.string().min(8), TLS_KEY_FILE: z.string().min(100), MONKEY: z.string().min(9) });
  const err = (() => {
    try {
      parseEnv('svc', schema, { OPS_TOKEN: 'hunter2', PLAYBACK_TOKEN_SECRET: 'abc', ELASTIC_PASSWORD: 'pw', TLS_KEY_FILE: '/k.pem', MONKEY: 'banana' });
    } catch (e) {
      return e as ConfigError;
    }
    return assert.fail('should throw');
  })();
  for (const secret of ['hunter2', '"abc"', '"pw"']) assert.ok(!err.message.includes(secret), `${secret} is not shown`);
  assert.match(err.message, /TLS_KEY_FILE: .*\(got "\/k\.pem"\)/, 'a path to a key file is not the key');
  assert.match(err.message, /OPS_TOKEN: .*\(got 7 characters\)/);
  assert.match(err.message, /MONKEY: .*\(got "banana"\)/, 'an ordinary variable still shows its value');
});
