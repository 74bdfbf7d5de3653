/**
 * HLS media playlists (RFC 8216): parsing what ffmpeg writes, and rendering the public playlist.
 * Pure functions, no I/O.
 */

export interface ParsedSegment {
  uri: string;
  duration: number;
  discontinuity: boolean;
}

export interface ParsedMediaPlaylist {
  targetDuration: number | null;
  mediaSequence: number;
  discontinuitySequence: number;
  segments: ParsedSegment[];
  ended: boolean;
}

export function parseMediaPlaylist(text: string): ParsedMediaPlaylist {
  const result: ParsedMediaPlaylist = { targetDuration: null, mediaSequence: 0, discontinuitySequence: 0, segments: [], ended: false };
  let pendingDuration: number | null = null;
  let pendingDiscontinuity = false;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      if (line.startsWith('#EXTINF:')) pendingDuration = Number.parseFloat(line.slice(8));
      else if (line.startsWith('#EXT-X-TARGETDURATION:')) result.targetDuration = Number.parseInt(line.slice(22), 10);
      else if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) result.mediaSequence = Number.parseInt(line.slice(22), 10);
      else if (line.startsWith('#EXT-X-DISCONTINUITY-SEQUENCE:')) result.discontinuitySequence = Number.parseInt(line.slice(30), 10);
      else if (line === '#EXT-X-DISCONTINUITY') pendingDiscontinuity = true;
      else if (line === '#EXT-X-ENDLIST') result.ended = true;
      continue;
    }
    if (pendingDuration !== null && Number.isFinite(pendingDuration)) {
      result.segments.push({ uri: line, duration: pendingDuration, discontinuity: pendingDiscontinuity });
    }
    pendingDuration = null;
    pendingDiscontinuity = false;
  }
  return result;
}

export interface PlaylistSegment {
  uri: string;
  duration: number;
  /** The init segment (EXT-X-MAP) this media segment needs. */
  initUri: string;
  /** A timeline break (new publisher session or new muxer run) precedes this segment. */
  discontinuity: boolean;
  programDateTime: Date | null;
}

export interface MediaPlaylistState {
  targetDuration: number;
  mediaSequence: number;
  discontinuitySequence: number;
  segments: readonly PlaylistSegment[];
  ended: boolean;
  /** EXT-X-PLAYLIST-TYPE: EVENT for an archive (segments only ever appended); absent for the live window. */
  playlistType?: 'EVENT' | 'VOD';
}

export function renderMediaPlaylist(state: MediaPlaylistState): string {
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:7',
    ...(state.playlistType ? [`#EXT-X-PLAYLIST-TYPE:${state.playlistType}`] : []),
    `#EXT-X-TARGETDURATION:${state.targetDuration}`,
    `#EXT-X-MEDIA-SEQUENCE:${state.mediaSequence}`,
    `#EXT-X-DISCONTINUITY-SEQUENCE:${state.discontinuitySequence}`,
    '#EXT-X-INDEPENDENT-SEGMENTS',
  ];
  let currentInit: string | null = null;
  for (const segment of state.segments) {
    if (segment.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
    if (segment.initUri !== currentInit) {
      lines.push(`#EXT-X-MAP:URI="${segment.initUri}"`);
      currentInit = segment.initUri;
    }
    if (segment.programDateTime) lines.push(`#EXT-X-PROGRAM-DATE-TIME:${segment.programDateTime.toISOString()}`);
    lines.push(`#EXTINF:${segment.duration.toFixed(6)},`, segment.uri);
  }
  if (state.ended) lines.push('#EXT-X-ENDLIST');
  lines.push('');
  return lines.join('\n');
}

/** RFC 8216 §4.3.3.1: each EXTINF rounded to the nearest integer must not exceed the target duration. */
export function fitsTargetDuration(duration: number, targetDuration: number): boolean {
  return Math.round(duration) <= targetDuration;
}

/** The target duration a playlist keeps for its whole life, chosen from its first segment. */
export function chooseTargetDuration(firstSegmentSeconds: number, minimumSeconds: number): number {
  return Math.max(1, Math.ceil(minimumSeconds), Math.round(firstSegmentSeconds));
}
