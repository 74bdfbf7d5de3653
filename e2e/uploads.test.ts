/**
 * On-demand uploads through the real proxy, ingest (ffprobe, ffmpeg), web and Chromium: a small
 * generated video uploaded with the ops token is transcoded, listed and plays to its end in the
 * player; a non-video file, an oversize body, a missing token and a malformed multipart body are each
 * refused with a clear message, leave nothing in staging, and the service keeps serving.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../common/testing/browser.ts';
import { makeTempDir, REPO_ROOT, waitFor } from '../common/testing/processes.ts';
import { startStack, type Stack } from '../common/testing/stack.ts';

const run = promisify(execFile);
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');
/** Small, so the over-the-limit cases stay cheap: the clip is ~0.1 MB. */
const MAX_BYTES = 2_000_000;
const CLIP_SECONDS = 4;

let stack: Stack;
let browser: Browser;
let temp: { dir: string; remove: () => Promise<void> };
let clip: string;

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  temp = await makeTempDir('uploads');
  clip = path.join(temp.dir, 'town-hall-clip.mp4');
  await run('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc=size=320x240:rate=25:duration=${CLIP_SECONDS}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:duration=${CLIP_SECONDS}`,
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', clip,
  ]);
  stack = await startStack({
    webReplicas: 1,
    proxy: true,
    ingestEnv: { OPS_TOKEN: 'test-ops-token-0123456789', UPLOAD_MAX_BYTES: String(MAX_BYTES), UPLOAD_SEGMENT_SECONDS: '1' },
    proxyEnv: { UPLOAD_MAX_BYTES: String(MAX_BYTES) },
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
  await temp?.remove();
});

const auth = (): Record<string, string> => ({ authorization: `Bearer ${stack.opsToken}` });

async function upload(file: Blob, name: string, title: string | null, headers: Record<string, string> = auth()): Promise<{ status: number; body: Record<string, unknown> | string }> {
  const form = new FormData();
  if (title !== null) form.append('title', title);
  form.append('file', file, name);
  const res = await fetch(`${stack.proxyUrl}/uploads`, { method: 'POST', body: form, headers });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) as Record<string, unknown> };
  } catch {
    return { status: res.status, body: text };
  }
}

async function stagingFiles(): Promise<string[]> {
  return readdir(path.join(stack.mediaDir, 'ingest', 'uploads', 'staging')).catch(() => []);
}

interface UploadStatus {
  id: string;
  state: string;
  percent: number;
  title: string;
  durationSeconds: number;
  error: string | null;
  page: string | null;
  playlist: string | null;
}

