/**
 * HLS media playlists (RFC 8216, and draft-pantos-hls-rfc8216bis for Low-Latency HLS): the text
 * ingest writes and web reads. Pure functions, no I/O. One renderer and one parser, so what a
 * playlist says is written down once: ingest renders the live window and the recordings, web
 * parses the live window to hold blocking playlist reloads (`_HLS_msn`/`_HLS_part`), and ingest
 * parses what an earlier broadcast left to continue its numbering.
 *
 * Low-latency playlists (README "Low-latency HLS"):
 *   #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=<s>
 *   #EXT-X-PART-INF:PART-TARGET=<s>
 *   … the segments; the last few also list their parts (EXT-X-PART) before their EXTINF …
 *   … the open segment (being written): its DISCONTINUITY/MAP/PROGRAM-DATE-TIME and its parts so far …
 *   #EXT-X-PRELOAD-HINT:TYPE=PART,URI="<the next part>"
 *   #EXT-X-RENDITION-REPORT:… (quality ladder: where the other renditions are)
 */

export interface PlaylistPart {
  uri: string;
  /** Seconds; never above the playlist's part target. */
  duration: number;
  /** Starts with a keyframe: a player may start here (INDEPENDENT=YES). */
  independent: boolean;
}

export interface PlaylistSegment {
  uri: string;
  duration: number;
  /** The init segment (EXT-X-MAP) this media segment needs. */
  initUri: string;
  /** A timeline break (new publisher session or new muxer run) precedes this segment. */
  discontinuity: boolean;
  programDateTime: Date | null;
  /** The segment's parts, in order (low latency). Listed only for the last segments (PART_SEGMENTS). */
  parts?: readonly PlaylistPart[];
}

/** The segment still being written: what it has so far. Its media sequence number follows the last segment's. */
export interface OpenSegment {
  initUri: string;
  discontinuity: boolean;
  programDateTime: Date | null;
  parts: readonly PlaylistPart[];
}

export interface RenditionReport {
  /** The other rendition's media playlist, relative to this one (`../360p/index.m3u8`). */
  uri: string;
  lastMsn: number;
  lastPart: number;
}

export interface LowLatencyState {
  /** Seconds: the longest a part may be (EXT-X-PART-INF PART-TARGET), fixed for the playlist's life. */
  partTarget: number;
  /** Seconds a player should stay behind the end of the playlist (≥ 3 × partTarget). */
  partHoldBack: number;
  /** Null once the playlist has ended or between publisher sessions (nothing is being written). */
  open: OpenSegment | null;
  /** URI of the next part (EXT-X-PRELOAD-HINT TYPE=PART); null when nothing is being written. */
  preloadHint: string | null;
  renditionReports?: readonly RenditionReport[];
}

export interface MediaPlaylistState {
  targetDuration: number;
  mediaSequence: number;
  discontinuitySequence: number;
  segments: readonly PlaylistSegment[];
  ended: boolean;
  /** EXT-X-PLAYLIST-TYPE: EVENT for an archive (segments only ever appended); absent for the live window. */
  playlistType?: 'EVENT' | 'VOD';
  /** Low-latency HLS; absent for a classic playlist (segments only). */
  lowLatency?: LowLatencyState | null;
}

/** How many of the last complete segments list their parts (rfc8216bis §6.2.2: parts go once > 3 target durations from the end). */
export const PART_SEGMENTS = 2;

