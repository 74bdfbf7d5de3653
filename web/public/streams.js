// Keeps the "live now" list on / current without reloading the page.
const REFRESH_MS = 3000;
const list = document.getElementById('streams');
const nothingLive = document.getElementById('nothing-live');

function describeVideo(s) {
  if (!s.video) return s.audio ? 'audio only' : '';
  const fps = s.video.fps ? ` · ${Math.round(s.video.fps)} fps` : '';
  return `${s.video.width}×${s.video.height}${fps}`;
}

function sinceText(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function renderItem(s) {
  const item = document.createElement('li');
  const link = document.createElement('a');
  link.href = `/watch/${encodeURIComponent(s.stream)}`;
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = s.stream;
  const meta = document.createElement('span');
  meta.className = 'meta';
  const parts = [s.state === 'reconnecting' ? 'reconnecting' : 'live', describeVideo(s)].filter(Boolean);
  meta.append(`${parts.join(' · ')} · since `);
  const time = document.createElement('time');
  time.dateTime = s.since;
  time.textContent = sinceText(s.since);
  meta.append(time);
  link.append(name, meta);
  item.append(link);
  return item;
}

function render(streams) {
  list.replaceChildren(...streams.map(renderItem));
  nothingLive.hidden = streams.length > 0;
}

async function refresh() {
  try {
    const response = await fetch('/streams.json', { cache: 'no-store' });
    if (response.ok) render((await response.json()).streams);
  } catch {
    // Offline for a moment: keep showing the last list and try again.
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

// Server-rendered times are ISO; show them in the viewer's local time straight away.
for (const time of list.querySelectorAll('time')) time.textContent = sinceText(time.dateTime);
refresh();
