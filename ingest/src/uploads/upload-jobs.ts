/**
 * Accepted uploads and their transcodes: one job record per upload (jobs/<id>.json, rewritten
 * atomically at each state change), a queue run UPLOAD_CONCURRENCY at a time, publication by
 * rename once the output is complete, and recovery after a restart.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../../common/src/atomic-file.ts';
import type { Logger } from '../../../common/src/logger.ts';
import {
  isUploadId,
  UPLOAD_INFO_FILE,
  UPLOAD_PLAYLIST,
  UPLOAD_THUMBNAIL,
  uploadDir,
  uploadFilesUrl,
  uploadPageUrl,
  uploadsPrivateRoot,
  uploadsRoot,
  type UploadInfo,
} from '../../../common/src/upload-layout.ts';
import { makeThumbnail } from '../archive/thumbnail.ts';
import type { ProbedVideo } from './media-probe.ts';
import { runTranscode, transcodeArgs, type RunningTranscode } from './transcode.ts';
import type { UploadMetrics } from './upload-metrics.ts';

/** What runs for one job: ffmpeg's arguments, the rendition folders, and a master playlist to write afterwards. */
export interface TranscodePlanArgs {
  args: string[];
  renditions: string[];
  masterPlaylist?: string;
}

export type UploadState = 'queued' | 'transcoding' | 'ready' | 'failed';

/** jobs/<id>.json, and (with progress) what GET /uploads/<id> answers. */
export interface UploadJob {
  id: string;
  title: string;
  originalName: string;
  bytes: number;
  created: string;
  durationSeconds: number;
  width: number | null;
  height: number | null;
  hasAudio: boolean;
  state: UploadState;
  /** Why it failed (state failed), else null. */
  error: string | null;
  finished: string | null;
}

/** A job as the API shows it: with progress and, once ready, where to watch it. */
export interface UploadStatus extends UploadJob {
  percent: number;
  page: string | null;
  playlist: string | null;
}

export interface UploadJobsOptions {
  mediaDir: string;
  ffmpegPath: string;
  segmentSeconds: number;
  concurrency: number;
  nice: number;
  logger: Logger;
  metrics: UploadMetrics;
  /** The ffmpeg arguments for a job; defaults to the single-rendition transcode (the ladder plugs in here). */
  argsFor?: (job: UploadJob, source: string, outDir: string) => TranscodePlanArgs | null;
}

/** A restart cut a transcode short: the source is still in staging, so the job runs again from the start. */
export const REQUEUED_AFTER_RESTART = 'requeued after a restart';
export const LOST_SOURCE = 'the uploaded file was lost before it was transcoded (deleted from staging)';

export class UploadJobs {
  private readonly jobs = new Map<string, UploadJob>();
  private readonly queue: string[] = [];
  private readonly running = new Map<string, RunningTranscode>();
  private readonly runs = new Set<Promise<void>>();
  private stopping = false;
  private readonly root: string;

  constructor(private readonly options: UploadJobsOptions) {
    this.root = uploadsPrivateRoot(options.mediaDir);
  }

  jobsDir(): string {
    return path.join(this.root, 'jobs');
  }

  stagingDir(): string {
    return path.join(this.root, 'staging');
  }

  workDir(id: string): string {
    return path.join(this.root, 'work', id);
  }

  /** Where an upload's bytes go while they arrive and until its job ends. */
  stagingFile(id: string): string {
    if (!isUploadId(id)) throw new Error(`not an upload id: ${JSON.stringify(id)}`);
    return path.join(this.stagingDir(), `${id}.upload`);
  }

  /** A new id: when (UTC, sortable) plus 6 random characters. */
  newId(now = new Date()): string {
    const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
    const tail = Array.from(randomBytes(6), (b) => alphabet[b % alphabet.length]).join('');
    return `${stamp}-${tail}`;
  }