export function renderMediaPlaylist(state: MediaPlaylistState): string {
  const ll = state.lowLatency ?? null;
  const lines = [
    '#EXTM3U',
    // 10 with EXT-X-PRELOAD-HINT: what Apple's validator asks for (LL-HLS-NOTES.md, gohlslib#144).
    ll ? '#EXT-X-VERSION:10' : '#EXT-X-VERSION:7',
    ...(state.playlistType ? [`#EXT-X-PLAYLIST-TYPE:${state.playlistType}`] : []),
    `#EXT-X-TARGETDURATION:${state.targetDuration}`,
  ];
  if (ll) {
    lines.push(`#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=${seconds(ll.partHoldBack)}`, `#EXT-X-PART-INF:PART-TARGET=${seconds(ll.partTarget)}`);
  }
  lines.push(`#EXT-X-MEDIA-SEQUENCE:${state.mediaSequence}`, `#EXT-X-DISCONTINUITY-SEQUENCE:${state.discontinuitySequence}`, '#EXT-X-INDEPENDENT-SEGMENTS');
  let currentInit: string | null = null;
  const header = (segment: { discontinuity: boolean; initUri: string; programDateTime: Date | null }): void => {
    if (segment.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
    if (segment.initUri !== currentInit) {
      lines.push(`#EXT-X-MAP:URI="${segment.initUri}"`);
      currentInit = segment.initUri;
    }
    if (segment.programDateTime) lines.push(`#EXT-X-PROGRAM-DATE-TIME:${segment.programDateTime.toISOString()}`);
  };
  const partLines = (parts: readonly PlaylistPart[]): void => {
    for (const part of parts) lines.push(`#EXT-X-PART:DURATION=${seconds(part.duration)},URI="${part.uri}"${part.independent ? ',INDEPENDENT=YES' : ''}`);
  };
  const firstWithParts = state.segments.length - PART_SEGMENTS;
  state.segments.forEach((segment, index) => {
    header(segment);
    if (ll && index >= firstWithParts && segment.parts) partLines(segment.parts);
    lines.push(`#EXTINF:${segment.duration.toFixed(6)},`, segment.uri);
  });
  if (ll && !state.ended) {
    if (ll.open && ll.open.parts.length > 0) {
      header(ll.open);
      partLines(ll.open.parts);
    }
    if (ll.preloadHint) lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${ll.preloadHint}"`);
    for (const report of ll.renditionReports ?? []) lines.push(`#EXT-X-RENDITION-REPORT:URI="${report.uri}",LAST-MSN=${report.lastMsn},LAST-PART=${report.lastPart}`);
  }
  if (state.ended) lines.push('#EXT-X-ENDLIST');
  lines.push('');
  return lines.join('\n');
}

/** Seconds as playlists print them: at most 5 decimals, no trailing zeros (0.33333, 1, 1.00002). */
function seconds(value: number): string {
  return String(Math.round(value * 100_000) / 100_000);
}

export interface ParsedPart extends PlaylistPart {}

export interface ParsedSegment {
  uri: string;
  duration: number;
  discontinuity: boolean;
  initUri: string | null;
  programDateTime: Date | null;
  /** Its parts as listed (empty when the playlist does not list them). */
  parts: ParsedPart[];
}

export interface ParsedMediaPlaylist {
  version: number | null;
  targetDuration: number | null;
  mediaSequence: number;
  discontinuitySequence: number;
  segments: ParsedSegment[];
  ended: boolean;
  playlistType: 'EVENT' | 'VOD' | null;
  canBlockReload: boolean;
  partHoldBack: number | null;
  partTarget: number | null;
  /** Parts listed after the last EXTINF: the open segment's. */
  openParts: ParsedPart[];
  /** The open segment's tags (for its parts), when it has parts. */
  open: { discontinuity: boolean; initUri: string | null; programDateTime: Date | null } | null;
  preloadHint: string | null;
  renditionReports: RenditionReport[];
}

/** Reads a media playlist (ours, ffmpeg's or a recording's); unknown tags and malformed lines are skipped. */
export function parseMediaPlaylist(text: string): ParsedMediaPlaylist {
  const result: ParsedMediaPlaylist = {
    version: null,
    targetDuration: null,
    mediaSequence: 0,
    discontinuitySequence: 0,
    segments: [],
    ended: false,
    playlistType: null,
    canBlockReload: false,
    partHoldBack: null,
    partTarget: null,
    openParts: [],
    open: null,
    preloadHint: null,
    renditionReports: [],
  };
  let pendingDuration: number | null = null;
  let discontinuity = false;
  let programDateTime: Date | null = null;
  let initUri: string | null = null;
  let parts: ParsedPart[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (!line) continue;
    if (!line.startsWith('#')) {
      if (pendingDuration !== null && Number.isFinite(pendingDuration)) {
        result.segments.push({ uri: line, duration: pendingDuration, discontinuity, initUri, programDateTime, parts });
      }
      pendingDuration = null;
      discontinuity = false;
      programDateTime = null;
      parts = [];
      continue;
    }
    const colon = line.indexOf(':');
    const tag = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1);
    switch (tag) {
      case '#EXTINF':
        pendingDuration = Number.parseFloat(value);
        break;
      case '#EXT-X-VERSION':
        result.version = Number.parseInt(value, 10);
        break;
      case '#EXT-X-TARGETDURATION':
        result.targetDuration = Number.parseInt(value, 10);
        break;
      case '#EXT-X-MEDIA-SEQUENCE':
        result.mediaSequence = Number.parseInt(value, 10);
        break;
      case '#EXT-X-DISCONTINUITY-SEQUENCE':
        result.discontinuitySequence = Number.parseInt(value, 10);
        break;
      case '#EXT-X-DISCONTINUITY':
        discontinuity = true;
        break;
      case '#EXT-X-ENDLIST':
        result.ended = true;
        break;
      case '#EXT-X-PLAYLIST-TYPE':
        if (value === 'EVENT' || value === 'VOD') result.playlistType = value;
        break;
      case '#EXT-X-MAP':
        initUri = attributes(value).URI ?? null;
        break;
      case '#EXT-X-PROGRAM-DATE-TIME': {
        const date = new Date(value);
        programDateTime = Number.isNaN(date.getTime()) ? null : date;
        break;
      }
      case '#EXT-X-SERVER-CONTROL': {
        const a = attributes(value);
        result.canBlockReload = a['CAN-BLOCK-RELOAD'] === 'YES';
        result.partHoldBack = finiteOrNull(a['PART-HOLD-BACK']);
        break;
      }
      case '#EXT-X-PART-INF':
        result.partTarget = finiteOrNull(attributes(value)['PART-TARGET']);
        break;
      case '#EXT-X-PART': {
        const a = attributes(value);
        const duration = finiteOrNull(a.DURATION);
        if (a.URI && duration !== null) parts.push({ uri: a.URI, duration, independent: a.INDEPENDENT === 'YES' });
        break;
      }
      case '#EXT-X-PRELOAD-HINT': {
        const a = attributes(value);
        if (a.TYPE === 'PART' && a.URI) result.preloadHint = a.URI;
        break;
      }
      case '#EXT-X-RENDITION-REPORT': {
        const a = attributes(value);
        const lastMsn = Number.parseInt(a['LAST-MSN'] ?? '', 10);
        const lastPart = Number.parseInt(a['LAST-PART'] ?? '', 10);
        if (a.URI && Number.isInteger(lastMsn) && Number.isInteger(lastPart)) result.renditionReports.push({ uri: a.URI, lastMsn, lastPart });
        break;
      }
      default:
        break;
    }
  }
  if (parts.length > 0) {
    result.openParts = parts;
    result.open = { discontinuity, initUri, programDateTime };
  }
  return result;
}