test('an upload of a small generated video becomes playable: progress, listing, a valid VOD playlist', async () => {
  const accepted = await upload(new Blob([await readFile(clip)]), 'town-hall-clip.mp4', 'Town hall (excerpt)');
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  const body = accepted.body as { id: string; status: string; state: string };
  assert.match(body.id, /^\d{8}-\d{6}-[a-z0-9]{6}$/);
  assert.equal(body.status, `/uploads/${body.id}`);

  // Transcode progress, as the uploader sees it.
  const seen: string[] = [];
  let lastPercent = -1;
  const ready = await waitFor('the upload to be ready', async () => {
    const res = await fetch(`${stack.proxyUrl}/uploads/${body.id}`, { headers: auth() });
    assert.equal(res.status, 200);
    const status = (await res.json()) as UploadStatus;
    assert.ok(status.percent >= lastPercent, `progress never goes back (${lastPercent} → ${status.percent})`);
    assert.ok(status.percent >= 0 && status.percent <= 100);
    lastPercent = status.percent;
    const step = `${status.state} ${status.percent}%`;
    if (seen.at(-1) !== step) seen.push(step);
    assert.notEqual(status.state, 'failed', `transcode failed: ${status.error}`);
    return status.state === 'ready' ? status : undefined;
  }, 60_000, 50);
  console.log(`# upload ${body.id}: ${seen.join(' → ')}`);
  assert.equal(ready.percent, 100);
  assert.equal(ready.title, 'Town hall (excerpt)');
  assert.ok(Math.abs(ready.durationSeconds - CLIP_SECONDS) < 0.5, `duration ${ready.durationSeconds}`);
  assert.equal(ready.page, `/ondemand/${body.id}`);
  assert.equal(ready.playlist, `/uploaded/${body.id}/index.m3u8`);
  assert.deepEqual(await stagingFiles(), [], 'the staged source is gone once transcoded');

  // Listed for viewers (no token needed), with title, duration, date and thumbnail.
  const listing = (await (await fetch(`${stack.proxyUrl}/vod.json`)).json()) as { uploads: Array<Record<string, unknown>> };
  const listed = listing.uploads.find((u) => u.id === body.id);
  assert.ok(listed, 'listed in /vod.json');
  assert.equal(listed.title, 'Town hall (excerpt)');
  assert.equal(listed.page, `/ondemand/${body.id}`);
  assert.equal(listed.thumbnail, `/uploaded/${body.id}/thumbnail.jpg`);
  assert.equal(typeof listed.created, 'string');
  const thumb = await fetch(`${stack.proxyUrl}${listed.thumbnail as string}`);
  assert.equal(thumb.status, 200);
  assert.equal(thumb.headers.get('content-type'), 'image/jpeg');

  // The files, through the proxy, with DESIGN.md's headers; private files are not served.
  const playlistUrl = `${stack.proxyUrl}${ready.playlist}`;
  const m3u8 = await fetch(playlistUrl);
  assert.equal(m3u8.status, 200);
  assert.equal(m3u8.headers.get('content-type'), 'application/vnd.apple.mpegurl');
  const text = await m3u8.text();
  assert.match(text, /#EXT-X-PLAYLIST-TYPE:VOD/);
  assert.match(text, /#EXT-X-ENDLIST/);
  assert.match(text, /#EXT-X-MAP:URI="init.mp4"/);
  const segmentName = text.split('\n').find((l) => l.endsWith('.m4s'))!;
  const segment = await fetch(`${stack.proxyUrl}/uploaded/${body.id}/${segmentName}`);
  assert.equal(segment.status, 200);
  assert.match(segment.headers.get('cache-control') ?? '', /immutable/);
  assert.equal((await fetch(`${stack.proxyUrl}/uploaded/${body.id}/upload.json`)).status, 404);
  assert.equal((await fetch(`${stack.proxyUrl}/uploaded/${body.id}/..%2f..%2fingest`)).status, 400);
  assert.equal((await fetch(`${stack.proxyUrl}/uploaded/20990101-000000-abcdef/index.m3u8`)).status, 404);

  // ffprobe reads the whole VOD from the proxy: H.264 + AAC, the clip's duration.
  const { stdout } = await run('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', playlistUrl], { timeout: 30_000 });
  const probed = JSON.parse(stdout) as { format: { duration: string }; streams: Array<{ codec_type: string; codec_name: string }> };
  assert.deepEqual(probed.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort(), ['audio:aac', 'video:h264']);
  assert.ok(Math.abs(Number(probed.format.duration) - CLIP_SECONDS) < 0.5, `ffprobe duration ${probed.format.duration}`);

  // The upload request got its proxy access record (kind other).
  const record = await waitFor('the upload access record', () =>
    stack.proxy!.output.map((line) => {
      try {
        return (JSON.parse(line) as { access?: Record<string, unknown> }).access;
      } catch {
        return undefined;
      }
    }).find((a) => a?.method === 'POST' && a.path === '/uploads' && a.status === 202));
  assert.equal(record.kind, 'other');
  assert.equal(record.stream, null);
});

async function playerState(page: Page): Promise<{ state: string; currentTime: number; duration: number }> {
  return page.evaluate(() => {
    const p = (window as unknown as { onairPlayer?: { state: string; video: HTMLVideoElement } }).onairPlayer;
    return { state: p?.state ?? 'missing', currentTime: p?.video.currentTime ?? 0, duration: p?.video.duration ?? NaN };
  });
}

test('the upload page sends a video with progress, and it plays to its end in the same player', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    await page.goto(`${stack.proxyUrl}/upload`);
    await page.fill('#token', stack.opsToken);
    await page.fill('#title', 'Uploaded in the browser');
    await page.setInputFiles('#file', clip);
    await page.click('#send');
    const done = await waitFor('the page to report the upload ready', async () => {
      const s = await page.evaluate(() => (window as unknown as { onairUpload: { phase: string; uploadPercent: number; seen: string[]; error: string | null; page: string | null } }).onairUpload);
      assert.equal(s.error, null, `the page reported: ${s.error}`);
      return s.phase === 'ready' ? s : undefined;
    }, 60_000, 100);
    console.log(`# upload page phases: ${done.seen.join(' → ')}; bytes sent ${done.uploadPercent} %`);
    assert.ok(done.seen.includes('uploading'), 'byte progress shown while sending');
    assert.equal(done.uploadPercent, 100);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('onair-ops-token')), stack.opsToken, 'the token is kept for this tab');
    const link = page.locator('#watch');
    assert.equal(await link.isVisible(), true);
    await link.click();
    await page.waitForURL(/\/ondemand\/\d{8}-\d{6}-[a-z0-9]{6}$/);
    assert.equal(await page.locator('h1').textContent(), 'Uploaded in the browser');
    let maxTime = 0;
    const ended = await waitFor('the video to play to its end', async () => {
      const v = await playerState(page);
      maxTime = Math.max(maxTime, v.currentTime);
      return v.state === 'ended' ? v : undefined;
    }, 40_000, 200);
    await page.screenshot({ path: path.join(ARTIFACTS, 'upload-ended.png') });
    console.log(`# uploaded video played to ${ended.currentTime.toFixed(2)} s of ${ended.duration.toFixed(2)} s, state ${ended.state}`);
    assert.ok(maxTime > CLIP_SECONDS - 1, `reached the end: ${maxTime} s`);

    // Found where people find recordings: the front page's "On demand" and /ondemand.
    await page.goto(`${stack.proxyUrl}/`);
    assert.ok(await page.locator('ul.uploads a', { hasText: 'Uploaded in the browser' }).count() > 0, 'listed on the front page');
    await page.goto(`${stack.proxyUrl}/ondemand`);
    assert.ok(await page.locator('ul.uploads a', { hasText: 'Uploaded in the browser' }).count() > 0, 'listed on /ondemand');
  } catch (err) {
    await page.screenshot({ path: path.join(ARTIFACTS, 'upload-failure.png') }).catch(() => undefined);
    (err as Error).message += `\n${stack.diagnostics()}`;
    throw err;
  } finally {
    await page.close();
  }
});

