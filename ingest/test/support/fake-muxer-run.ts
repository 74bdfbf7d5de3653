import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { MuxerSegment } from '../../src/hls/muxer-run.ts';

/** Writes what an ffmpeg run would leave in its work folder (an init segment, `count` segments) and describes them. */
export async function fakeRun(workDir: string, run: string, count: number, duration = 1): Promise<MuxerSegment[]> {
  await mkdir(workDir, { recursive: true });
  await writeFile(path.join(workDir, `${run}-init.mp4`), `init ${run}`);
  const out: MuxerSegment[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${run}-${i}.m4s`;
    await writeFile(path.join(workDir, name), `segment ${run} ${i}`);
    out.push({ run, index: i, name, workPath: path.join(workDir, name), duration, initName: `${run}-init.mp4`, initWorkPath: path.join(workDir, `${run}-init.mp4`), startedAt: null, afterGap: false });
  }
  return out;
}
