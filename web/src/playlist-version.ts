import { comparePositions, parseMediaPlaylist, playlistPosition, type ParsedMediaPlaylist, type PlaylistPosition } from '../../common/src/hls/media-playlist.ts';

/** Where a version came from: read from the shared volume, or pushed by ingest's playlist feed. */
export type VersionOrigin = 'file' | 'feed';

/** One version of a live playlist file, parsed once when it arrives and shared by every answer. */
export interface PlaylistVersion {
  body: Buffer;
  origin: VersionOrigin;
  /** Null for a master playlist (quality ladder) or anything that is not a media playlist. */
  media: ParsedMediaPlaylist | null;
  position: PlaylistPosition;
  /** Seconds; the hold deadline is 3 × this. 1 when the playlist does not say. */
  targetDuration: number;
  /** Names this version lists as parts or segments (for hinted-part holds); built on first use. */
  listed?: ReadonlySet<string>;
}

export function playlistVersion(body: Buffer, origin: VersionOrigin): PlaylistVersion {
  const parsed = parseMediaPlaylist(body.toString('utf8'));
  // A media playlist always has EXT-X-TARGETDURATION; a master playlist never does.
  const media = parsed.targetDuration !== null && parsed.targetDuration > 0 ? parsed : null;
  return { body, origin, media, position: playlistPosition(parsed), targetDuration: media?.targetDuration ?? 1 };
}

/**
 * Whether `candidate` should replace the held version (docs/low-latency-hls.md: the newer wins,
 * whichever source it came from). Across sources, by playlist position, then EXT-X-ENDLIST; an
 * equal position keeps the held one. Within one source, arrival order is already the file's
 * order (reads of the file are one at a time; the feed is one ordered stream, and a reconnect
 * starts with ingest's current versions), so a different body from the same source is newer
 * even at an equal position (a preload hint dropped between publisher sessions) or a lower one
 * (the stream's folder was removed and numbering restarted).
 */
export function supersedes(candidate: PlaylistVersion, held: PlaylistVersion): boolean {
  if (candidate.origin === held.origin) return true;
  // Master playlists have no position; a stream that gains or loses its ladder changes kind.
  if (candidate.media === null || held.media === null) return true;
  const order = comparePositions(candidate.position, held.position);
  if (order !== 0) return order > 0;
  return candidate.media.ended && !held.media.ended;
}

/** Whether the version names `file` as a part or a segment (so it exists: ingest writes it first). */
export function versionLists(version: PlaylistVersion, file: string): boolean {
  if (version.media === null) return false;
  if (version.listed === undefined) {
    const names = new Set<string>();
    for (const segment of version.media.segments) {
      names.add(segment.uri);
      for (const part of segment.parts) names.add(part.uri);
    }
    for (const part of version.media.openParts) names.add(part.uri);
    version.listed = names;
  }
  return version.listed.has(file);
}