  /**
   * At start: work folders of interrupted transcodes are deleted; queued and interrupted jobs whose
   * source is still in staging are queued again (a transcode restarts from the beginning); jobs
   * without their source are marked failed; staging files without a job (uploads cut short by the
   * restart) are deleted.
   */
  async recover(): Promise<{ requeued: number; failed: number; removed: number }> {
    const { logger } = this.options;
    await rm(path.join(this.root, 'work'), { recursive: true, force: true });
    await mkdir(this.jobsDir(), { recursive: true });
    await mkdir(this.stagingDir(), { recursive: true });
    await mkdir(uploadsRoot(this.options.mediaDir), { recursive: true });
    let requeued = 0;
    let failed = 0;
    for (const name of await readdir(this.jobsDir())) {
      const id = name.endsWith('.json') ? name.slice(0, -5) : '';
      if (!isUploadId(id)) continue;
      let job: UploadJob;
      try {
        job = JSON.parse(await readFile(path.join(this.jobsDir(), name), 'utf8')) as UploadJob;
      } catch (err) {
        logger.warn({ err, file: name }, 'unreadable upload job record skipped');
        continue;
      }
      if (job.id !== id) continue;
      this.jobs.set(id, job);
      if (job.state !== 'queued' && job.state !== 'transcoding') continue;
      if (await exists(this.stagingFile(id))) {
        job.state = 'queued';
        this.queue.push(id);
        requeued++;
        logger.info({ upload: id, title: job.title }, `upload ${REQUEUED_AFTER_RESTART}`);
      } else {
        this.finish(job, 'failed', LOST_SOURCE);
        failed++;
      }
      await this.save(job);
    }
    this.queue.sort();
    let removed = 0;
    for (const name of await readdir(this.stagingDir())) {
      const id = name.endsWith('.upload') ? name.slice(0, -7) : '';
      const job = this.jobs.get(id);
      if (job && (job.state === 'queued' || job.state === 'transcoding')) continue;
      await rm(path.join(this.stagingDir(), name), { recursive: true, force: true });
      removed++;
    }
    if (requeued || failed || removed) logger.info({ requeued, failed, stagingFilesRemoved: removed }, 'uploads recovered after a restart');
    this.pump();
    return { requeued, failed, removed };
  }

  /** A received file ffprobe accepted: recorded and queued. Its bytes are at stagingFile(id). */
  async accept(fields: { id: string; title: string; originalName: string; bytes: number; created: Date; video: ProbedVideo }): Promise<UploadJob> {
    const job: UploadJob = {
      id: fields.id,
      title: fields.title,
      originalName: fields.originalName,
      bytes: fields.bytes,
      created: fields.created.toISOString(),
      durationSeconds: fields.video.durationSeconds,
      width: fields.video.width,
      height: fields.video.height,
      hasAudio: fields.video.hasAudio,
      state: 'queued',
      error: null,
      finished: null,
    };
    await this.save(job);
    this.jobs.set(job.id, job);
    this.queue.push(job.id);
    this.options.metrics.accepted.inc();
    this.pump();
    return job;
  }

  status(id: string): UploadStatus | null {
    const job = this.jobs.get(id);
    return job ? this.describe(job) : null;
  }

  /** Every job, newest first. */
  list(): UploadStatus[] {
    return [...this.jobs.values()].sort((a, b) => b.id.localeCompare(a.id)).map((job) => this.describe(job));
  }

  queueLength(): { queued: number; transcoding: number } {
    return { queued: this.queue.length, transcoding: this.running.size };
  }

  /** Deletes an upload whatever its state (a running transcode is stopped first). False: no such upload. */
  async delete(id: string): Promise<boolean> {
    const job = this.jobs.get(id);
    if (!job) return false;
    this.jobs.delete(id);
    const queued = this.queue.indexOf(id);
    if (queued !== -1) this.queue.splice(queued, 1);
    this.running.get(id)?.cancel();
    await rm(path.join(this.jobsDir(), `${id}.json`), { force: true });
    await rm(this.stagingFile(id), { force: true });
    await rm(this.workDir(id), { recursive: true, force: true });
    await rm(uploadDir(this.options.mediaDir, id), { recursive: true, force: true });
    this.options.metrics.jobs.inc({ outcome: 'deleted' });
    this.options.logger.info({ upload: id, title: job.title, state: job.state }, 'upload deleted');
    return true;
  }

