/**
 * Ladder specs: the renditions an operator may ask for ("720p,480p,360p") and their names. Shared
 * by the CLI and the stream registry (validation), ingest (transcoding; see
 * ingest/src/transcode/ladder.ts, which re-exports all of this) and web (rendition paths).
 */

/** One rung of a ladder as an operator names it. */
export interface RenditionSpec {
  /** `720p`: the folder name of the rendition and what the player shows. */
  name: string;
  height: number;
  /** Target video bitrate (kbit/s); maxrate and buffer are derived from it. */
  videoKbps: number;
  /** AAC bitrate when the audio must be encoded (kbit/s). */
  audioKbps: number;
  /** H.264 level written by the encoder (and announced in CODECS), e.g. 31 for 3.1. */
  level: number;
}

/** The rungs an operator may ask for, highest first. Bitrates: H.264 at up to 30 fps. */
export const RENDITION_PRESETS: readonly RenditionSpec[] = [
  { name: '1080p', height: 1080, videoKbps: 5000, audioKbps: 128, level: 40 },
  { name: '720p', height: 720, videoKbps: 2800, audioKbps: 128, level: 31 },
  { name: '540p', height: 540, videoKbps: 1800, audioKbps: 128, level: 31 },
  { name: '480p', height: 480, videoKbps: 1400, audioKbps: 128, level: 30 },
  { name: '360p', height: 360, videoKbps: 800, audioKbps: 96, level: 30 },
  { name: '240p', height: 240, videoKbps: 400, audioKbps: 64, level: 21 },
  { name: '144p', height: 144, videoKbps: 200, audioKbps: 48, level: 11 },
];

/** The rendition name of the untouched source. */
export const SOURCE_RENDITION = 'source';

/** Names a rendition may have on disk and in URLs (also checked by web's media paths). */
export const RENDITION_NAME_PATTERN = /^(?:source|\d{3,4}p)$/;

export function isRenditionName(value: string): boolean {
  return RENDITION_NAME_PATTERN.test(value);
}

export class LadderSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LadderSpecError';
  }
}

/**
 * Parses an operator's ladder ("720p,480p,360p", case and spaces ignored, order free) into rungs,
 * highest first. "off", "none" and "" mean no ladder (passthrough): an empty list.
 * Throws LadderSpecError naming the bad entry and the allowed ones.
 */
export function parseLadderSpec(spec: string): RenditionSpec[] {
  const text = spec.trim().toLowerCase();
  if (text === '' || text === 'off' || text === 'none') return [];
  const chosen = new Map<string, RenditionSpec>();
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (!item) throw new LadderSpecError(`empty entry in ladder ${JSON.stringify(spec)}`);
    const name = /^\d+$/.test(item) ? `${item}p` : item;
    const preset = RENDITION_PRESETS.find((p) => p.name === name);
    if (!preset) {
      throw new LadderSpecError(`unknown rendition ${JSON.stringify(raw.trim())} in ladder ${JSON.stringify(spec)}: use some of ${RENDITION_PRESETS.map((p) => p.name).join(', ')} (comma-separated), or off`);
    }
    if (chosen.has(name)) throw new LadderSpecError(`rendition ${name} twice in ladder ${JSON.stringify(spec)}`);
    chosen.set(name, preset);
  }
  return [...chosen.values()].sort((a, b) => b.height - a.height);
}

/** The canonical text of a ladder ("720p,480p,360p"; "off" for none): what the registry stores. */
export function formatLadderSpec(ladder: readonly RenditionSpec[]): string {
  return ladder.length === 0 ? 'off' : [...ladder].sort((a, b) => b.height - a.height).map((r) => r.name).join(',');
}

