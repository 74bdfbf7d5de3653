import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from './atomic-file.ts';
import { formatLadderSpec, LadderSpecError, parseLadderSpec } from './ladder-spec.ts';
import { isStreamName } from './stream-name.ts';

/**
 * The stream registry: which stream names exist and a hash of each one's secret.
 * Lives in DATA_DIR/streams.json; written by the CLI (atomically), read by ingest.
 *
 * Secrets are 192-bit random tokens, so a fast hash (SHA-256) is enough — a slow KDF only
 * helps against guessable passwords — and it keeps the check synchronous, which
 * node-media-server's publish hook requires.
 */
const entrySchema = z.object({
  keyHash: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  createdAt: z.string(),
  rotatedAt: z.string().nullable(),
  /** Quality ladder in canonical form ("720p,480p,360p"); absent = passthrough only. Applies at the next publish. */
  ladder: z
    .string()
    .optional()
    .refine((spec) => spec === undefined || isValidLadder(spec), { message: 'not a valid ladder (e.g. "720p,480p,360p")' }),
});
const fileSchema = z.object({ version: z.literal(1), streams: z.record(z.string(), entrySchema) });
export type StreamEntry = z.infer<typeof entrySchema>;
type RegistryFile = z.infer<typeof fileSchema>;

export class StreamRegistryError extends Error {
  constructor(
    readonly code: 'ONAIR_STREAM_EXISTS' | 'ONAIR_STREAM_UNKNOWN' | 'ONAIR_STREAM_NAME_INVALID' | 'ONAIR_REGISTRY_CORRUPT' | 'ONAIR_LADDER_INVALID',
    message: string,
  ) {
    super(message);
    this.name = 'StreamRegistryError';
  }
}

function isValidLadder(spec: string): boolean {
  try {
    parseLadderSpec(spec);
    return true;
  } catch {
    return false;
  }
}

export function registryFile(dataDir: string): string {
  return path.join(dataDir, 'streams.json');
}

export function hashStreamKey(key: string): string {
  return `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}

export function generateStreamKey(): string {
  return randomBytes(24).toString('base64url');
}

/** Constant-time comparison of a presented key against a stored hash. */
export function keyMatches(presented: string, keyHash: string): boolean {
  const a = Buffer.from(hashStreamKey(presented), 'utf8');
  const b = Buffer.from(keyHash, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function readRegistry(dataDir: string): Promise<Map<string, StreamEntry>> {
  let raw: string;
  try {
    raw = await readFile(registryFile(dataDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  return parseRegistry(raw, registryFile(dataDir));
}

/** Parses the registry file's text (shared by the async reader and ingest's synchronous re-check). */
export function parseRegistry(raw: string, file: string): Map<string, StreamEntry> {
  let parsed: RegistryFile;
  try {
    parsed = fileSchema.parse(JSON.parse(raw));
  } catch (err) {
    throw new StreamRegistryError('ONAIR_REGISTRY_CORRUPT', `${file} is not a valid stream registry: ${(err as Error).message}`);
  }
  return new Map(Object.entries(parsed.streams).filter(([name]) => isStreamName(name)));
}

async function writeRegistry(dataDir: string, streams: Map<string, StreamEntry>): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const sorted = Object.fromEntries([...streams.entries()].sort(([a], [b]) => a.localeCompare(b)));
  await writeFileAtomic(registryFile(dataDir), `${JSON.stringify({ version: 1, streams: sorted }, null, 2)}\n`);
}

function assertName(name: string): void {
  if (!isStreamName(name)) {
    throw new StreamRegistryError('ONAIR_STREAM_NAME_INVALID', `invalid stream name ${JSON.stringify(name)}: use 1-64 of a-z 0-9 _ - starting with a letter or digit`);
  }
}

/**
 * Canonical form of an operator's ladder ("480p, 720p" -> "720p,480p"), undefined for none ("off").
 * Throws StreamRegistryError ONAIR_LADDER_INVALID with the parser's explanation.
 */
export function canonicalLadder(spec: string): string | undefined {
  try {
    const ladder = parseLadderSpec(spec);
    return ladder.length === 0 ? undefined : formatLadderSpec(ladder);
  } catch (err) {
    if (err instanceof LadderSpecError) throw new StreamRegistryError('ONAIR_LADDER_INVALID', err.message);
    throw err;
  }
}

/** Creates a stream and returns its secret (the only time it is ever available in clear). */
export async function addStream(dataDir: string, name: string, now = new Date(), options: { ladder?: string } = {}): Promise<string> {
  assertName(name);
  const ladder = options.ladder === undefined ? undefined : canonicalLadder(options.ladder);
  const streams = await readRegistry(dataDir);
  if (streams.has(name)) throw new StreamRegistryError('ONAIR_STREAM_EXISTS', `stream ${name} already exists (use rotate for a new secret)`);
  const key = generateStreamKey();
  streams.set(name, { keyHash: hashStreamKey(key), createdAt: now.toISOString(), rotatedAt: null, ...(ladder ? { ladder } : {}) });
  await writeRegistry(dataDir, streams);
  return key;
}

export async function rotateStreamKey(dataDir: string, name: string, now = new Date()): Promise<string> {
  assertName(name);
  const streams = await readRegistry(dataDir);
  const entry = streams.get(name);
  if (!entry) throw new StreamRegistryError('ONAIR_STREAM_UNKNOWN', `no stream named ${name}`);
  const key = generateStreamKey();
  streams.set(name, { ...entry, keyHash: hashStreamKey(key), rotatedAt: now.toISOString() });
  await writeRegistry(dataDir, streams);
  return key;
}

/** Sets (or with "off", removes) a stream's quality ladder; returns the stored canonical form or undefined. */
export async function setStreamLadder(dataDir: string, name: string, spec: string): Promise<string | undefined> {
  assertName(name);
  const ladder = canonicalLadder(spec);
  const streams = await readRegistry(dataDir);
  const entry = streams.get(name);
  if (!entry) throw new StreamRegistryError('ONAIR_STREAM_UNKNOWN', `no stream named ${name}`);
  const { ladder: _previous, ...rest } = entry;
  streams.set(name, ladder ? { ...rest, ladder } : rest);
  await writeRegistry(dataDir, streams);
  return ladder;
}

export async function removeStream(dataDir: string, name: string): Promise<void> {
  assertName(name);
  const streams = await readRegistry(dataDir);
  if (!streams.delete(name)) throw new StreamRegistryError('ONAIR_STREAM_UNKNOWN', `no stream named ${name}`);
  await writeRegistry(dataDir, streams);
}
