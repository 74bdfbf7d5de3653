/**
 * k6 viewers that behave like hls.js players (the model lives in ../lib/viewer.js and is shared
 * with the Node runner and its unit tests). Runs on k6 0.48 and newer: ES2017 syntax only.
 *
 *   k6 run --no-usage-report --local-ips 127.0.0.2-127.0.0.250 \
 *     -e BASE_URL=http://127.0.0.1:8080 -e STREAM=demo -e SCENARIO=ramp -e VIEWERS=200 \
 *     -e OPS_TOKEN=… loadtest/k6/hls-viewers.js
 *
 * Environment: BASE_URL, STREAM, SCENARIO (smoke | ramp | soak), VIEWERS (N), RAMP (ramp time,
 * e.g. 2m), DURATION (hold or soak time, e.g. 5m), SESSION (one viewing session per iteration,
 * e.g. 10m), VARIANT (highest | lowest | random), OPS_TOKEN (optional: sample monitoring's viewer
 * count through BASE_URL/api/streams and compare it with the viewers k6 runs), SUMMARY_JSON (path).
 */
import http from 'k6/http';
import { sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Gauge, Rate, Trend } from 'k6/metrics';
import { SLO, watchStream } from '../lib/viewer.js';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const STREAM = __ENV.STREAM || 'demo';
const SCENARIO = __ENV.SCENARIO || 'smoke';
const VIEWERS = parseInt(__ENV.VIEWERS || '50', 10);
const RAMP = __ENV.RAMP || '2m';
const DURATION = __ENV.DURATION || '5m';
const SESSION_MS = parseDuration(__ENV.SESSION || '10m');
const VARIANT = __ENV.VARIANT || 'highest';
const OPS_TOKEN = __ENV.OPS_TOKEN || '';

const startupTime = new Trend('hls_startup_time', true);
const downloadRatio = new Trend('hls_segment_download_ratio');
const segmentTime = new Trend('hls_segment_time', true);
const playlistTime = new Trend('hls_playlist_time', true);
const stalls = new Counter('hls_stalls');
const stallSeconds = new Counter('hls_stall_seconds');
const stalePlaylists = new Counter('hls_stale_playlists');
const errors = new Counter('hls_errors');
const requestFailed = new Rate('hls_request_failed');
const monitoredIps = new Gauge('monitoring_viewer_ips');
const monitoredSessions = new Gauge('monitoring_viewer_sessions');
const countedMinusRunning = new Trend('monitoring_ips_minus_viewers');
const runningViewers = new Gauge('viewers_running');

/** smoke: one viewer; ramp: 0 → VIEWERS, then hold; soak: VIEWERS for DURATION. */
function viewerScenario() {
  if (SCENARIO === 'smoke') return { executor: 'constant-vus', vus: 1, duration: '30s', exec: 'viewer', gracefulStop: '5s' };
  if (SCENARIO === 'soak') return { executor: 'constant-vus', vus: VIEWERS, duration: DURATION, exec: 'viewer', gracefulStop: '5s' };
  if (SCENARIO === 'ramp') {
    return {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [{ duration: RAMP, target: VIEWERS }, { duration: DURATION, target: VIEWERS }],
      gracefulRampDown: '5s',
      exec: 'viewer',
    };
  }
  throw new Error('SCENARIO must be smoke, ramp or soak, not ' + SCENARIO);
}

const scenarios = { viewers: viewerScenario() };
if (OPS_TOKEN) {
  // One extra VU samples monitoring; its requests go to /api, which is not counted as viewing.
  scenarios.monitoring = { executor: 'constant-vus', vus: 1, duration: totalDuration(scenarios.viewers), exec: 'sampleMonitoring', gracefulStop: '5s' };
}

export const options = {
  scenarios: scenarios,
  discardResponseBodies: false,
  thresholds: {
    // "Viewers held at SLO" (../lib/viewer.js SLO, the same for the Node runner).
    hls_segment_download_ratio: ['p(95)<' + SLO.downloadRatioP95],
    hls_stalls: ['count<=' + SLO.stalls],
    hls_request_failed: ['rate<' + SLO.errorRate],
  },
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
};

/** One viewing session per iteration; a VU keeps watching until its session or the test ends. */
export function viewer() {
  const sessionId = 'k6-' + exec.vu.idInTest + '-' + exec.vu.iterationInScenario;
  const session = watchStream({
    url: BASE_URL + '/live/' + STREAM + '/index.m3u8',
    startMs: Date.now(),
    durationMs: SESSION_MS,
    variantPolicy: VARIANT,
    sessionId: sessionId,
    observer: {
      request: function (what, ms, ok) {
        requestFailed.add(!ok, { what: what });
        if (what === 'playlist') playlistTime.add(ms);
        else segmentTime.add(ms, { what: what });
      },
      startup: function (ms) { startupTime.add(ms); },
      segment: function (downloadMs, durationSeconds) { downloadRatio.add(downloadMs / (durationSeconds * 1000)); },
      stallStarted: function () { stalls.add(1); },
      stallEnded: function (seconds) { stallSeconds.add(seconds); },
      stale: function () { stalePlaylists.add(1); },
      error: function (kind, what) { errors.add(1, { kind: kind, what: what }); },
    },
  });
  drive(session);
}

