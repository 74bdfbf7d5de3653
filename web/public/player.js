// onair player page. hls.js first: Debian's Chromium answers "maybe" to native HLS yet cannot play
// it, so native HLS is only the fallback for browsers without Media Source Extensions (iPhone Safari).
// States shown to the viewer: connecting, waiting, live, reconnecting, ended, denied (and unsupported).
// On a recording's page (data-mode="vod", /vod/<stream>/<session>) it plays the recording's playlist
// from the start: playing instead of live, ended at its end, missing when it does not exist. A
// recording still being made is an EVENT playlist that grows: watching it is "from the start" (DVR).

const Hls = window.Hls;
const root = document.getElementById('player');
const stream = root.dataset.stream;
const playlistUrl = root.dataset.playlist;
const video = document.getElementById('video');
const overlay = document.getElementById('overlay');
const statusLabel = document.getElementById('status');
const latencyLabel = document.getElementById('latency');
const metaLabel = document.getElementById('meta');
const unmuteButton = document.getElementById('unmute');
const playButton = document.getElementById('play');
const fromStartLink = document.getElementById('from-start');
const qualityBox = document.getElementById('quality-box');
const qualitySelect = document.getElementById('quality');
const vod = root.dataset.mode === 'vod';
const PLAYING = vod ? 'playing' : 'live';

const POLL_MS = 2000; // /streams.json: to start, to notice the broadcast leaving, to come back after "ended"
const STALL_MS = 3000; // no playback progress for this long while playing counts as a stall
const RESTART_AFTER_MS = 20000; // stalled this long while still live: start over with a fresh Hls
const MAX_RETRY_MS = 8000;
// One CMCD session id per page view. hls.js would make a new one per Hls instance, and this page
// makes a new instance on every restart, which would count one viewer as several sessions.
const SESSION_ID = newSessionId();
// Low-latency HLS (the stream's /streams.json entry says `lowLatency`): hls.js aims PART-HOLD-BACK
// behind the newest part (~1 s), so no liveSync* count may be set (any of them overrides it). A stall
// adds only 0.2 s to the target instead of hls.js's default second. Catch-up is ours (keepUp below):
// hls.js speeds up only with more than a second buffered, which a player 1 s behind live never has,
// so with it a viewer stays parked ~0.3 s behind the target, and starts (at a keyframe, up to a
// keyframe interval early) seconds behind. backBufferLength bounds memory on a long broadcast (a
// live page never seeks back; recordings have their own page).
const LOW_LATENCY_CONFIG = {
  lowLatencyMode: true,
  maxLiveSyncPlaybackRate: 1,
  liveSyncOnStallIncrease: 0.2,
  backBufferLength: 60,
};
// keepUp: more than this behind hls.js's target latency → jump (once it is buffered), else play
// at CATCH_UP_RATE while behind by more than CATCH_UP_FROM s and the buffer ahead allows it.
const JUMP_BEHIND_S = 0.5;
let startupJumped = false; // per Hls instance
let forgiveStallsUntil = 0;
const CATCH_UP_FROM_S = 0.1;
const CATCH_UP_RATE = 1.1;
const CATCH_UP_MIN_BUFFER_S = 0.4;
// Classic HLS (HLS_LOW_LATENCY=off): ~2 target durations behind live, catch up at up to 1.5x speed.
const CLASSIC_CONFIG = {
  lowLatencyMode: false,
  liveSyncDurationCount: 2,
  liveMaxLatencyDurationCount: 5,
  maxLiveSyncPlaybackRate: 1.5,
  backBufferLength: 60,
};
// A recording starts at its beginning and never jumps to the live edge by itself, even while it grows.
const VOD_CONFIG = {
  startPosition: 0,
  lowLatencyMode: false,
  liveSyncDurationCount: 3,
  liveMaxLatencyDurationCount: Infinity,
  maxLiveSyncPlaybackRate: 1,
};
// CMCD (query mode, the default): every playlist and segment request carries `CMCD=…sid="…"`, which
// web and proxy log as session_id, so viewers sharing one NAT address are told apart.
function hlsConfig() {
  const base = vod ? VOD_CONFIG : lowLatency ? LOW_LATENCY_CONFIG : CLASSIC_CONFIG;
  return { ...base, enableWorker: true, cmcd: { sessionId: SESSION_ID, contentId: stream } };
}
const VOD_CHECK_MS = 15000; // watch page: how often to look for the live broadcast's recording
const WORDS = {
  connecting: 'connecting…',
  waiting: 'waiting for the broadcast to start',
  live: 'live',
  reconnecting: 'reconnecting…',
  ended: 'the broadcast has ended',
  unsupported: 'this browser cannot play live video',
  denied: 'access denied: this link has expired or is not valid from here',
  playing: 'playing the recording',
  missing: 'this recording does not exist (any more)',
};
if (vod) WORDS.ended = 'end of the recording';

