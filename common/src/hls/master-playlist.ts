/**
 * HLS master (multivariant) playlists (RFC 8216 §4.3.4.2): the list of a stream's renditions that
 * lets a player choose between them. Written by ingest for live quality ladders and ladder uploads.
 */

/** One variant: its media playlist and what a player chooses it by. */
export interface MasterVariant {
  name: string;
  /** Relative URI of its media playlist, e.g. `720p/index.m3u8`. */
  uri: string;
  /** Peak bit/s (BANDWIDTH). */
  bandwidth: number;
  /** 0 when unknown (no RESOLUTION then). */
  width: number;
  height: number;
  /** RFC 6381 codecs, e.g. `avc1.4d401f,mp4a.40.2`; null when unknown. */
  codecs: string | null;
  fps: number | null;
}

/** Highest bandwidth first. */
export function renderMasterPlaylist(variants: readonly MasterVariant[]): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-INDEPENDENT-SEGMENTS'];
  const sorted = [...variants].sort((a, b) => b.bandwidth - a.bandwidth);
  for (const variant of sorted) {
    const attrs = [`BANDWIDTH=${variant.bandwidth}`];
    if (variant.width > 0 && variant.height > 0) attrs.push(`RESOLUTION=${variant.width}x${variant.height}`);
    if (variant.codecs) attrs.push(`CODECS="${variant.codecs}"`);
    if (variant.fps) attrs.push(`FRAME-RATE=${variant.fps.toFixed(3)}`);
    attrs.push(`NAME="${variant.name}"`);
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, variant.uri);
  }
  lines.push('');
  return lines.join('\n');
}

/** `720p/index.m3u8`: a rendition's media playlist relative to the master playlist. */
export function renditionPlaylistUri(rendition: { name: string }, playlistName = 'index.m3u8'): string {
  return `${rendition.name}/${playlistName}`;
}