test('bad uploads are refused with a clear message, nothing stays in staging, the service keeps running', async () => {
  const text = await upload(new Blob(['minutes of the meeting\n']), 'notes.txt', 'Notes');
  assert.equal(text.status, 415);
  assert.match((text.body as { error: string }).error, /^notes\.txt is not a video file: ffprobe /);

  const garbage = await upload(new Blob([randomBytes(64 * 1024)]), 'holiday.mp4', null);
  assert.equal(garbage.status, 415);
  assert.match((garbage.body as { error: string }).error, /^holiday\.mp4 is not a video file: ffprobe /);

  // An audio file with no picture is not a video either.
  const audio = path.join(temp.dir, 'tone.m4a');
  await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=duration=1', '-c:a', 'aac', audio]);
  const tone = await upload(new Blob([await readFile(audio)]), 'tone.m4a', null);
  assert.equal(tone.status, 415);
  assert.equal((tone.body as { error: string }).error, 'tone.m4a is not a video file: ffprobe found no video stream');

  // Over the limit: declared larger than the proxy allows (refused at the edge) and counted while
  // streaming at ingest (just over UPLOAD_MAX_BYTES, within the multipart allowance).
  const huge = await upload(new Blob([randomBytes(MAX_BYTES + 1_200_000)]), 'huge.mp4', null);
  assert.equal(huge.status, 413);
  assert.match(String(huge.body), /payload-too-large/);
  const over = await upload(new Blob([randomBytes(MAX_BYTES + 100_000)]), 'over.mp4', null);
  assert.equal(over.status, 413);
  assert.match((over.body as { error: string }).error, /^over\.mp4 is too large: uploads are limited to 2000000 bytes/);

  // No token, a wrong token: 401, at the proxy and at ingest directly.
  const clipBlob = new Blob([await readFile(clip)]);
  assert.equal((await upload(clipBlob, 'clip.mp4', null, {})).status, 401);
  assert.equal((await upload(clipBlob, 'clip.mp4', null, { authorization: 'Bearer not-the-ops-token' })).status, 401);
  const direct = await fetch(`${stack.controlUrl}/uploads`, { method: 'POST', body: new FormData(), headers: { authorization: 'Bearer not-the-ops-token' } });
  assert.equal(direct.status, 401);
  assert.match(((await direct.json()) as { error: string }).error, /ops token/);
  assert.equal((await fetch(`${stack.proxyUrl}/uploads`)).status, 401, 'the job list needs the token too');

  // Malformed multipart bodies: 400 with the reason.
  const broken = await fetch(`${stack.proxyUrl}/uploads`, {
    method: 'POST',
    headers: { ...auth(), 'content-type': 'multipart/form-data; boundary=onair' },
    body: '--onair\r\nContent-Disposition: form-data; name="file"; filename="cut.mp4"\r\n\r\nno closing boundary',
  });
  assert.equal(broken.status, 400);
  assert.match(((await broken.json()) as { error: string }).error, /^malformed multipart body/);
  const notMultipart = await fetch(`${stack.proxyUrl}/uploads`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: '{}' });
  assert.equal(notMultipart.status, 400);
  assert.match(((await notMultipart.json()) as { error: string }).error, /multipart\/form-data/);

  assert.deepEqual(await waitFor('staging to be empty', async () => ((await stagingFiles()).length === 0 ? [] : undefined), 5_000), []);
  // Still serving: the job list, and another upload end to end.
  const list = await fetch(`${stack.proxyUrl}/uploads`, { headers: auth() });
  assert.equal(list.status, 200);
  const jobs = ((await list.json()) as { uploads: UploadStatus[]; maxBytes: number });
  assert.equal(jobs.maxBytes, MAX_BYTES);
  assert.ok(jobs.uploads.every((j) => j.state === 'ready'), 'refused uploads left no job');
  assert.equal((await fetch(`${stack.controlUrl}/healthz`)).status, 200);
  assert.equal((await upload(clipBlob, 'again.mp4', 'Again')).status, 202);
  const metrics = await (await fetch(`${stack.controlUrl}/metrics`)).text();
  for (const line of ['onair_ingest_uploads_refused_total{reason="not-video"', 'onair_ingest_uploads_refused_total{reason="too-large"', 'onair_ingest_uploads_refused_total{reason="unauthorized"', 'onair_ingest_uploads_refused_total{reason="bad-request"']) {
    assert.match(metrics, new RegExp(`${line.replace(/[{}"]/g, '\\$&')}[^}]*} [1-9]`), line);
  }
});

