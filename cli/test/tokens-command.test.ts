import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { playbackTokenVerifier } from '../../common/src/playback-token.ts';
import { REPO_ROOT } from '../../common/testing/processes.ts';
import { parseTtl, tokensCommand } from '../src/tokens-command.ts';

const SECRET = 'cli-test-playback-secret-42';
const NOW_MS = 1_800_000_000_000;

async function run(args: string[], env: NodeJS.ProcessEnv = { PLAYBACK_TOKEN_SECRET: SECRET }): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await tokensCommand(args, { out: (l) => out.push(l), err: (l) => err.push(l) }, env, () => NOW_MS);
  return { code, out, err };
}

test('--ttl: seconds, minutes, hours, days; nothing else', () => {
  assert.equal(parseTtl('90'), 90);
  assert.equal(parseTtl('90s'), 90);
  assert.equal(parseTtl('15m'), 900);
  assert.equal(parseTtl('2h'), 7200);
  assert.equal(parseTtl('7d'), 604_800);
  for (const bad of ['', '0', '0h', '2w', '-1h', '1.5h', 'h', '401d', '2 h']) assert.equal(parseTtl(bad), null, bad);
});

test('tokens sign prints a watch link whose token opens that stream until the TTL ends', async () => {
  const { code, out, err } = await run(['sign', 'town-hall', '--ttl', '2h', '--base-url', 'https://tv.example.org/onair']);
  assert.equal(code, 0, err.join('\n'));
  assert.equal(out.length, 1);
  const url = new URL(out[0]!);
  assert.equal(`${url.origin}${url.pathname}`, 'https://tv.example.org/onair/watch/town-hall');
  const token = url.searchParams.get('token')!;
  const verify = playbackTokenVerifier(SECRET);
  const now = NOW_MS / 1000;
  assert.deepEqual(verify(token, 'town-hall', now), { ok: true, expiresAt: now + 7200 });
  assert.deepEqual(verify(token, 'town-hall', now + 7200), { ok: false, reason: 'token-expired' });
  assert.deepEqual(verify(token, 'other', now), { ok: false, reason: 'token-invalid' });
  assert.match(err.join('\n'), /valid for "town-hall" until 2027-01-15T10:00:00\.000Z/);

  const json = await run(['sign', 'town-hall', '--json', '--base-url', 'http://10.0.0.5:8080']);
  const parsed = JSON.parse(json.out[0]!) as { stream: string; url: string; token: string; expiresAt: string };
  assert.equal(parsed.stream, 'town-hall');
  assert.equal(parsed.url, `http://10.0.0.5:8080/watch/town-hall?token=${parsed.token}`);
  assert.equal(parsed.expiresAt, new Date(NOW_MS + 24 * 3600 * 1000).toISOString(), 'default TTL: 24 h');

  const defaultBase = await run(['sign', 'demo'], { PLAYBACK_TOKEN_SECRET: SECRET, PROXY_PORT: '9443' });
  assert.ok(defaultBase.out[0]!.startsWith(`http://${os.hostname()}:9443/watch/demo?token=`), defaultBase.out[0]);
});

test('tokens sign fails clearly without the secret, with a short one, a bad stream, TTL or URL', async () => {
  const missing = await run(['sign', 'demo'], {});
  assert.equal(missing.code, 2);
  assert.match(missing.err.join('\n'), /PLAYBACK_TOKEN_SECRET is not set/);
  assert.deepEqual(missing.out, []);
  const blank = await run(['sign', 'demo'], { PLAYBACK_TOKEN_SECRET: '   ' });
  assert.equal(blank.code, 2);
  const short = await run(['sign', 'demo'], { PLAYBACK_TOKEN_SECRET: 'short' });
  assert.equal(short.code, 2);
  assert.match(short.err.join('\n'), /too short: at least 16 characters/);
  const badName = await run(['sign', 'Town Hall']);
  assert.equal(badName.code, 1);
  assert.match(badName.err.join('\n'), /invalid stream name/);
  assert.equal((await run(['sign', 'demo', '--ttl', '2w'])).code, 2);
  assert.equal((await run(['sign', 'demo', '--ttl'])).code, 2);
  assert.equal((await run(['sign', 'demo', '--base-url', 'ftp://x'])).code, 2);
  assert.equal((await run(['sign', 'demo', '--frobnicate'])).code, 2);
  assert.equal((await run(['sign'])).code, 2);
  assert.equal((await run(['verify', 'demo'])).code, 2);
  assert.equal((await run([])).code, 2);
});

test('the real command: `onair tokens sign` through bin/onair.js', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(REPO_ROOT, 'bin', 'onair.js'), 'tokens', 'sign', 'demo', '--ttl', '10m', '--base-url', 'http://127.0.0.1:8080'], {
    env: { ...process.env, PLAYBACK_TOKEN_SECRET: SECRET },
  });
  assert.match(stdout.trim(), /^http:\/\/127\.0\.0\.1:8080\/watch\/demo\?token=\d+\.[A-Za-z0-9_-]{43}$/);
  const failed = await promisify(execFile)(process.execPath, [path.join(REPO_ROOT, 'bin', 'onair.js'), 'tokens', 'sign', 'demo'], {
    env: { ...process.env, PLAYBACK_TOKEN_SECRET: '' },
  }).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(failed.code, 2);
  assert.match(failed.stderr, /PLAYBACK_TOKEN_SECRET is not set/);
});
