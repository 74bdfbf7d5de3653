import type { PublicStream } from './live-streams.ts';

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

export function renderIndexPage(streams: readonly PublicStream[]): string {
  return layout('onair — live now', `<main class="index">
<h1>Live now</h1>
<p id="nothing-live" class="empty"${streams.length ? ' hidden' : ''}>Nothing is live right now. This page updates by itself.</p>
<ul id="streams" class="streams">${streams.map(streamItem).join('')}</ul>
</main>`, [{ src: '/assets/streams.js' }]);
}

export function renderWatchPage(stream: string): string {
  const name = escapeHtml(stream);
  return layout(`${stream} — onair`, `<main class="watch" id="player" data-stream="${name}" data-playlist="/live/${name}/index.m3u8">
<div class="stage">
<video id="video" muted autoplay playsinline controls></video>
<div id="overlay" class="overlay">connecting…</div>
<button id="unmute" class="unmute" type="button" hidden>Unmute</button>
<button id="play" class="play" type="button" hidden>Play</button>
</div>
<div class="bar">
<h1>${name}</h1>
<span id="status" class="status" data-state="connecting">connecting…</span>
<span id="latency" class="latency"></span>
<span id="meta" class="meta"></span>
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