const engine = Hls && Hls.isSupported() ? 'hls.js' : video.canPlayType('application/vnd.apple.mpegurl') ? 'native' : null;

/** Read by automated browser tests; kept current. */
const player = { state: 'connecting', hls: null, video, stream, engine, latency: null, sessionId: SESSION_ID, lowLatency: false };
window.onairPlayer = player;

let listed = null; // in /streams.json at the last poll; null until the first answer
let lowLatency = false; // the stream's playlists are LL-HLS (its /streams.json entry)
let firstProbe = true;
let endlist = false; // the playlist being played carries EXT-X-ENDLIST
let progress = { time: -1, at: performance.now() };
let retryTimer = 0;
let retryDelay = 1000;
let lastMediaRecovery = -Infinity;
let lastVodCheck = -Infinity;

/** A v4 UUID; crypto.randomUUID exists only in secure contexts (HTTPS, localhost). */
function newSessionId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function setState(state) {
  if (player.state === state) return;
  player.state = state;
  statusLabel.textContent = WORDS[state];
  statusLabel.dataset.state = state;
  overlay.textContent = WORDS[state];
  overlay.hidden = state === PLAYING;
  if (state === PLAYING) retryDelay = 1000;
  updateUnmute();
  updateLatency();
}

/** Offered only while there is something to hear. */
function updateUnmute() {
  unmuteButton.hidden = !video.muted || !(player.state === PLAYING || player.state === 'reconnecting');
}

function play() {
  const attempt = video.play();
  if (!attempt) return;
  attempt.then(
    () => { playButton.hidden = true; },
    (err) => { if (err && err.name === 'NotAllowedError') playButton.hidden = false; },
  );
}

function stopPlayback() {
  clearTimeout(retryTimer);
  if (qualityBox) qualityBox.hidden = true;
  if (player.hls) {
    player.hls.destroy();
    player.hls = null;
  }
  if (engine === 'native' && video.getAttribute('src')) {
    video.removeAttribute('src');
    video.load();
  }
}

function startPlayback() {
  stopPlayback();
  endlist = false;
  progress = { time: -1, at: performance.now() };
  setState('connecting');
  if (engine === 'native') {
    video.src = playlistUrl;
    play();
    return;
  }
  const hls = new Hls(hlsConfig());
  startupJumped = false;
  player.lowLatency = !vod && lowLatency;
  player.hls = hls;
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    showQualities(hls);
    play();
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, () => showQualities(hls));
  hls.on(Hls.Events.LEVEL_LOADED, (_event, data) => { endlist = !data.details.live; });
  hls.on(Hls.Events.ERROR, (_event, data) => onHlsError(hls, data));
  hls.attachMedia(video);
  hls.loadSource(playlistUrl);
}

// Quality selector: only when the stream has several renditions (a quality ladder). "Auto" lets
// hls.js adapt to the bandwidth and names the level it plays now; a height pins that rendition.
function levelLabel(level) {
  const name = level.height ? `${level.height}p` : `${Math.round(level.bitrate / 1000)} kbit/s`;
  return level.name === 'source' ? `${name} (source)` : name;
}

function showQualities(hls) {
  if (!qualitySelect || !qualityBox) return;
  const levels = hls.levels || [];
  if (levels.length < 2) {
    qualityBox.hidden = true;
    return;
  }
  const playing = levels[hls.currentLevel];
  const order = levels.map((level, index) => ({ level, index })).sort((a, b) => (b.level.height - a.level.height) || (b.level.bitrate - a.level.bitrate));
  const options = [['auto', playing ? `Auto (${playing.height}p)` : 'Auto']].concat(order.map(({ level, index }) => [String(index), levelLabel(level)]));
  qualitySelect.replaceChildren(...options.map(([value, text]) => {
    const option = document.createElement('option');
    option.value = value;
    option.textContent = text;
    return option;
  }));
  qualitySelect.value = hls.autoLevelEnabled ? 'auto' : String(hls.currentLevel);
  qualityBox.hidden = false;
  player.quality = { auto: hls.autoLevelEnabled, level: hls.currentLevel, height: playing ? playing.height : null, levels: levels.length };
}

if (qualitySelect) {
  qualitySelect.addEventListener('change', () => {
    const hls = player.hls;
    if (!hls) return;
    // -1 = automatic; a level index switches now (the buffer ahead is replaced).
    hls.currentLevel = qualitySelect.value === 'auto' ? -1 : Number(qualitySelect.value);
    showQualities(hls);
  });
}