/** Runs the viewer model's effects with k6's blocking HTTP client and sleep. */
function drive(session) {
  let step = session.next();
  while (!step.done) {
    const action = step.value;
    if (action.op === 'get') {
      const isText = action.what === 'playlist';
      const startMs = Date.now();
      const res = http.get(action.url, { responseType: isText ? 'text' : 'none', timeout: '10s', tags: { what: action.what, name: action.what } });
      const endMs = Date.now();
      let error = null;
      if (res.status === 0) error = res.error_code === 1050 ? 'timeout' : 'network';
      const length = parseInt(res.headers['Content-Length'] || '0', 10);
      step = session.next({ status: res.status, body: isText ? res.body : null, bytes: isText && res.body ? res.body.length : length, startMs: startMs, endMs: endMs, error: error });
    } else {
      const waitMs = action.untilMs - Date.now();
      if (waitMs > 0) sleep(waitMs / 1000);
      step = session.next(Date.now());
    }
  }
}

/** Every 5 s: monitoring's count of this stream's viewers vs the viewer VUs running now. */
export function sampleMonitoring() {
  const res = http.get(BASE_URL + '/api/streams', { headers: { Authorization: 'Bearer ' + OPS_TOKEN }, tags: { name: 'monitoring' } });
  if (res.status === 200) {
    const streams = res.json('streams') || [];
    for (let i = 0; i < streams.length; i++) {
      if (streams[i].stream !== STREAM) continue;
      const running = Math.max(0, exec.instance.vusActive - 1);
      monitoredIps.add(streams[i].viewers.ips);
      monitoredSessions.add(streams[i].viewers.sessions);
      runningViewers.add(running);
      countedMinusRunning.add(streams[i].viewers.ips - running);
    }
  }
  sleep(5);
}

export function handleSummary(data) {
  const m = data.metrics;
  const value = function (name, stat) { return m[name] && m[name].values[stat] !== undefined ? m[name].values[stat] : NaN; };
  const lines = [
    'onair HLS viewers: scenario ' + SCENARIO + ', stream ' + STREAM + ', up to ' + (SCENARIO === 'smoke' ? 1 : VIEWERS) + ' viewers',
    '  startup (first playlist → first segment) p50/p95: ' + fmt(value('hls_startup_time', 'med')) + ' / ' + fmt(value('hls_startup_time', 'p(95)')) + ' ms',
    '  segment download ÷ duration p95: ' + fmt(value('hls_segment_download_ratio', 'p(95)'), 3) + ' (SLO < ' + SLO.downloadRatioP95 + ')',
    '  segment time p50/p99: ' + fmt(value('hls_segment_time', 'med')) + ' / ' + fmt(value('hls_segment_time', 'p(99)')) + ' ms; playlist p50/p99: ' + fmt(value('hls_playlist_time', 'med')) + ' / ' + fmt(value('hls_playlist_time', 'p(99)')) + ' ms',
    '  stalls: ' + fmt(value('hls_stalls', 'count') || 0) + ' (' + fmt(value('hls_stall_seconds', 'count') || 0, 1) + ' s), stale playlists: ' + fmt(value('hls_stale_playlists', 'count') || 0),
    '  failed requests: ' + fmt(100 * (value('hls_request_failed', 'rate') || 0), 3) + ' % (SLO < ' + 100 * SLO.errorRate + ' %), errors: ' + fmt(value('hls_errors', 'count') || 0),
  ];
  if (m.monitoring_viewer_ips) {
    lines.push('  monitoring counted (last sample): ' + value('monitoring_viewer_ips', 'value') + ' unique IPs, ' + value('monitoring_viewer_sessions', 'value') +
      ' sessions, while k6 ran ' + value('viewers_running', 'value') + ' viewers; peak IPs ' + value('monitoring_viewer_ips', 'max') +
      ' vs peak viewers ' + value('viewers_running', 'max') + ' (IPs − viewers per sample: median ' + fmt(value('monitoring_ips_minus_viewers', 'med'), 1) + ')');
    lines.push('  (with --local-ips 127.0.0.2-127.0.0.250 at most 249 viewers have their own address; monitoring counts over its window, 30 s by default)');
  }
  const out = { stdout: lines.join('\n') + '\n' };
  if (__ENV.SUMMARY_JSON) out[__ENV.SUMMARY_JSON] = JSON.stringify(data, null, 2);
  return out;
}

function fmt(n, digits) {
  return isFinite(n) ? n.toFixed(digits === undefined ? 0 : digits) : 'n/a';
}

/** "90s", "5m", "1h" → milliseconds. */
function parseDuration(text) {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (match === null) throw new Error('bad duration "' + text + '" (use e.g. 90s, 5m, 1h)');
  const unit = { ms: 1, s: 1000, m: 60000, h: 3600000 }[match[2]];
  return parseFloat(match[1]) * unit;
}

function totalDuration(scenario) {
  if (scenario.executor === 'constant-vus') return scenario.duration;
  let ms = 0;
  for (let i = 0; i < scenario.stages.length; i++) ms += parseDuration(scenario.stages[i].duration);
  return Math.round(ms / 1000) + 's';
}
