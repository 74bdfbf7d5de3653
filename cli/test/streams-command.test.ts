import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { keyMatches, readRegistry } from '../../common/src/stream-registry.ts';
import { makeTempDir, REPO_ROOT } from '../../common/testing/processes.ts';

const exec = promisify(execFile);
const onair = (dataDir: string, ...args: string[]) =>
  exec(process.execPath, [path.join(REPO_ROOT, 'bin', 'onair.js'), ...args], { env: { ...process.env, DATA_DIR: dataDir } }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

test('onair streams add / list / rotate / remove through the real command', async (t) => {
  const temp = await makeTempDir('cli');
  t.after(temp.remove);
  const added = await onair(temp.dir, 'streams', 'add', 'all-hands', '--json');
  assert.equal(added.code, 0, added.stderr);
  const { stream, key } = JSON.parse(added.stdout) as { stream: string; key: string };
  assert.equal(stream, 'all-hands');
  assert.ok(keyMatches(key, (await readRegistry(temp.dir)).get('all-hands')!.keyHash));

  const human = await onair(temp.dir, 'streams', 'add', 'town-hall');
  assert.equal(human.code, 0);
  assert.match(human.stdout, /OBS Stream Key:  town-hall\?key=[A-Za-z0-9_-]{32}/);
  assert.match(human.stdout, /rtmp:\/\/<this-host>:1935\/live/);

  const dup = await onair(temp.dir, 'streams', 'add', 'town-hall');
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /already exists/);

  const list = await onair(temp.dir, 'streams', 'list', '--json');
  assert.deepEqual((JSON.parse(list.stdout) as { streams: Array<{ stream: string }> }).streams.map((s) => s.stream), ['all-hands', 'town-hall']);
  assert.ok(!list.stdout.includes(key), 'list never shows secrets');

  const rotated = await onair(temp.dir, 'streams', 'rotate', 'all-hands', '--json');
  const newKey = (JSON.parse(rotated.stdout) as { key: string }).key;
  assert.notEqual(newKey, key);
  const entry = (await readRegistry(temp.dir)).get('all-hands')!;
  assert.ok(keyMatches(newKey, entry.keyHash) && !keyMatches(key, entry.keyHash));

  assert.equal((await onair(temp.dir, 'streams', 'remove', 'all-hands')).code, 0);
  const gone = await onair(temp.dir, 'streams', 'remove', 'all-hands');
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /no stream named all-hands/);

  const bad = await onair(temp.dir, 'streams', 'add', 'Bad Name');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /invalid stream name/);
  assert.equal((await onair(temp.dir, 'streams')).code, 2);
  assert.equal((await onair(temp.dir, 'frobnicate')).code, 2);
});

test('onair streams add --ladder / ladder <stream> <spec|off> / list show the quality ladder', async (t) => {
  const temp = await makeTempDir('cli-ladder');
  t.after(temp.remove);
  const added = await onair(temp.dir, 'streams', 'add', 'town-hall', '--ladder', '360p, 720p,480p', '--json');
  assert.equal(added.code, 0, added.stderr);
  assert.equal((JSON.parse(added.stdout) as { ladder: string }).ladder, '720p,480p,360p');
  assert.equal((await readRegistry(temp.dir)).get('town-hall')!.ladder, '720p,480p,360p');
  const human = await onair(temp.dir, 'streams', 'add', 'plain');
  assert.doesNotMatch(human.stdout, /ladder/i);

  const table = await onair(temp.dir, 'streams', 'list');
  assert.match(table.stdout, /LADDER/);
  assert.match(table.stdout, /town-hall .* source \+ 720p,480p,360p/);
  assert.match(table.stdout, /plain .* off \(passthrough\)/);

  const changed = await onair(temp.dir, 'streams', 'ladder', 'town-hall', '720p,360p');
  assert.equal(changed.code, 0, changed.stderr);
  assert.match(changed.stdout, /source \+ 720p,360p, from its next publish/);
  const off = await onair(temp.dir, 'streams', 'ladder', 'town-hall', 'off', '--json');
  assert.deepEqual(JSON.parse(off.stdout), { stream: 'town-hall', ladder: 'off' });
  assert.equal((await readRegistry(temp.dir)).get('town-hall')!.ladder, undefined);
  const list = JSON.parse((await onair(temp.dir, 'streams', 'list', '--json')).stdout) as { streams: Array<{ stream: string; ladder: string }> };
  assert.deepEqual(list.streams.map((s) => [s.stream, s.ladder]), [['plain', 'off'], ['town-hall', 'off']]);

  const bad = await onair(temp.dir, 'streams', 'ladder', 'town-hall', '720p,4k');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unknown rendition "4k"/);
  const badAdd = await onair(temp.dir, 'streams', 'add', 'other', '--ladder', 'best');
  assert.equal(badAdd.code, 1);
  assert.equal((await readRegistry(temp.dir)).has('other'), false, 'nothing created with a bad ladder');
  assert.equal((await onair(temp.dir, 'streams', 'ladder', 'nobody', '360p')).code, 1);
  assert.equal((await onair(temp.dir, 'streams', 'rotate', 'plain', '--ladder', '360p')).code, 2, '--ladder only with add');
});
