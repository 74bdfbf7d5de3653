import { randomUUID } from 'node:crypto';

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export function isValidRequestId(value: unknown): value is string {
  return typeof value === 'string' && REQUEST_ID_PATTERN.test(value);
}

/** Keeps a well-formed incoming X-Request-Id (so a trace spans tiers), otherwise makes a new one. */
export function resolveRequestId(incoming: string | string[] | undefined): string {
  return isValidRequestId(incoming) ? incoming : randomUUID();
}