  /** Shutdown: running transcodes are stopped; their jobs stay "transcoding" on disk and run again at the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const run of this.running.values()) run.cancel();
    await Promise.allSettled([...this.runs]);
  }

  private describe(job: UploadJob): UploadStatus {
    const running = this.running.get(job.id);
    const percent = job.state === 'ready' ? 100 : running ? running.progress.percent : 0;
    const ready = job.state === 'ready';
    return { ...job, percent, page: ready ? uploadPageUrl(job.id) : null, playlist: ready ? uploadFilesUrl(job.id, UPLOAD_PLAYLIST) : null };
  }

  private pump(): void {
    while (!this.stopping && this.running.size < this.options.concurrency && this.queue.length > 0) {
      const id = this.queue.shift()!;
      const job = this.jobs.get(id);
      if (!job) continue;
      const run = this.transcode(job).catch((err: unknown) => this.options.logger.error({ err, upload: id }, 'upload job crashed'));
      this.runs.add(run);
      void run.finally(() => {
        this.runs.delete(run);
        this.pump();
      });
    }
  }

  private async transcode(job: UploadJob): Promise<void> {
    const { logger, metrics, mediaDir } = this.options;
    const source = this.stagingFile(job.id);
    const work = this.workDir(job.id);
    const startedAt = performance.now();
    job.state = 'transcoding';
    await this.save(job);
    let transcode: RunningTranscode | null = null;
    try {
      await rm(work, { recursive: true, force: true });
      await mkdir(work, { recursive: true });
      const plan: TranscodePlanArgs = this.options.argsFor?.(job, source, work) ?? {
        args: transcodeArgs({ source, outDir: work, segmentSeconds: this.options.segmentSeconds, hasAudio: job.hasAudio }),
        renditions: [],
      };
      for (const name of plan.renditions) await mkdir(path.join(work, name), { recursive: true });
      logger.info({ upload: job.id, title: job.title, durationSeconds: job.durationSeconds, renditions: plan.renditions }, 'upload transcode started');
      transcode = runTranscode(this.options.ffmpegPath, plan.args, job.durationSeconds, this.options.nice, logger);
      this.running.set(job.id, transcode);
      await transcode.done;
      this.running.delete(job.id);
      if (!this.jobs.has(job.id)) throw new Error('deleted'); // deleted meanwhile: the catch removes the output
      if (plan.masterPlaylist !== undefined) await writeFileAtomic(path.join(work, UPLOAD_PLAYLIST), plan.masterPlaylist);
      const thumbnail = await this.thumbnail(work, plan.renditions, job.id);
      const info: UploadInfo = {
        id: job.id,
        title: job.title,
        originalName: job.originalName,
        created: job.created,
        published: new Date().toISOString(),
        durationSeconds: job.durationSeconds,
        status: 'ready',
        width: job.width,
        height: job.height,
        renditions: plan.renditions,
        thumbnail,
      };
      await writeFileAtomic(path.join(work, UPLOAD_INFO_FILE), `${JSON.stringify(info, null, 2)}\n`);
      // Published whole: web sees no folder, then a complete one.
      const target = uploadDir(mediaDir, job.id);
      await rm(target, { recursive: true, force: true });
      await rename(work, target);
      this.finish(job, 'ready', null);
      await this.save(job);
      await rm(source, { force: true });
      logger.info({ upload: job.id, title: job.title, seconds: Math.round((performance.now() - startedAt) / 100) / 10 }, 'upload ready');
    } catch (err) {
      this.running.delete(job.id);
      await rm(work, { recursive: true, force: true });
      // Shutting down or deleted: not a failure of the upload (a stopped job runs again at the next start).
      if (this.stopping || !this.jobs.has(job.id)) return;
      const reason = (err as Error).message;
      logger.warn({ upload: job.id, title: job.title, reason }, 'upload transcode failed');
      this.finish(job, 'failed', reason);
      await this.save(job).catch((saveErr: unknown) => logger.error({ err: saveErr, upload: job.id }, 'could not record a failed upload'));
      await rm(source, { force: true });
    } finally {
      metrics.transcodeSeconds.inc((performance.now() - startedAt) / 1000);
      if (transcode) this.running.delete(job.id);
    }
  }

  /** A poster frame from the second segment (the first is often black); a failure only means no thumbnail. */
  private async thumbnail(work: string, renditions: string[], id: string): Promise<string | null> {
    const dir = renditions.length > 0 ? path.join(work, renditions[0]!) : work;
    const segments = (await readdir(dir)).filter((f) => f.endsWith('.m4s')).sort();
    const segment = segments[1] ?? segments[0];
    if (!segment) return null;
    try {
      await makeThumbnail(this.options.ffmpegPath, path.join(dir, 'init.mp4'), path.join(dir, segment), path.join(work, UPLOAD_THUMBNAIL));
      return UPLOAD_THUMBNAIL;
    } catch (err) {
      this.options.logger.warn({ err, upload: id }, 'no thumbnail for the upload');
      return null;
    }
  }

  private finish(job: UploadJob, state: 'ready' | 'failed', error: string | null): void {
    job.state = state;
    job.error = error;
    job.finished = new Date().toISOString();
    this.options.metrics.jobs.inc({ outcome: state });
  }

  private save(job: UploadJob): Promise<void> {
    return writeFileAtomic(path.join(this.jobsDir(), `${job.id}.json`), `${JSON.stringify(job, null, 2)}\n`);
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
