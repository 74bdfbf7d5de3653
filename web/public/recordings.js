// Keeps /vod/<stream> (the stream's recordings) current from /vod.json without reloading the page.
const REFRESH_MS = 10000;
const root = document.getElementById('recordings-page');
const stream = root.dataset.stream;
const list = document.getElementById('recordings');
const none = document.getElementById('no-recordings');

function localTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

function duration(seconds) {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

function renderItem(r) {
  const item = document.createElement('li');
  const link = document.createElement('a');
  link.href = r.page;
  if (r.thumbnail) {
    const img = document.createElement('img');
    img.src = r.thumbnail;
    img.alt = '';
    img.loading = 'lazy';
    img.width = 320;
    img.height = 180;
    link.append(img);
  } else {
    const blank = document.createElement('span');
    blank.className = 'nothumb';
    link.append(blank);
  }
  const meta = document.createElement('span');
  meta.className = 'meta';
  const time = document.createElement('time');
  time.dateTime = r.started;
  time.textContent = localTime(r.started);
  const length = document.createElement('span');
  length.className = r.live ? 'duration live' : 'duration';
  length.textContent = r.live ? 'recording now' : duration(r.durationSeconds);
  meta.append(time, ' · ', length);
  link.append(meta);
  item.append(link);
  return item;
}

async function refresh() {
  try {
    const response = await fetch(`/vod.json?stream=${encodeURIComponent(stream)}`, { cache: 'no-store' });
    if (response.ok) {
      const { recordings } = await response.json();
      list.replaceChildren(...recordings.map(renderItem));
      none.hidden = recordings.length > 0;
    }
  } catch {
    // Offline for a moment: keep the last list.
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

for (const time of list.querySelectorAll('time')) time.textContent = localTime(time.dateTime);
refresh();
