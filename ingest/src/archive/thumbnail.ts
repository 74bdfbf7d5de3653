/**
 * One JPEG frame from an fMP4 segment. The init and the media segment are fed to ffmpeg as one
 * byte stream (the concat protocol): init + fragment is a valid fragmented MP4, no temp file.
 * Written to a temp name and renamed, so web never serves half a JPEG.
 */
import { execFile } from 'node:child_process';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const TIMEOUT_MS = 20_000;

export async function makeThumbnail(ffmpegPath: string, initFile: string, segmentFile: string, outFile: string, width = 320): Promise<void> {
  const tmp = path.join(path.dirname(outFile), `.${path.basename(outFile, '.jpg')}.tmp.jpg`);
  try {
    await run(
      ffmpegPath,
      ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', '-i', `concat:${initFile}|${segmentFile}`, '-frames:v', '1', '-vf', `scale=${width}:-2`, '-q:v', '5', tmp],
      { timeout: TIMEOUT_MS, killSignal: 'SIGKILL' },
    );
    await rename(tmp, outFile);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