test('deleting an upload removes it from the listing and its files', async () => {
  const jobs = ((await (await fetch(`${stack.proxyUrl}/uploads`, { headers: auth() })).json()) as { uploads: UploadStatus[] }).uploads;
  const victim = jobs.find((j) => j.title === 'Town hall (excerpt)')!;
  assert.equal((await fetch(`${stack.proxyUrl}/uploads/${victim.id}`, { method: 'DELETE' })).status, 401);
  assert.equal((await fetch(`${stack.proxyUrl}/uploads/${victim.id}`, { method: 'DELETE', headers: auth() })).status, 200);
  assert.equal((await fetch(`${stack.proxyUrl}/uploads/${victim.id}`, { headers: auth() })).status, 404);
  await waitFor('the listing to drop it', async () => {
    const listing = (await (await fetch(`${stack.proxyUrl}/vod.json`)).json()) as { uploads: Array<{ id: string }> };
    return listing.uploads.every((u) => u.id !== victim.id) ? true : undefined;
  }, 10_000, 200);
  assert.equal((await fetch(`${stack.proxyUrl}/uploaded/${victim.id}/index.m3u8`)).status, 404);
  assert.deepEqual((await readdir(path.join(stack.mediaDir, 'uploads'))).includes(victim.id), false);
  await writeFile(path.join(temp.dir, 'done'), '');
});
