import { Counter, Gauge, type Registry } from 'prom-client';

export type UploadMetrics = ReturnType<typeof createUploadMetrics>;

/** Refusal reasons of an upload, every one exported from 0. */
export const UPLOAD_REFUSALS = ['disabled', 'unauthorized', 'bad-request', 'too-large', 'not-video', 'aborted', 'idle-timeout', 'error'] as const;
export type UploadRefusal = (typeof UPLOAD_REFUSALS)[number];
export const UPLOAD_OUTCOMES = ['ready', 'failed', 'deleted'] as const;

export function createUploadMetrics(registry: Registry, queueLength: () => { queued: number; transcoding: number }) {
  const metrics = {
    accepted: new Counter({ name: 'onair_ingest_uploads_accepted_total', help: 'Uploads received and accepted as video (queued for transcoding)', registers: [registry] }),
    refused: new Counter({ name: 'onair_ingest_uploads_refused_total', help: 'Uploads refused or abandoned, by reason', labelNames: ['reason'], registers: [registry] }),
    receivedBytes: new Counter({ name: 'onair_ingest_upload_received_bytes_total', help: 'Bytes of uploaded files written to staging', registers: [registry] }),
    jobs: new Counter({ name: 'onair_ingest_upload_jobs_total', help: 'Upload transcode jobs finished, by outcome', labelNames: ['outcome'], registers: [registry] }),
    transcodeSeconds: new Counter({ name: 'onair_ingest_upload_transcode_seconds_total', help: 'Wall-clock seconds spent transcoding uploads', registers: [registry] }),
    queue: new Gauge({
      name: 'onair_ingest_upload_queue',
      help: 'Upload jobs waiting (queued) and running (transcoding)',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const now = queueLength();
        this.set({ state: 'queued' }, now.queued);
        this.set({ state: 'transcoding' }, now.transcoding);
      },
    }),
  };
  for (const reason of UPLOAD_REFUSALS) metrics.refused.inc({ reason }, 0);
  for (const outcome of UPLOAD_OUTCOMES) metrics.jobs.inc({ outcome }, 0);
  return metrics;
}