function scheduleRetry(action) {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(action, retryDelay);
  retryDelay = Math.min(retryDelay * 2, MAX_RETRY_MS);
}

function endBroadcast() {
  clearTimeout(retryTimer);
  if (player.hls) player.hls.stopLoad(); // keep the last frame; a new Hls is made when live again
  setState('ended');
}

function atBufferEnd() {
  const buffered = video.buffered;
  return buffered.length === 0 || buffered.end(buffered.length - 1) - video.currentTime < 0.5;
}

function onHlsError(hls, data) {
  if (hls !== player.hls || player.state === 'ended') return;
  if (!data.fatal) {
    if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR && player.state === PLAYING) setState('reconnecting');
    return;
  }
  if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
    // A second media error soon after the first: the audio codec guess may be wrong.
    const now = performance.now();
    if (now - lastMediaRecovery < 3000) hls.swapAudioCodec();
    lastMediaRecovery = now;
    setState('reconnecting');
    hls.recoverMediaError();
    return;
  }
  if (data.response && data.response.code === 403) {
    // The proxy refused us (expired playback link, network not allowed): retrying will not help.
    stopPlayback();
    setState('denied');
    return;
  }
  if (data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR && data.response && data.response.code === 404) {
    stopPlayback();
    if (vod) return setState('missing'); // deleted by retention, or a wrong link // the playlist is gone: the poll loop starts again when there is a broadcast
    setState(listed === false ? 'ended' : 'waiting');
    return;
  }
  if (listed === false && atBufferEnd()) return endBroadcast();
  setState('reconnecting');
  if (data.type === Hls.ErrorTypes.NETWORK_ERROR && !/^manifest/i.test(data.details)) scheduleRetry(() => hls.startLoad());
  else scheduleRetry(startPlayback);
}

/** Waiting or ended: start only when the stream is listed and its playlist is a live one (no ENDLIST). */
async function probe() {
  const first = firstProbe;
  firstProbe = false;
  if (!listed && !first) return;
  let playlist = null;
  try {
    const response = await fetch(playlistUrl, { cache: 'no-store' });
    if (response.status === 403) return setState('denied');
    if (response.ok) playlist = await response.text();
  } catch {
    return;
  }
  const finished = playlist !== null && playlist.includes('#EXT-X-ENDLIST');
  if (listed && playlist !== null && !finished) return startPlayback();
  if (listed) setState('waiting');
  else setState(finished || player.state === 'ended' ? 'ended' : 'waiting');
}

function showMeta(info) {
  if (!info) {
    metaLabel.textContent = '';
    return;
  }
  const parts = [];
  if (info.video) parts.push(`${info.video.width}×${info.video.height}`);
  const since = new Date(info.since);
  if (!Number.isNaN(since.getTime())) parts.push(`since ${since.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`);
  metaLabel.textContent = parts.join(' · ');
}

async function poll() {
  try {
    const response = await fetch('/streams.json', { cache: 'no-store' });
    if (response.ok) {
      const info = (await response.json()).streams.find((s) => s.stream === stream);
      listed = Boolean(info);
      if (info) lowLatency = info.lowLatency === true;
      showMeta(info);
    }
  } catch {
    // The network blinked: decide again at the next poll.
  }
  const idle = player.state === 'waiting' || player.state === 'ended' || (player.state === 'connecting' && !player.hls && !video.getAttribute('src'));
  if (idle && listed !== null) await probe();
  if (fromStartLink) await offerFromStart();
  setTimeout(poll, POLL_MS);
}

/** Watch page: while live, link to the broadcast's recording, which plays from its start (DVR). */
async function offerFromStart() {
  if (!listed) {
    fromStartLink.hidden = true;
    return;
  }
  if (performance.now() - lastVodCheck < VOD_CHECK_MS) return;
  lastVodCheck = performance.now();
  try {
    const response = await fetch(`/vod.json?stream=${encodeURIComponent(stream)}`, { cache: 'no-store' });
    if (!response.ok) return;
    const recording = (await response.json()).recordings.find((r) => r.live);
    if (recording) fromStartLink.href = recording.page;
    fromStartLink.hidden = !recording;
  } catch {
    // Try again at the next check.
  }
}

function updateLatency() {
  // A finished recording has no live edge; one still being made shows how far behind live it plays.
  const latency = player.hls && player.state === PLAYING && !(vod && endlist) ? player.hls.latency : NaN;
  player.latency = Number.isFinite(latency) ? latency : null;
  latencyLabel.textContent = player.latency === null ? '' : `${player.latency.toFixed(1)} s behind live`;
  if (vod && endlist) document.getElementById('to-live')?.setAttribute('hidden', '');
}

