import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../common/src/logger.ts';
import { isUploadId, UPLOAD_INFO_FILE, UPLOAD_PLAYLIST, UPLOAD_THUMBNAIL, uploadFilesUrl, uploadPageUrl, uploadsRoot, type UploadInfo } from '../../common/src/upload-layout.ts';
import { CachedListing } from './cached-listing.ts';

/** What viewers see of an on-demand upload (GET /vod.json `uploads`): URLs ready to use, nothing internal. */
export interface PublicUpload {
  id: string;
  title: string;
  created: string;
  published: string;
  durationSeconds: number;
  width: number | null;
  height: number | null;
  page: string;
  playlist: string;
  thumbnail: string | null;
}

/** Re-read at most this often (like the recordings listing). */
export const UPLOADS_TTL_MS = 2_000;

/**
 * Published uploads, read from ingest's upload.json files under MEDIA_DIR/uploads (ingest renames a
 * complete folder into place, so a folder with upload.json is playable). Newest first.
 */
export class Uploads {
  private readonly listing: CachedListing<PublicUpload>;

  constructor(
    private readonly mediaDir: string,
    private readonly logger: Logger,
    ttlMs = UPLOADS_TTL_MS,
  ) {
    this.listing = new CachedListing(ttlMs, () => this.scan());
  }

  list(): Promise<PublicUpload[]> {
    return this.listing.get();
  }

  /**
   * One upload. Not only from the (up to UPLOADS_TTL_MS old) listing: the uploader is sent to the
   * player page the moment ingest says "ready", so a miss reads that upload's own upload.json.
   */
  async find(id: string): Promise<PublicUpload | null> {
    const listed = (await this.list()).find((u) => u.id === id);
    if (listed) return listed;
    const info = await readUploadInfo(path.join(uploadsRoot(this.mediaDir), id, UPLOAD_INFO_FILE));
    return info && info.id === id ? toPublicUpload(info) : null;
  }

  private async scan(): Promise<PublicUpload[]> {
    const root = uploadsRoot(this.mediaDir);
    const out: PublicUpload[] = [];
    for (const id of await readdir(root).catch(() => [] as string[])) {
      if (!isUploadId(id)) continue;
      const info = await readUploadInfo(path.join(root, id, UPLOAD_INFO_FILE));
      if (info && info.id === id) out.push(toPublicUpload(info));
    }
    this.logger.debug({ uploads: out.length }, 'uploads listed');
    return out.sort((a, b) => b.id.localeCompare(a.id));
  }
}

export async function readUploadInfo(file: string): Promise<UploadInfo | null> {
  try {
    const info = JSON.parse(await readFile(file, 'utf8')) as Partial<UploadInfo>;
    if (typeof info.id !== 'string' || typeof info.title !== 'string' || typeof info.durationSeconds !== 'number' || info.status !== 'ready') return null;
    return info as UploadInfo;
  } catch {
    return null;
  }
}

export function toPublicUpload(info: UploadInfo): PublicUpload {
  return {
    id: info.id,
    title: info.title,
    created: info.created,
    published: info.published,
    durationSeconds: info.durationSeconds,
    width: typeof info.width === 'number' ? info.width : null,
    height: typeof info.height === 'number' ? info.height : null,
    page: uploadPageUrl(info.id),
    playlist: uploadFilesUrl(info.id, UPLOAD_PLAYLIST),
    thumbnail: info.thumbnail === UPLOAD_THUMBNAIL ? uploadFilesUrl(info.id, UPLOAD_THUMBNAIL) : null,
  };
}
