import type { PublicStream } from './live-streams.ts';
import type { PublicRecording } from './recordings.ts';
import type { PublicUpload } from './uploads.ts';

/** HTML pages. Everything dynamic is escaped; page scripts are files under /assets/ (strict CSP, no inline code). */

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Our own scripts are ES modules; hls.min.js is a classic (UMD) script that defines window.Hls. */
interface Script {
  src: string;
  classic?: boolean;
}

function layout(title: string, body: string, scripts: Script[] = []): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/style.css">
</head>
<body>
<header class="top"><a class="brand" href="/">onair</a></header>
${body}
${scripts.map((s) => `<script src="${escapeHtml(s.src)}"${s.classic ? '' : ' type="module"'}></script>`).join('\n')}
</body>
</html>
`;
}

/** "1280×720 · 30 fps" — what a viewer may care about before clicking. */
function describeVideo(stream: PublicStream): string {
  const v = stream.video;
  if (!v) return stream.audio ? 'audio only' : '';
  return `${v.width}×${v.height}${v.fps ? ` · ${Math.round(v.fps)} fps` : ''}`;
}

function streamItem(s: PublicStream): string {
  const meta = [s.state === 'reconnecting' ? 'reconnecting' : 'live', describeVideo(s)].filter(Boolean).join(' · ');
  return `<li><a href="/watch/${escapeHtml(s.stream)}"><span class="name">${escapeHtml(s.stream)}</span>`
    + `<span class="meta">${escapeHtml(meta)} · since <time datetime="${escapeHtml(s.since)}">${escapeHtml(s.since)}</time></span></a></li>`;
}

/** "1:02:03" or "4:05". */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** One recording as a card; the same markup is built by recordings.js from /vod.json. */
function recordingItem(r: PublicRecording, withStream: boolean): string {
  const thumb = r.thumbnail ? `<img src="${escapeHtml(r.thumbnail)}" alt="" loading="lazy" width="320" height="180">` : '<span class="nothumb"></span>';
  const label = r.live ? 'recording now' : formatDuration(r.durationSeconds);
  return `<li><a href="${escapeHtml(r.page)}">${thumb}`
    + `${withStream ? `<span class="name">${escapeHtml(r.stream)}</span>` : ''}`
    + `<span class="meta"><time datetime="${escapeHtml(r.started)}">${escapeHtml(r.started)}</time> · <span class="duration${r.live ? ' live' : ''}">${escapeHtml(label)}</span></span></a></li>`;
}

export function renderIndexPage(streams: readonly PublicStream[], recent: readonly PublicRecording[] = [], uploads: readonly PublicUpload[] = []): string {
  return layout('onair — live now', `<main class="index">
<h1>Live now</h1>
<p id="nothing-live" class="empty"${streams.length ? ' hidden' : ''}>Nothing is live right now. This page updates by itself.</p>
<ul id="streams" class="streams">${streams.map(streamItem).join('')}</ul>
${recent.length ? `<h2>Recent recordings</h2>
<ul class="recordings">${recent.map((r) => recordingItem(r, true)).join('')}</ul>` : ''}
${uploads.length ? `<h2>On demand</h2>
<ul class="recordings uploads">${uploads.map(uploadItem).join('')}</ul>
<p><a href="/ondemand">All on-demand videos</a></p>` : ''}
</main>`, [{ src: '/assets/streams.js' }]);
}

/** One uploaded video as a card: thumbnail, title, duration, date. */
function uploadItem(u: PublicUpload): string {
  const thumb = u.thumbnail ? `<img src="${escapeHtml(u.thumbnail)}" alt="" loading="lazy" width="320" height="180">` : '<span class="nothumb"></span>';
  return `<li><a href="${escapeHtml(u.page)}">${thumb}<span class="name">${escapeHtml(u.title)}</span>`
    + `<span class="meta"><time datetime="${escapeHtml(u.created)}">${escapeHtml(u.created)}</time> · <span class="duration">${escapeHtml(formatDuration(u.durationSeconds))}</span></span></a></li>`;
}

/** /ondemand: every uploaded video, newest first. */
export function renderOnDemandPage(uploads: readonly PublicUpload[]): string {
  return layout('On demand — onair', `<main class="index">
<h1>On demand</h1>
<p><a href="/upload">Upload a video</a></p>
<p id="no-uploads" class="empty"${uploads.length ? ' hidden' : ''}>No videos have been uploaded yet.</p>
<ul id="uploads" class="recordings uploads">${uploads.map(uploadItem).join('')}</ul>
</main>`, [{ src: '/assets/local-times.js' }]);
}

/** /ondemand/<id>: the same player as live and recordings, on the upload's VOD playlist. */
export function renderUploadPlayerPage(upload: PublicUpload): string {
  return layout(`${upload.title} — onair`, `<main class="watch" id="player" data-mode="vod" data-stream="${escapeHtml(upload.id)}" data-upload="${escapeHtml(upload.id)}" data-playlist="${escapeHtml(upload.playlist)}">