/** `KEY=VALUE,KEY="quoted, value"` → record (quotes removed). */
function attributes(list: string): Record<string, string> {
  const out: Record<string, string> = {};
  const pattern = /([A-Z0-9-]+)=("[^"]*"|[^,]*)/g;
  for (let match = pattern.exec(list); match !== null; match = pattern.exec(list)) {
    const raw = match[2]!;
    out[match[1]!] = raw.startsWith('"') ? raw.slice(1, -1) : raw;
  }
  return out;
}

function finiteOrNull(value: string | undefined): number | null {
  if (value === undefined) return null;
  const n = Number.parseFloat(value);
  return Number.isFinite(n) ? n : null;
}

/**
 * Where a playlist has got to, for blocking reloads (`_HLS_msn`/`_HLS_part`): the media sequence
 * number of its last complete segment (mediaSequence − 1 when it has none) and how many parts of
 * the next (open) segment it lists.
 */
export interface PlaylistPosition {
  lastMsn: number;
  openParts: number;
}

export function playlistPosition(playlist: { mediaSequence: number; segments: { length: number }; openParts: { length: number } }): PlaylistPosition {
  return { lastMsn: playlist.mediaSequence + playlist.segments.length - 1, openParts: playlist.openParts.length };
}

/** Orders positions: negative when `a` is behind `b`. */
export function comparePositions(a: PlaylistPosition, b: PlaylistPosition): number {
  return a.lastMsn - b.lastMsn || a.openParts - b.openParts;
}

/** RFC 8216 §4.3.3.1: each EXTINF rounded to the nearest integer must not exceed the target duration. */
export function fitsTargetDuration(duration: number, targetDuration: number): boolean {
  return Math.round(duration) <= targetDuration;
}

/** The target duration a playlist keeps for its whole life, chosen from its first segment. */
export function chooseTargetDuration(firstSegmentSeconds: number, minimumSeconds: number): number {
  return Math.max(1, Math.ceil(minimumSeconds), Math.round(firstSegmentSeconds));
}
