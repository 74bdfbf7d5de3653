/** On-demand uploads, wired for ingest's main.ts: the job queue, its metrics and the HTTP API. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../../../common/src/logger.ts';
import type { IngestConfig } from '../config.ts';
import { parseLadderSpec } from '../transcode/ladder.ts';
import { createUploadApi } from './upload-api.ts';
import { ladderTranscode } from './upload-ladder.ts';
import { UploadJobs } from './upload-jobs.ts';
import { createUploadMetrics } from './upload-metrics.ts';

export interface Uploads {
  /** The /uploads routes for the control server. */
  handle: (req: IncomingMessage, res: ServerResponse, path: string) => boolean;
  /** Recovers jobs left by a previous run and starts the queue. */
  start(): Promise<void>;
  /** Stops running transcodes (they run again at the next start). */
  stop(): Promise<void>;
}

export function createUploads(config: IngestConfig, registry: Registry, logger: Logger): Uploads {
  const log = logger.child({ component: 'uploads' });
  const ladder = parseLadderSpec(config.UPLOAD_LADDER);
  let jobs: UploadJobs | null = null;
  const metrics = createUploadMetrics(registry, () => jobs?.queueLength() ?? { queued: 0, transcoding: 0 });
  jobs = new UploadJobs({
    mediaDir: config.MEDIA_DIR,
    ffmpegPath: config.FFMPEG_PATH,
    segmentSeconds: config.UPLOAD_SEGMENT_SECONDS,
    concurrency: config.UPLOAD_CONCURRENCY,
    nice: config.UPLOAD_NICE,
    logger: log,
    metrics,
    // With UPLOAD_LADDER: master playlist + renditions; a source whose size is unknown gets the single rendition.
    argsFor: ladder.length === 0 ? undefined : (job, source, outDir) => ladderTranscode(ladder, { file: source, width: job.width, height: job.height, hasAudio: job.hasAudio }, outDir, config.UPLOAD_SEGMENT_SECONDS),
  });
  const handle = createUploadApi({
    opsToken: config.OPS_TOKEN,
    maxBytes: config.UPLOAD_MAX_BYTES,
    idleTimeoutMs: config.UPLOAD_IDLE_TIMEOUT_MS,
    ffprobePath: config.FFPROBE_PATH,
    jobs,
    metrics,
    logger: log,
  });
  return {
    handle,
    async start() {
      await jobs!.recover();
      if (!config.OPS_TOKEN) log.info('uploads are disabled: set OPS_TOKEN to accept them');
    },
    stop: () => jobs!.stop(),
  };
}
