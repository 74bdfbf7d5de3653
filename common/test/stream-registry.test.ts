import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { makeTempDir } from '../testing/processes.ts';
import { addStream, hashStreamKey, keyMatches, readRegistry, registryFile, removeStream, rotateStreamKey, StreamRegistryError } from '../src/stream-registry.ts';

test('add, rotate and remove streams; only hashes are stored', async (t) => {
  const temp = await makeTempDir('registry');
  t.after(temp.remove);
  const key = await addStream(temp.dir, 'town-hall');
  assert.match(key, /^[A-Za-z0-9_-]{32}$/);
  const stored = await readFile(registryFile(temp.dir), 'utf8');
  assert.ok(!stored.includes(key), 'the secret itself is never stored');
  let entry = (await readRegistry(temp.dir)).get('town-hall')!;
  assert.ok(keyMatches(key, entry.keyHash));
  assert.ok(!keyMatches(`${key}x`, entry.keyHash));
  assert.ok(!keyMatches('', entry.keyHash));

  await assert.rejects(addStream(temp.dir, 'town-hall'), (err: StreamRegistryError) => err.code === 'ONAIR_STREAM_EXISTS');
  const rotated = await rotateStreamKey(temp.dir, 'town-hall');
  assert.notEqual(rotated, key);
  entry = (await readRegistry(temp.dir)).get('town-hall')!;
  assert.ok(keyMatches(rotated, entry.keyHash));
  assert.ok(!keyMatches(key, entry.keyHash), 'the old secret stops working');
  assert.ok(entry.rotatedAt);

  await removeStream(temp.dir, 'town-hall');
  assert.equal((await readRegistry(temp.dir)).size, 0);
  await assert.rejects(removeStream(temp.dir, 'town-hall'), (err: StreamRegistryError) => err.code === 'ONAIR_STREAM_UNKNOWN');
  await assert.rejects(rotateStreamKey(temp.dir, 'ghost'), (err: StreamRegistryError) => err.code === 'ONAIR_STREAM_UNKNOWN');
});

test('invalid names are refused with a clear message', async (t) => {
  const temp = await makeTempDir('registry');
  t.after(temp.remove);
  for (const bad of ['', 'Upper', '-lead', 'a/b', '../x', 'a'.repeat(65), 'sp ace']) {
    await assert.rejects(addStream(temp.dir, bad), (err: StreamRegistryError) => err.code === 'ONAIR_STREAM_NAME_INVALID' && err.message.includes('invalid stream name'));
  }
});

test('a corrupt registry is reported, not silently emptied', async (t) => {
  const temp = await makeTempDir('registry');
  t.after(temp.remove);
  await writeFile(registryFile(temp.dir), '{"version":1,"streams":{"x":{"keyHash":"nope"}}}');
  await assert.rejects(readRegistry(temp.dir), (err: StreamRegistryError) => err.code === 'ONAIR_REGISTRY_CORRUPT');
  assert.equal(hashStreamKey('a').length, 'sha256:'.length + 64);
});
