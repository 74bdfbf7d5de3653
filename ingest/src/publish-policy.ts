import { isStreamName } from '../../common/src/stream-name.ts';
import { keyMatches, type StreamEntry } from '../../common/src/stream-registry.ts';
import type { PublishDecision, PublishRequest } from './rtmp/rtmp-server.ts';

/** DESIGN.md: publish to rtmp://HOST:1935/live with stream key `<stream>?key=<secret>`. */
export const PUBLISH_APP = 'live';

export type RefusalReason = 'wrong-app' | 'invalid-name' | 'unknown-stream' | 'missing-key' | 'wrong-key' | 'already-live';

/**
 * Decides whether a publish may go ahead. Pure and synchronous: the key check is a
 * constant-time comparison of hashes held in memory.
 */
export function decidePublish(
  request: PublishRequest,
  lookup: (stream: string) => StreamEntry | undefined,
  isLive: (stream: string) => boolean,
): PublishDecision & { reason?: RefusalReason } {
  if (request.app !== PUBLISH_APP) return { accept: false, reason: 'wrong-app' };
  if (!isStreamName(request.stream)) return { accept: false, reason: 'invalid-name' };
  const entry = lookup(request.stream);
  if (!entry) return { accept: false, reason: 'unknown-stream' };
  const key = request.query.key;
  if (typeof key !== 'string' || key.length === 0) return { accept: false, reason: 'missing-key' };
  if (!keyMatches(key, entry.keyHash)) return { accept: false, reason: 'wrong-key' };
  if (isLive(request.stream)) return { accept: false, reason: 'already-live' };
  return { accept: true };
}
