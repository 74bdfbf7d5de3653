import os from 'node:os';
import { MIN_PLAYBACK_SECRET_LENGTH, signPlaybackToken } from '../../common/src/playback-token.ts';
import { isStreamName } from '../../common/src/stream-name.ts';
import { isUploadId } from '../../common/src/upload-layout.ts';
import type { CommandIO } from './streams-command.ts';

const USAGE = `usage: onair tokens sign <stream> [--ttl 24h] [--base-url http://host:8080] [--json]
  prints a watch link that opens <stream> (or, with upload:<id>, an on-demand upload) until the token expires (the proxy's
  PLAYBACK_TOKEN_SECRET must be set in the environment: the same value the proxy has)
  --ttl       lifetime: a number with s, m, h or d (default 24h, at most 400d); cover the whole broadcast
  --base-url  the address viewers use (default http://<this host>:\${PROXY_PORT:-8080})`;

const DEFAULT_TTL_SECONDS = 24 * 3600;
const MAX_TTL_SECONDS = 400 * 24 * 3600;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** "90", "90s", "15m", "2h", "7d" → seconds; null when not that shape or out of range. */
export function parseTtl(text: string): number | null {
  const match = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  if (match === null) return null;
  const seconds = Number(match[1]) * UNIT_SECONDS[match[2] || 's']!;
  return seconds >= 1 && seconds <= MAX_TTL_SECONDS ? seconds : null;
}

/** `onair tokens sign …`: mints a playback link. Returns the process exit code. */
export async function tokensCommand(args: string[], io: CommandIO, env: NodeJS.ProcessEnv = process.env, now: () => number = Date.now): Promise<number> {
  const positional: string[] = [];
  let ttl = DEFAULT_TTL_SECONDS;
  let baseUrl: string | null = null;
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--json') json = true;
    else if (arg === '--ttl' || arg === '--base-url') {
      const value = args[++i];
      if (value === undefined) return usage(io, `${arg} needs a value`);
      if (arg === '--ttl') {
        const parsed = parseTtl(value);
        if (parsed === null) return usage(io, `--ttl ${value}: expected a number with s, m, h or d, from 1s to 400d (e.g. 2h)`);
        ttl = parsed;
      } else baseUrl = value;
    } else if (arg.startsWith('--')) return usage(io, `unknown option ${arg}`);
    else positional.push(arg);
  }
  const [verb, stream, ...rest] = positional;
  if (verb !== 'sign' || stream === undefined || rest.length > 0) return usage(io);
  // `upload:<id>` signs a link to an on-demand upload (/ondemand/<id>) instead of a stream.
  const uploadId = stream.startsWith('upload:') ? stream.slice('upload:'.length) : null;
  if (uploadId !== null ? !isUploadId(uploadId) : !isStreamName(stream)) {
    io.err(`onair: invalid stream name "${stream}" (expected [a-z0-9][a-z0-9_-]{0,63}, or upload:<upload id>)`);
    return 1;
  }
  const secret = env.PLAYBACK_TOKEN_SECRET?.trim() ?? '';
  if (secret === '') {
    io.err('onair: PLAYBACK_TOKEN_SECRET is not set. Set it to the proxy\'s secret (the proxy requires tokens only when it has one), e.g.\n  PLAYBACK_TOKEN_SECRET=… onair tokens sign ' + stream);
    return 2;
  }
  if (secret.length < MIN_PLAYBACK_SECRET_LENGTH) {
    io.err(`onair: PLAYBACK_TOKEN_SECRET is too short: at least ${MIN_PLAYBACK_SECRET_LENGTH} characters (the proxy refuses shorter ones too)`);
    return 2;
  }
  let base: URL;
  try {
    base = new URL(baseUrl ?? `http://${os.hostname()}:${env.PROXY_PORT || '8080'}`);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    return usage(io, `--base-url ${baseUrl}: expected an http:// or https:// URL`);
  }
  const expiresAt = Math.floor(now() / 1000) + ttl;
  const token = signPlaybackToken(secret, stream, expiresAt);
  const url = new URL(uploadId !== null ? `ondemand/${uploadId}` : `watch/${stream}`, base.href.endsWith('/') ? base.href : `${base.href}/`);
  url.searchParams.set('token', token);
  const expires = new Date(expiresAt * 1000).toISOString();
  if (json) io.out(JSON.stringify({ stream, url: url.href, token, expiresAt: expires }));
  else {
    io.out(url.href);
    io.err(`valid for "${stream}" until ${expires}; anyone with the link can watch until then`);
  }
  return 0;
}

function usage(io: CommandIO, problem?: string): number {
  io.err(problem ? `onair tokens: ${problem}\n${USAGE}` : USAGE);
  return 2;
}
