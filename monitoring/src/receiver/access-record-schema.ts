import { isIP } from 'node:net';
import { z } from 'zod';
import { MAX_RECORDED_PATH_LENGTH, type AccessRecord } from '../../../common/src/access-record.ts';

/** What a received record must look like to be stored; anything else is rejected and counted. */
const schema = z.object({
  '@timestamp': z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'not an ISO-8601 time'),
  stream: z.string().max(64).nullable(),
  kind: z.enum(['playlist', 'segment', 'page', 'other']),
  client_ip: z.string().refine((s) => isIP(s) !== 0, 'not an IP address'),
  method: z.string().max(16),
  path: z.string().max(MAX_RECORDED_PATH_LENGTH),
  status: z.number().int().min(0).max(999),
  bytes: z.number().min(0),
  duration_ms: z.number().min(0),
  tier: z.enum(['proxy', 'web']),
  instance: z.string().max(200),
  user_agent: z.string().max(1024).catch(''),
  session_id: z.string().max(64).nullable().catch(null),
  record_id: z.string().min(1).max(200),
  backend: z.string().max(300).nullable().optional(),
  request_id: z.string().max(64).optional(),
  /** Why the proxy refused the request; absent from web records and older senders. */
  refusal: z.string().max(64).nullable().optional(),
});

export type RecordCheck = { ok: true; record: AccessRecord } | { ok: false; reason: string };

export function checkAccessRecord(raw: unknown): RecordCheck {
  const result = schema.safeParse(raw);
  if (result.success) return { ok: true, record: result.data as AccessRecord };
  return { ok: false, reason: result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
}
