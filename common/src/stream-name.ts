/** DESIGN.md: a stream name is `[a-z0-9][a-z0-9_-]{0,63}`. It is used in paths, so it is validated everywhere. */
export const STREAM_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export function isStreamName(value: unknown): value is string {
  return typeof value === 'string' && STREAM_NAME_PATTERN.test(value);
}
