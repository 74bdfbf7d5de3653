// /upload: sends a video to POST /uploads (relayed by the proxy to ingest) with the ops token, shows
// the upload's bytes progress (XHR upload events), then its transcode progress (GET /uploads/<id>),
// and a link to play it once ready. The token stays in this tab's sessionStorage only.
const TOKEN_KEY = 'onair-ops-token';
const POLL_MS = 1000;
const form = document.getElementById('upload-form');
const tokenInput = document.getElementById('token');
const titleInput = document.getElementById('title');
const fileInput = document.getElementById('file');
const sendButton = document.getElementById('send');
const progressBox = document.getElementById('progress');
const phaseLabel = document.getElementById('phase');
const percentLabel = document.getElementById('percent');
const bar = document.getElementById('bar');
const message = document.getElementById('message');
const watchLink = document.getElementById('watch');

/** Read by automated browser tests; kept current. */
const state = { phase: 'idle', uploadPercent: 0, transcodePercent: 0, id: null, error: null, page: null, seen: [] };
window.onairUpload = state;

tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || '';

function show(phase, percent, text) {
  state.phase = phase;
  if (!state.seen.includes(phase)) state.seen.push(phase);
  progressBox.hidden = false;
  phaseLabel.textContent = phase;
  percentLabel.textContent = percent === null ? '' : `${percent} %`;
  bar.value = percent === null ? 0 : percent;
  message.textContent = text || '';
}

function fail(text) {
  state.error = text;
  show('failed', null, text);
  sendButton.disabled = false;
}

function errorOf(xhrOrResponseText, status) {
  try {
    const body = JSON.parse(xhrOrResponseText);
    if (body && body.error) return body.error;
  } catch {
    // not JSON (the proxy's own refusals are plain text)
  }
  return (xhrOrResponseText || '').trim() || `the server answered ${status}`;
}

async function api(path, token) {
  const response = await fetch(path, { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
  const text = await response.text();
  if (!response.ok) throw Object.assign(new Error(errorOf(text, response.status)), { status: response.status });
  return JSON.parse(text);
}

async function follow(id, token) {
  try {
    const job = await api(`/uploads/${encodeURIComponent(id)}`, token);
    state.transcodePercent = job.percent;
    if (job.state === 'ready') {
      state.page = job.page;
      show('ready', 100, `“${job.title}” is ready.`);
      watchLink.href = job.page;
      watchLink.hidden = false;
      sendButton.disabled = false;
      return;
    }
    if (job.state === 'failed') return fail(`transcoding failed: ${job.error}`);
    show(job.state, job.percent, job.state === 'queued' ? 'waiting for the uploads before it' : 'converting for streaming');
  } catch (err) {
    if (err.status === 401 || err.status === 404) return fail(err.message);
    // A blip: try again at the next poll.
  }
  setTimeout(() => follow(id, token), POLL_MS);
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  const file = fileInput.files[0];
  if (!token || !file) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  sendButton.disabled = true;
  watchLink.hidden = true;
  state.error = null;
  try {
    // The limit is known before sending gigabytes for nothing.
    const { maxBytes } = await api('/uploads', token);
    if (file.size > maxBytes) return fail(`${file.name} is too large: uploads are limited to ${maxBytes} bytes`);
  } catch (err) {
    if (err.status === 401) sessionStorage.removeItem(TOKEN_KEY);
    return fail(err.message);
  }
  const body = new FormData();
  body.append('title', titleInput.value);
  body.append('file', file);
  const xhr = new XMLHttpRequest();
  xhr.open('POST', '/uploads');
  xhr.setRequestHeader('authorization', `Bearer ${token}`);
  xhr.upload.addEventListener('progress', (e) => {
    if (!e.lengthComputable) return;
    state.uploadPercent = Math.floor((e.loaded / e.total) * 100);
    show('uploading', state.uploadPercent, `${(e.loaded / 1048576).toFixed(1)} of ${(e.total / 1048576).toFixed(1)} MB`);
  });
  xhr.addEventListener('load', () => {
    if (xhr.status !== 202) {
      if (xhr.status === 401) sessionStorage.removeItem(TOKEN_KEY);
      return fail(errorOf(xhr.responseText, xhr.status));
    }
    const accepted = JSON.parse(xhr.responseText);
    state.id = accepted.id;
    state.uploadPercent = 100;
    show('queued', 0, 'uploaded; waiting to be converted');
    follow(accepted.id, token);
  });
  xhr.addEventListener('error', () => fail('the upload was interrupted (network error or refused by the server)'));
  show('uploading', 0, '');
  xhr.send(body);
});
