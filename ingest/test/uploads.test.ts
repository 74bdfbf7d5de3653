/**
 * On-demand uploads, the parts that are logic (ffprobe verdicts, progress parsing, ffmpeg arguments,
 * names, URL parsing, the proxy's upload gate and playback tokens), and the job queue's recovery
 * after a restart with real ffmpeg on a tiny generated clip.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { createLogger } from '../../common/src/logger.ts';
import { signPlaybackToken } from '../../common/src/playback-token.ts';
import { isUploadId } from '../../common/src/upload-layout.ts';
import { makeTempDir, waitFor } from '../../common/testing/processes.ts';
import { judgeProbe } from '../src/uploads/media-probe.ts';
import { cleanFileName, titleFor } from '../src/uploads/upload-api.ts';
import { LOST_SOURCE, UploadJobs, type UploadJob } from '../src/uploads/upload-jobs.ts';
import { createUploadMetrics } from '../src/uploads/upload-metrics.ts';
import { TranscodeProgress } from '../src/uploads/transcode-progress.ts';
import { transcodeArgs } from '../src/uploads/transcode.ts';
import { parseUploadedPath } from '../../web/src/media-path.ts';
import { PlaybackGate } from '../../proxy/src/playback-gate.ts';
import { isUploadsPath } from '../../proxy/src/router.ts';
import { hasBody, isUploadRequest, MULTIPART_OVERHEAD_BYTES, UploadGate } from '../../proxy/src/upload-gate.ts';

const run = promisify(execFile);

describe('ffprobe verdicts', () => {
  test('a video with a duration is accepted, with its picture size and audio', () => {
    const verdict = judgeProbe({ streams: [{ codec_type: 'video', width: 1280, height: 720 }, { codec_type: 'audio' }], format: { duration: '12.5' } });
    assert.deepEqual(verdict, { ok: true, video: { durationSeconds: 12.5, width: 1280, height: 720, hasAudio: true } });
  });
  test('no video stream, a cover picture, no duration, unreadable: refused with the reason', () => {
    assert.deepEqual(judgeProbe({ streams: [{ codec_type: 'audio' }], format: { duration: '3' } }), { ok: false, problem: 'ffprobe found no video stream' });
    assert.deepEqual(judgeProbe({ streams: [{ codec_type: 'audio' }, { codec_type: 'video', disposition: { attached_pic: 1 } }], format: { duration: '3' } }), { ok: false, problem: 'ffprobe found no video stream' });
    assert.match((judgeProbe({ streams: [{ codec_type: 'video' }], format: {} }) as { problem: string }).problem, /no duration/);
    assert.match((judgeProbe({ streams: [{ codec_type: 'video' }], format: { duration: 'N/A' } }) as { problem: string }).problem, /no duration/);
    assert.match((judgeProbe(null) as { problem: string }).problem, /could not read/);
  });
});

describe('transcode progress', () => {
  test('out_time_us against the duration, split anywhere, never backwards, 100 only at the end', () => {
    const p = new TranscodeProgress(10);
    assert.equal(p.percent, 0);
    p.push('frame=10\nout_time_us=N/A\nprogress=continue\nout_time_us=250');
    assert.equal(p.percent, 0);
    p.push('0000\nprogress=continue\n');
    assert.equal(p.outSeconds, 2.5);
    assert.equal(p.percent, 25);
    p.push('out_time_ms=1000000\n');
    assert.equal(p.percent, 25, 'never goes back');
    p.push('out_time_us=10000000\nprogress=continue\n');
    assert.equal(p.percent, 99, 'not 100 before ffmpeg says end');
    p.push('progress=end\n');
    assert.equal(p.percent, 100);
    assert.equal(new TranscodeProgress(0).percent, 0);
  });
});

describe('ffmpeg arguments', () => {
  test('H.264 + AAC fMP4 VOD, a keyframe on every segment boundary, audio only when there is some', () => {
    const args = transcodeArgs({ source: '/s/in.upload', outDir: '/w/x', segmentSeconds: 4, hasAudio: true }).join(' ');
    for (const part of ['-i /s/in.upload', '-c:v libx264', '-force_key_frames expr:gte(t,n_forced*4)', '-sc_threshold 0', '-c:a aac', '-hls_time 4', '-hls_playlist_type vod', '-hls_segment_type fmp4', '-progress pipe:1', '/w/x/index.m3u8']) {
      assert.ok(args.includes(part), `${part} in ${args}`);
    }
    const silent = transcodeArgs({ source: 'a', outDir: 'b', segmentSeconds: 2, hasAudio: false });
    assert.ok(!silent.includes('-c:a') && !silent.includes('0:a:0'));
  });
});

describe('names', () => {
  test('file names lose folders and control characters; titles fall back to the file name', () => {
    assert.equal(cleanFileName('C:\\Users\\ann\\town hall.mp4'), 'town hall.mp4');
    assert.equal(cleanFileName('../../etc/passwd'), 'passwd');
    assert.equal(cleanFileName('a\u0000b\nc.mov'), 'abc.mov');
    assert.equal(cleanFileName(undefined), 'the file');
    assert.equal(titleFor('  All hands  ', 'x.mp4'), 'All hands');
    assert.equal(titleFor('', 'town hall.mp4'), 'town hall');
    assert.equal(titleFor(null, '.hidden'), '.hidden');
    assert.equal(titleFor('x'.repeat(500), 'a').length, 200);
  });
});

describe('web: upload file paths', () => {
  const id = '20261122-041200-a1b2c3';
  test('media files and the thumbnail of an upload, with or without a rendition folder', () => {
    assert.deepEqual(parseUploadedPath(`/uploaded/${id}/index.m3u8`), { ok: true, media: { stream: '', upload: id, rendition: null, file: 'index.m3u8', kind: 'playlist', ext: 'm3u8' } });
    assert.equal((parseUploadedPath(`/uploaded/${id}/seg-00001.m4s`) as { media: { kind: string } }).media.kind, 'segment');
    assert.equal((parseUploadedPath(`/uploaded/${id}/thumbnail.jpg`) as { media: { ext: string } }).media.ext, 'jpg');
    assert.equal((parseUploadedPath(`/uploaded/${id}/720p/index.m3u8`) as { media: { rendition: string } }).media.rendition, '720p');
  });
  test('no metadata, temp or hidden files, nothing outside, no encodings', () => {
    for (const [p, status] of [
      [`/uploaded/${id}/upload.json`, 404], [`/uploaded/${id}/.index.m3u8.1a2b.tmp`, 404], [`/uploaded/${id}/index.m3u8.tmp`, 404],
      [`/uploaded/${id}/720p/thumbnail.jpg`, 404], ['/uploaded/not-an-id/index.m3u8', 404], [`/uploaded/${id}/a/b/index.m3u8`, 404],
      [`/uploaded/${id}/../x.m3u8`, 400], [`/uploaded/${id}/%2e%2e/x.m3u8`, 400], [`/uploaded/${id}//index.m3u8`, 400], [`/uploaded/${id}\\index.m3u8`, 400],
    ] as const) {
      const parsed = parseUploadedPath(p);
      assert.equal(parsed.ok ? 200 : parsed.status, status, p);
    }
  });
});

describe('proxy: the upload route and its gate', () => {
  const request = (method: string, headers: Record<string, string>): IncomingMessage => ({ method, headers }) as unknown as IncomingMessage;
  test('/uploads and /uploads/<id> go to ingest, /upload (the page) does not', () => {
    assert.equal(isUploadsPath('/uploads'), true);
    assert.equal(isUploadsPath('/uploads/20261122-041200-a1b2c3'), true);
    assert.equal(isUploadsPath('/upload'), false);
    assert.equal(isUploadsPath('/uploadsx'), false);
    assert.equal(isUploadRequest(request('POST', {}), '/uploads'), true);
    assert.equal(isUploadRequest(request('GET', {}), '/uploads'), false);
    assert.equal(hasBody(request('GET', { 'content-length': '0' })), false);
    assert.equal(hasBody(request('POST', { 'transfer-encoding': 'chunked' })), true);
  });
  test('token and declared size are checked before the body moves', () => {
    const gate = new UploadGate('ops-token-0123456789', { maxFileBytes: 1000, timeoutMs: 0 });
    const max = String(1000 + MULTIPART_OVERHEAD_BYTES);
    assert.equal(gate.refusal(request('POST', {})), 'unauthorized');
    assert.equal(gate.refusal(request('POST', { authorization: 'Bearer nope' })), 'unauthorized');
    assert.equal(gate.refusal(request('POST', { authorization: 'Bearer ops-token-0123456789', 'content-length': max })), null);
    assert.equal(gate.refusal(request('POST', { authorization: 'Bearer ops-token-0123456789', 'content-length': String(Number(max) + 1) })), 'payload-too-large');
    // Without a token of its own the proxy leaves authentication to ingest.
    assert.equal(new UploadGate(undefined, { maxFileBytes: 1000, timeoutMs: 0 }).refusal(request('POST', {})), null);
  });
  test('playback tokens: an upload needs a token signed for upload:<id>; a stream token does not open it', () => {
    const secret = 'playback-secret-0123456789';
    const gate = new PlaybackGate(secret);
    const id = '20261122-041200-a1b2c3';
    const now = 1_800_000_000;
    const token = signPlaybackToken(secret, `upload:${id}`, now + 60);
    assert.deepEqual(gate.check(`/uploaded/${id}/index.m3u8`, `/uploaded/${id}/index.m3u8`, undefined, false, now), { ok: false, reason: 'token-missing' });
    const page = gate.check(`/ondemand/${id}`, `/ondemand/${id}?token=${token}`, undefined, false, now);
    assert.equal(page.ok, true);
    assert.deepEqual((page as { setCookie: string[] }).setCookie.map((c) => /Path=([^;]+)/.exec(c)![1]), [`/uploaded/${id}/`, `/ondemand/${id}`]);
    assert.equal(gate.check(`/uploaded/${id}/seg-00000.m4s`, `/uploaded/${id}/seg-00000.m4s`, `onair_playback=${token}`, false, now).ok, true);
    const streamToken = signPlaybackToken(secret, id, now + 60);
    assert.deepEqual(gate.check(`/uploaded/${id}/index.m3u8`, `/uploaded/${id}/index.m3u8?token=${streamToken}`, undefined, false, now), { ok: false, reason: 'token-invalid' });
    assert.equal(gate.check('/ondemand', '/ondemand', undefined, false, now).ok, true, 'the listing is public');
  });
});

describe('upload jobs after a restart (real ffmpeg)', () => {
  let temp: { dir: string; remove: () => Promise<void> };
  let clip: string;
  before(async () => {
    temp = await makeTempDir('upload-jobs');
    clip = path.join(temp.dir, 'clip.mp4');
    await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=15:duration=2', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', clip]);
  });
  after(async () => temp?.remove());

  test('an interrupted job with its source is run again; one without is failed with the reason; partial uploads are deleted', async () => {
    const mediaDir = path.join(temp.dir, 'media');
    const logger = createLogger('ingest', 'silent');
    const registry = new Registry();
    let jobs: UploadJobs | null = null;
    const metrics = createUploadMetrics(registry, () => jobs!.queueLength());
    jobs = new UploadJobs({ mediaDir, ffmpegPath: 'ffmpeg', segmentSeconds: 1, concurrency: 1, nice: 10, logger, metrics });
    const base: Omit<UploadJob, 'id' | 'title'> = { originalName: 'clip.mp4', bytes: 1, created: new Date().toISOString(), durationSeconds: 2, width: 160, height: 120, hasAudio: false, state: 'transcoding', error: null, finished: null };
    const interrupted = jobs.newId();
    const lost = `${interrupted.slice(0, 16)}zzzzzz`;
    const partial = `${interrupted.slice(0, 16)}yyyyyy`;
    assert.ok(isUploadId(interrupted) && isUploadId(lost));
    await mkdir(jobs.jobsDir(), { recursive: true });
    await mkdir(jobs.stagingDir(), { recursive: true });
    await mkdir(path.join(jobs.workDir(interrupted)), { recursive: true });
    await writeFile(path.join(jobs.workDir(interrupted), 'seg-00000.m4s'), 'half');
    await writeFile(path.join(jobs.jobsDir(), `${interrupted}.json`), JSON.stringify({ ...base, id: interrupted, title: 'Interrupted' }));
    await writeFile(path.join(jobs.jobsDir(), `${lost}.json`), JSON.stringify({ ...base, id: lost, title: 'Lost', state: 'queued' }));
    await copyFile(clip, jobs.stagingFile(interrupted));
    await writeFile(jobs.stagingFile(partial), 'cut short by the restart');

    const recovered = await jobs.recover();
    assert.deepEqual(recovered, { requeued: 1, failed: 1, removed: 1 });
    assert.deepEqual(jobs.status(lost)?.state, 'failed');
    assert.equal(jobs.status(lost)?.error, LOST_SOURCE);
    const ready = await waitFor('the requeued job to finish', () => (jobs!.status(interrupted)?.state === 'ready' ? jobs!.status(interrupted) : undefined), 30_000, 50);
    assert.equal(ready!.percent, 100);
    const published = path.join(mediaDir, 'uploads', interrupted);
    const files = await readdir(published);
    for (const f of ['index.m3u8', 'init.mp4', 'upload.json']) assert.ok(files.includes(f), `${f} in ${files.join(' ')}`);
    const info = JSON.parse(await readFile(path.join(published, 'upload.json'), 'utf8')) as { title: string; status: string };
    assert.deepEqual([info.title, info.status], ['Interrupted', 'ready']);
    assert.deepEqual(await readdir(jobs.stagingDir()), [], 'sources are removed once their job ends');
    const text = await registry.metrics();
    assert.match(text, /onair_ingest_upload_jobs_total\{outcome="ready"\} 1/);
    assert.match(text, /onair_ingest_upload_jobs_total\{outcome="failed"\} 1/);
    await jobs.stop();
  });
});

describe('UPLOAD_LADDER', () => {
  test('a top rendition at the source size, the rungs below it, the same keyframe interval everywhere, a master playlist', async () => {
    const { ladderTranscode } = await import('../src/uploads/upload-ladder.ts');
    const { parseLadderSpec } = await import('../src/transcode/ladder.ts');
    const plan = ladderTranscode(parseLadderSpec('720p,480p,360p'), { file: '/s/x.upload', width: 854, height: 480, hasAudio: true }, '/w/id', 2)!;
    assert.deepEqual(plan.renditions, ['480p', '360p'], 'no upscaling, no duplicate of the top');
    const args = plan.args.join(' ');
    assert.equal(args.split('-force_key_frames expr:gte(t,n_forced*2)').length - 1, 2);
    assert.ok(args.includes('/w/id/480p/index.m3u8') && args.includes('/w/id/360p/seg-%05d.m4s'));
    assert.match(plan.masterPlaylist, /RESOLUTION=854x480[^\n]*\n480p\/index\.m3u8\n[^\n]*RESOLUTION=640x360/);
    assert.equal(ladderTranscode(parseLadderSpec('720p'), { file: 'x', width: null, height: null, hasAudio: false }, '/w', 2), null, 'unknown size: single rendition');
  });
});
