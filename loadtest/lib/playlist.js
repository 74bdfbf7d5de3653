// @ts-check
/**
 * HLS playlist parsing for the viewer model (RFC 8216, the subset players need to fetch media).
 *
 * Plain ES2017 JavaScript with no imports: k6 0.48 runs it as-is, and the Node runner and the unit
 * tests import the same file. No `?.`, `??`, object spread, regex lookbehind or named groups.
 */

/**
 * @typedef {{ uri: string, bandwidth: number, resolution: string | null }} Variant
 * @typedef {{ type: 'master', variants: Variant[] }} MasterPlaylist
 * @typedef {{ uri: string, duration: number, sequence: number, discontinuity: boolean, map: string | null }} Segment
 * @typedef {{ type: 'media', targetDuration: number, mediaSequence: number, endList: boolean, segments: Segment[] }} MediaPlaylist
 */

/**
 * Parses a master or media playlist. Throws an Error with a clear message when `text` is not one.
 * @param {string} text
 * @returns {MasterPlaylist | MediaPlaylist}
 */
export function parsePlaylist(text) {
  const lines = text.split(/\r?\n/);
  if (lines[0] !== '#EXTM3U') throw new Error('not an HLS playlist (no #EXTM3U on the first line)');
  if (text.indexOf('#EXT-X-STREAM-INF:') !== -1) return parseMaster(lines);
  return parseMedia(lines);
}

/** @param {string[]} lines @returns {MasterPlaylist} */
function parseMaster(lines) {
  /** @type {Variant[]} */
  const variants = [];
  /** @type {Record<string, string> | null} */
  let pending = null;
  for (const raw of lines.slice(1)) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.indexOf('#EXT-X-STREAM-INF:') === 0) {
      pending = parseAttributes(line.slice('#EXT-X-STREAM-INF:'.length));
    } else if (line.charAt(0) !== '#' && pending !== null) {
      variants.push({ uri: line, bandwidth: Number(pending.BANDWIDTH) || 0, resolution: pending.RESOLUTION || null });
      pending = null;
    }
  }
  if (variants.length === 0) throw new Error('master playlist without variants');
  return { type: 'master', variants: variants };
}

/** @param {string[]} lines @returns {MediaPlaylist} */
function parseMedia(lines) {
  let targetDuration = NaN;
  let mediaSequence = 0;
  let endList = false;
  /** @type {Segment[]} */
  const segments = [];
  /** @type {string | null} */
  let map = null;
  let duration = NaN;
  let discontinuity = false;
  for (const raw of lines.slice(1)) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.charAt(0) === '#') {
      if (line.indexOf('#EXTINF:') === 0) duration = parseFloat(line.slice(8));
      else if (line.indexOf('#EXT-X-TARGETDURATION:') === 0) targetDuration = Number(line.slice(22));
      else if (line.indexOf('#EXT-X-MEDIA-SEQUENCE:') === 0) mediaSequence = Number(line.slice(22));
      else if (line === '#EXT-X-DISCONTINUITY') discontinuity = true;
      else if (line === '#EXT-X-ENDLIST') endList = true;
      else if (line.indexOf('#EXT-X-MAP:') === 0) map = parseAttributes(line.slice(11)).URI || null;
      continue;
    }
    if (!(duration >= 0)) throw new Error('segment "' + line + '" without a valid #EXTINF duration');
    segments.push({ uri: line, duration: duration, sequence: mediaSequence + segments.length, discontinuity: discontinuity, map: map });
    duration = NaN;
    discontinuity = false;
  }
  if (!(targetDuration > 0)) throw new Error('media playlist without #EXT-X-TARGETDURATION');
  if (!(mediaSequence >= 0) || Math.floor(mediaSequence) !== mediaSequence) throw new Error('invalid #EXT-X-MEDIA-SEQUENCE');
  return { type: 'media', targetDuration: targetDuration, mediaSequence: mediaSequence, endList: endList, segments: segments };
}

/**
 * `KEY=value,KEY="quoted, value"` → { KEY: 'value', ... }.
 * @param {string} list
 * @returns {Record<string, string>}
 */
export function parseAttributes(list) {
  /** @type {Record<string, string>} */
  const out = {};
  const pattern = /([A-Z0-9-]+)=("[^"]*"|[^,]*)/g;
  let match = pattern.exec(list);
  while (match !== null) {
    const value = match[2] || '';
    out[match[1] || ''] = value.charAt(0) === '"' ? value.slice(1, -1) : value;
    match = pattern.exec(list);
  }
  return out;
}

/**
 * Resolves a playlist URI against the playlist's URL (k6 has no WHATWG URL). Handles absolute
 * URLs, root-relative and relative paths; the base's query string is not inherited (RFC 3986).
 * @param {string} base absolute http(s) URL of the playlist
 * @param {string} ref
 * @returns {string}
 */
export function resolveUrl(base, ref) {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref)) return ref;
  const origin = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]+/i.exec(base);
  if (origin === null) throw new Error('not an absolute URL: ' + base);
  if (ref.charAt(0) === '/') return origin[0] + ref;
  let basePath = base.slice(origin[0].length).split(/[?#]/)[0] || '/';
  basePath = basePath.slice(0, basePath.lastIndexOf('/') + 1);
  /** @type {string[]} */
  const out = [];
  for (const part of (basePath + ref).split('/')) {
    if (part === '..') {
      if (out.length > 1) out.pop();
    } else if (part !== '.') {
      out.push(part);
    }
  }
  return origin[0] + out.join('/');
}

/**
 * Which rendition a viewer plays: `highest` (a LAN player's ABR ends there; the capacity worst
 * case), `lowest`, or `random` (uses `random()` in [0, 1)).
 * @param {Variant[]} variants
 * @param {'highest' | 'lowest' | 'random'} policy
 * @param {() => number} random
 * @returns {Variant}
 */
export function pickVariant(variants, policy, random) {
  if (variants.length === 0) throw new Error('no variant to pick');
  const sorted = variants.slice().sort(function (a, b) { return a.bandwidth - b.bandwidth; });
  let index = sorted.length - 1;
  if (policy === 'lowest') index = 0;
  else if (policy === 'random') index = Math.min(sorted.length - 1, Math.floor(random() * sorted.length));
  return /** @type {Variant} */ (sorted[index]);
}