${stage()}
<div class="bar">
<h1>${escapeHtml(upload.title)}</h1>
<span id="status" class="status" data-state="connecting">connecting…</span>
<span class="meta">${escapeHtml(formatDuration(upload.durationSeconds))} · uploaded <time datetime="${escapeHtml(upload.created)}">${escapeHtml(upload.created)}</time></span>
<span id="latency" class="latency"></span>
<span id="meta" class="meta"></span>
<a class="action" href="/ondemand">All on-demand videos</a>
</div>
</main>`, [{ src: '/assets/hls.min.js', classic: true }, { src: '/assets/player.js' }]);
}

/** /upload: ops upload a video (the ops token is asked for here and kept in sessionStorage only). */
export function renderUploadPage(): string {
  return layout('Upload a video — onair', `<main class="index upload" id="upload-page">
<h1>Upload a video</h1>
<form id="upload-form" class="upload-form">
<label>Ops token <input id="token" name="token" type="password" autocomplete="off" required></label>
<label>Title <input id="title" name="title" type="text" maxlength="200" placeholder="taken from the file name when empty"></label>
<label>Video file <input id="file" name="file" type="file" accept="video/*" required></label>
<button id="send" type="submit">Upload</button>
</form>
<section id="progress" class="upload-progress" hidden>
<p><span id="phase">uploading</span> <span id="percent">0 %</span></p>
<progress id="bar" max="100" value="0"></progress>
<p id="message" class="message" role="status"></p>
<p><a id="watch" class="action" href="#" hidden>Play it</a></p>
</section>
<p><a href="/ondemand">All on-demand videos</a></p>
</main>`, [{ src: '/assets/upload.js' }]);
}

/** /vod/<stream>: the stream's recordings, newest first; kept current from /vod.json by recordings.js. */
export function renderRecordingsPage(stream: string, recordings: readonly PublicRecording[]): string {
  const name = escapeHtml(stream);
  return layout(`${stream} recordings — onair`, `<main class="index" id="recordings-page" data-stream="${name}">
<h1>Recordings of ${name}</h1>
<p><a href="/watch/${name}">Live player</a></p>
<p id="no-recordings" class="empty"${recordings.length ? ' hidden' : ''}>No recordings of this stream.</p>
<ul id="recordings" class="recordings">${recordings.map((r) => recordingItem(r, false)).join('')}</ul>
</main>`, [{ src: '/assets/recordings.js' }]);
}

/**
 * /vod/<stream>/<session>: the same player on the recording's playlist. While the broadcast is
 * still on, that playlist grows (an EVENT playlist): this is "watch from the start" (DVR).
 */
export function renderRecordingPage(recording: PublicRecording): string {
  const name = escapeHtml(recording.stream);
  const title = `${recording.stream} · ${recording.started}`;
  return layout(`${title} — onair`, `<main class="watch" id="player" data-mode="vod" data-stream="${name}" data-session="${escapeHtml(recording.session)}" data-playlist="${escapeHtml(recording.playlist)}">
${stage()}
<div class="bar">
<h1>${name}</h1>
<span id="status" class="status" data-state="connecting">connecting…</span>
<span class="meta">recorded <time datetime="${escapeHtml(recording.started)}">${escapeHtml(recording.started)}</time></span>
<span id="latency" class="latency"></span>
<span id="meta" class="meta"></span>
<a id="to-live" class="action" href="/watch/${name}"${recording.live ? '' : ' hidden'}>Back to live</a>
<a class="action" href="/vod/${name}">All recordings</a>
</div>
</main>`, [{ src: '/assets/hls.min.js', classic: true }, { src: '/assets/player.js' }]);
}

function stage(): string {
  return `<div class="stage">
<video id="video" muted autoplay playsinline controls></video>
<div id="overlay" class="overlay">connecting…</div>
<button id="unmute" class="unmute" type="button" hidden>Unmute</button>
<button id="play" class="play" type="button" hidden>Play</button>
<label id="quality-box" class="quality" hidden>Quality <select id="quality" aria-label="Video quality"></select></label>
</div>`;
}

export function renderWatchPage(stream: string): string {
  const name = escapeHtml(stream);
  return layout(`${stream} — onair`, `<main class="watch" id="player" data-stream="${name}" data-playlist="/live/${name}/index.m3u8">
${stage()}
<div class="bar">
<h1>${name}</h1>
<span id="status" class="status" data-state="connecting">connecting…</span>
<span id="latency" class="latency"></span>
<span id="meta" class="meta"></span>
<a id="from-start" class="action" href="/vod/${name}" hidden>Watch from the start</a>
<a class="action" href="/vod/${name}">Recordings</a>
</div>
</main>`, [{ src: '/assets/hls.min.js', classic: true }, { src: '/assets/player.js' }]);
}

export function renderNotFoundPage(message: string): string {
  return layout('not found — onair', `<main class="notfound">
<h1>Not found</h1>
<p>${escapeHtml(message)}</p>
<p><a href="/">See what is live now</a></p>
</main>`);
}
