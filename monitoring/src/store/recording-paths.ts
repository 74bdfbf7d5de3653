/**
 * Which access records are requests for a recording's media, and which recording: the path
 * `/archive/<stream>/<session>/[<rendition>/]<file>` (web/README.md), with a stream name, a session
 * id and a playlist or segment name (the names ingest gives them; common/src/media-layout.ts). The
 * recording is read from the path rather than from a field, so no sender or schema change is
 * needed and records stored before this existed qualify too.
 *
 * The same pattern is written three ways, one per engine, from the same parts: a JavaScript
 * RegExp (and DuckDB, whose RE2 reads it the same), and a Lucene regular expression for
 * Elasticsearch's `regexp` query (always anchored, no `(?:`, a literal `-` in a class escaped).
 * monitoring/test/recording-paths.test.ts checks the parts against isStreamName, isSessionId and
 * classifyMediaFile, and the contract suite checks both stores on the same records.
 */
const STREAM = '[a-z0-9][a-z0-9_-]{0,63}';
const SESSION = '[0-9]{8}-[0-9]{6}-[a-z0-9]{6}';
const MEDIA_FILE = '[a-z0-9][a-z0-9_-]{0,127}\\.(?:m3u8|m4s|mp4|ts|aac)';
/**
 * An optional rendition folder (`<session>/<rendition>/<file>`): a recording with a quality ladder
 * keeps each rendition's playlist and segments in its own folder, as /live/ does, and a player of
 * such a recording fetches the top (master) playlist once and everything else from there. Any
 * folder-like name, not only today's rendition names, so the rule never lags behind the ladder.
 */
const RENDITION_FOLDER = '(?:[a-z0-9][a-z0-9_-]{0,31}/)?';

/** Anchored, with the stream (group 1) and the session (group 2). JavaScript and RE2 (DuckDB). */
export const RECORDING_MEDIA_PATH_RE2 = `^/archive/(${STREAM})/(${SESSION})/${RENDITION_FOLDER}${MEDIA_FILE}$`;
export const RECORDING_MEDIA_PATH = new RegExp(RECORDING_MEDIA_PATH_RE2);

/** The whole path must match (Lucene regexps are anchored); for Elasticsearch's `regexp` query. */
export const RECORDING_MEDIA_PATH_LUCENE = `/archive/${STREAM}/${SESSION}/${RENDITION_FOLDER}${MEDIA_FILE}`
  .replaceAll('_-]', '_\\-]')
  .replaceAll('(?:', '(');

/** The first characters every such path shares (a cheap pre-filter before the pattern). */
export const ARCHIVE_PATH_PREFIX = '/archive/';

/** The recording a request path names, or null when it is not a recording's playlist or segment. */
export function recordingOfPath(path: string): { stream: string; session: string } | null {
  const match = RECORDING_MEDIA_PATH.exec(path);
  return match ? { stream: match[1]!, session: match[2]! } : null;
}