function bufferedAhead() {
  const b = video.buffered;
  for (let i = 0; i < b.length; i++) if (b.start(i) <= video.currentTime + 0.05 && video.currentTime < b.end(i)) return b.end(i) - video.currentTime;
  return 0;
}

function isBuffered(time) {
  const b = video.buffered;
  for (let i = 0; i < b.length; i++) if (b.start(i) <= time && time < b.end(i) - 0.1) return true;
  return false;
}

/** Low latency: stay at hls.js's target latency (PART-HOLD-BACK, plus what stalls added): see LOW_LATENCY_CONFIG. */
function keepUp() {
  const hls = player.hls;
  if (!player.lowLatency) return;
  const latency = hls ? hls.latency : NaN;
  const target = hls ? hls.targetLatency : NaN;
  const starting = player.state === 'connecting';
  if (!hls || !(starting || player.state === PLAYING) || !(latency > 0) || !(target > 0)) {
    if (video.playbackRate !== 1) video.playbackRate = 1;
    return;
  }
  const behind = latency - target;
  const sync = hls.liveSyncPosition;
  // hls.js starts where a segment starts (its first independent part): up to a keyframe interval
  // behind its target. Jump there as soon as that is buffered (at start-up, before playing if it can).
  if (behind > JUMP_BEHIND_S && sync && sync > video.currentTime && isBuffered(sync)) {
    if (!startupJumped) {
      startupJumped = true;
      forgiveStallsUntil = performance.now() + 2000;
    }
    video.currentTime = sync;
    return;
  }
  // hls.js counts the start-up jump as a stall and adds to its target for good: not ours to keep.
  if (performance.now() < forgiveStallsUntil) {
    const details = hls.levels && hls.levels[hls.currentLevel] && hls.levels[hls.currentLevel].details;
    const holdBack = details && details.partHoldBack;
    if (holdBack && target > holdBack + 0.01) hls.targetLatency = holdBack;
  }
  if (starting || video.paused) return;
  const ahead = bufferedAhead();
  let rate = video.playbackRate;
  if (behind > CATCH_UP_FROM_S && ahead > CATCH_UP_MIN_BUFFER_S) rate = CATCH_UP_RATE;
  else if (behind <= CATCH_UP_FROM_S / 2 || ahead < CATCH_UP_MIN_BUFFER_S / 2) rate = 1;
  if (video.playbackRate !== rate) video.playbackRate = rate;
}

/** Once a second: latency, and stall detection (hls.js rebuffers by itself; we name the state and decide "ended"). */
function watchdog() {
  updateLatency();
  const playing = player.state === PLAYING || player.state === 'reconnecting' || player.state === 'connecting';
  if (!playing || !playButton.hidden || (video.paused && player.state === PLAYING)) return;
  const stalledFor = performance.now() - progress.at;
  if (stalledFor < STALL_MS) return;
  if ((endlist || listed === false) && atBufferEnd()) return endBroadcast();
  if (player.state === PLAYING) setState('reconnecting');
  if (stalledFor > RESTART_AFTER_MS) startPlayback();
}

video.addEventListener('timeupdate', () => {
  keepUp();
  if (video.currentTime === progress.time) return;
  progress = { time: video.currentTime, at: performance.now() };
  if (!video.paused && (player.state === 'connecting' || player.state === 'reconnecting')) setState(PLAYING);
});
// The first frames are buffered: a low-latency start jumps to its target before playing.
video.addEventListener('canplay', keepUp);
video.addEventListener('ended', () => {
  if (player.state !== 'waiting' && player.state !== 'ended') endBroadcast();
});
video.addEventListener('error', () => {
  // hls.js reports its own errors; this is the native engine's only signal.
  if (engine !== 'native' || player.state === 'ended' || player.state === 'waiting') return;
  setState('reconnecting');
  scheduleRetry(startPlayback);
});
video.addEventListener('volumechange', updateUnmute);
unmuteButton.addEventListener('click', () => {
  video.muted = false;
  if (video.volume === 0) video.volume = 1;
  if (video.paused) play();
});
playButton.addEventListener('click', () => {
  playButton.hidden = true;
  play();
});

// Server-rendered times (the recording's start) are ISO; show them in the viewer's local time.
for (const time of root.querySelectorAll('time')) {
  const date = new Date(time.dateTime);
  if (!Number.isNaN(date.getTime())) time.textContent = date.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

// Autoplay is only allowed muted; the unmute button is one tap away.
video.muted = true;
if (engine === null) {
  setState('unsupported');
} else if (vod) {
  // A recording needs no broadcast to be live: play it straight away.
  startPlayback();
  setInterval(watchdog, 1000);
} else {
  poll();
  setInterval(watchdog, 1000);
}
