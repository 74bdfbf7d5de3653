import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * Writes `data` to `file` so readers see either the old or the new content, never a part:
 * write a temp file in the same folder, fsync nothing (media is ephemeral), rename over.
 * Temp names start with '.' and end in '.tmp', which web refuses to serve.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(tmp, 'w');
  try {
    try {
      await handle.writeFile(data);
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    // A failed write (e.g. ENOSPC) must not leave its temp file behind: it would hold space.
    await rm(tmp, { force: true });
    throw err;
  }
}
