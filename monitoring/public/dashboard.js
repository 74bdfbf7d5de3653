// onair ops dashboard: one WebSocket pushes the overview every refresh; each stream card keeps a
// uPlot chart of viewers (unique IPs and player sessions) seeded from /api/streams/<s>/history.
'use strict';
(function () {
  const HISTORY_MINUTES = 30;
  const cards = new Map(); // stream -> { el, chart, data }
  const state = { lastOverview: null, connected: false, messages: 0 };
  window.onairDashboard = state;

  const $ = (sel, root) => (root || document).querySelector(sel);
  const fmt = {
    int: (n) => Math.round(n).toLocaleString(),
    rate: (n) => (n >= 100 ? Math.round(n).toLocaleString() : n.toFixed(1)),
    bits: (bytesPerSecond) => {
      const b = bytesPerSecond * 8;
      if (b >= 1e9) return (b / 1e9).toFixed(2) + ' Gbit/s';
      if (b >= 1e6) return (b / 1e6).toFixed(1) + ' Mbit/s';
      return (b / 1e3).toFixed(0) + ' kbit/s';
    },
    pct: (x) => (x * 100).toFixed(x < 0.01 && x > 0 ? 2 : 1) + ' %',
    time: (iso) => (iso ? new Date(iso).toLocaleTimeString() : '–'),
  };
  const COLORS = ['#5ab0ff', '#c08cff', '#35c26b', '#f0b429', '#ef4452', '#4dd4c6'];

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children || []) node.appendChild(c);
    return node;
  }

  function number(cls, id, label) {
    return el('div', { class: 'number ' + cls }, [el('b', { 'data-field': id, text: '0' }), el('span', { text: label })]);
  }

  function createCard(stream) {
    const card = el('article', { class: 'card', 'data-stream': stream }, [
      el('div', { class: 'top' }, [el('h3', { text: stream }), el('span', { class: 'state offline', 'data-field': 'state', text: 'offline' })]),
      el('div', { class: 'numbers' }, [
        number('ips', 'ips', 'viewers · unique IPs'),
        number('sessions', 'sessions', 'player sessions'),
        number('peak', 'peak', 'peak (IPs)'),
        number('egress', 'egress', 'egress'),
        number('rps', 'rps', 'requests/s'),
        number('errors', 'errors', '5xx errors'),
      ]),
      el('div', { class: 'chart' }),
      el('div', { class: 'share', 'data-field': 'share' }),
      el('div', { class: 'meta', 'data-field': 'meta' }),
      el('div', { class: 'meta transcode', 'data-field': 'transcode' }),
    ]);
    const list = $('#streams');
    const empty = $('.empty', list);
    if (empty) empty.remove();
    list.appendChild(card);
    const data = [[], [], []];
    const chart = new uPlot(
      {
        width: Math.max(280, card.clientWidth - 32),
        height: 180,
        legend: { show: true },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(4, Math.ceil(max * 1.15))] } },
        axes: [{ stroke: '#9aa3b2', grid: { stroke: '#262b36' } }, { stroke: '#9aa3b2', grid: { stroke: '#262b36' } }],
        series: [{}, { label: 'unique IPs', stroke: '#5ab0ff', width: 2, fill: 'rgba(90,176,255,0.12)' }, { label: 'sessions', stroke: '#c08cff', width: 1.5 }],
      },
      data,
      $('.chart', card),
    );
    const entry = { el: card, chart, data, seeded: false };
    cards.set(stream, entry);
    seedHistory(stream, entry);
    return entry;
  }

  async function seedHistory(stream, entry) {
    try {
      const res = await fetch('/api/streams/' + encodeURIComponent(stream) + '/history?minutes=' + HISTORY_MINUTES, { credentials: 'same-origin' });
      if (!res.ok) return;
      const body = await res.json();
      const live = entry.data;
      const t = body.points.map((p) => Date.parse(p.t) / 1000);
      // History first, then whatever arrived live meanwhile (newer than the last bucket).
      const lastT = t.length ? t[t.length - 1] : 0;
      const keep = live[0].map((x, i) => i).filter((i) => live[0][i] > lastT);
      entry.data = [
        t.concat(keep.map((i) => live[0][i])),
        body.points.map((p) => p.ips).concat(keep.map((i) => live[1][i])),
        body.points.map((p) => p.sessions).concat(keep.map((i) => live[2][i])),
      ];
      entry.seeded = true;
      entry.chart.setData(entry.data);
    } catch (err) {
      console.warn('history unavailable', err);
    }
  }

  function set(card, field, text) {
    const node = $('[data-field="' + field + '"]', card);
    if (node && node.textContent !== text) node.textContent = text;
  }

  function render(overview) {
    state.lastOverview = overview;
    state.messages += 1;
    const seen = new Set();
    const now = Date.parse(overview.generatedAt) / 1000;
    for (const s of overview.streams) {
      seen.add(s.stream);
      const entry = cards.get(s.stream) || createCard(s.stream);
      const card = entry.el;
      const badge = $('[data-field="state"]', card);
      badge.className = 'state ' + s.state;
      badge.textContent = s.state;
      set(card, 'ips', fmt.int(s.viewers.ips));
      set(card, 'sessions', fmt.int(s.viewers.sessions));
      set(card, 'peak', fmt.int(s.peak.ips));
      set(card, 'egress', fmt.bits(s.egressBytesPerSecond));
      set(card, 'rps', fmt.rate(s.requestsPerSecond));
      set(card, 'errors', fmt.pct(s.errorRate));
      const video = s.video ? s.video.width + '×' + s.video.height + ' ' + s.video.fps + ' fps · ' : '';
      set(card, 'meta', video + (s.since ? 'live since ' + fmt.time(s.since) + ' · ' : '') + 'peak ' + s.peak.ips + ' IPs / ' + s.peak.sessions + ' sessions at ' + fmt.time(s.peak.at));
      set(card, 'transcode', transcodeText(s, overview.ingest));
      $('[data-field="transcode"]', card).classList.toggle('slow', !!(s.transcode && s.transcode.slow));
      const share = $('[data-field="share"]', card);
      share.replaceChildren(
        ...Object.entries(s.backendShare).map(([backend, x], i) => {
          const bar = el('i', { title: backend + ': ' + fmt.pct(x) });
          bar.style.width = (x * 100).toFixed(2) + '%';
          bar.style.background = COLORS[i % COLORS.length];
          return bar;
        }),
      );
      const d = entry.data;
      d[0].push(now);
      d[1].push(s.viewers.ips);
      d[2].push(s.viewers.sessions);
      const cutoff = now - HISTORY_MINUTES * 60;
      while (d[0].length && d[0][0] < cutoff) {
        d[0].shift();
        d[1].shift();
        d[2].shift();
      }
      entry.chart.setData(d);
    }
    for (const [stream, entry] of cards) {
      if (!seen.has(stream)) {
        entry.chart.destroy();
        entry.el.remove();
        cards.delete(stream);
      }
    }
    if (cards.size === 0 && !$('.empty')) $('#streams').appendChild(el('p', { class: 'empty', text: 'No stream is live and nobody is watching.' }));
    renderBackends(overview.backends);
    renderPipeline(overview);
  }

  function renderBackends(backends) {
    const body = $('#backends tbody');
    if (!backends) {
      body.replaceChildren(el('tr', {}, [el('td', { colspan: '4', text: 'proxy not configured (PROXY_URL) or not reachable' })]));
      return;
    }
    body.replaceChildren(
      ...backends.map((b) =>
        el('tr', {}, [
          el('td', { text: b.url }),
          el('td', {}, [el('span', { class: 'badge ' + (b.state === 'healthy' ? 'ok' : 'bad'), text: b.state })]),
          el('td', { text: String(b.inFlight ?? '–') }),
          el('td', { text: String(b.requests ?? b.totalRequests ?? '–') }),
        ]),
      ),
    );
  }

  // Quality ladder and ffmpeg cost of a live stream, from ingest's GET /streams.
  function transcodeText(s, ingest) {
    if (!s.live) return '';
    if (ingest && !ingest.up) return 'ingest unreachable: ladder and CPU unknown';
    const t = s.transcode;
    if (!t) return '';
    const ladder = t.ladder === 'off' ? 'passthrough (no ladder)' : 'ladder ' + t.renditions.join(' · ');
    const cpu = t.cpuCores === null ? 'CPU –' : 'ffmpeg ' + t.cpuCores.toFixed(2) + ' cores';
    const speed = t.speed === null ? '' : ' · ' + t.speed.toFixed(2) + '×' + (t.slow ? ' — slower than real time!' : '');
    return ladder + ' · ' + cpu + speed;
  }

  function renderPipeline(overview) {
    const p = overview.pipeline;
    const lag = p.lagMs === null ? 'no records yet' : (p.lagMs / 1000).toFixed(1) + ' s';
    $('#lag').textContent = 'pipeline lag ' + lag;
    const senders = p.senders;
    const rows = [
      ['newest record', fmt.time(p.newestRecordAt)],
      ['lag (now − newest record)', lag],
      ['records waiting at senders', senders ? fmt.int(senders.queued) + ' in memory · ' + fmt.int(senders.spooled) + ' on disk' : '–'],
      ['records lost (dropped)', senders ? fmt.int(senders.dropped) : '–'],
      ['senders connected', senders ? senders.receiverConnected + ' of ' + senders.instances + (senders.unreachable ? ' (' + senders.unreachable + ' unreachable)' : '') : '–'],
      ['viewer window', overview.windowMs / 1000 + ' s'],
      ['updated', fmt.time(overview.generatedAt)],
    ];
    $('#pipeline').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  }

  // Replays being watched (GET /api/recordings: files of /archive/<stream>/<session>/ requested
  // within the viewer window). Polled, not pushed: it is not part of the per-second overview.
  const RECORDINGS_POLL_MS = 5000;
  async function refreshRecordings() {
    const body = $('#recordings tbody');
    try {
      const res = await fetch('/api/recordings', { credentials: 'same-origin' });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const answer = await res.json();
      state.recordings = answer.recordings;
      body.replaceChildren(
        ...(answer.recordings.length
          ? answer.recordings.map((r) =>
              el('tr', { 'data-recording': r.stream + '/' + r.session }, [
                el('td', { text: r.stream }),
                el('td', { text: r.session }),
                el('td', { text: fmt.int(r.viewers.ips) }),
                el('td', { text: fmt.int(r.viewers.sessions) }),
                el('td', { text: fmt.time(r.lastRequestAt) }),
              ]),
            )
          : [el('tr', {}, [el('td', { colspan: '5', text: 'nobody watched a recording in the last ' + answer.windowSeconds + ' s' })])]),
      );
    } catch (err) {
      body.replaceChildren(el('tr', {}, [el('td', { colspan: '5', text: 'unavailable (' + err.message + ')' })]));
    }
  }
  refreshRecordings();
  setInterval(refreshRecordings, RECORDINGS_POLL_MS);

  let retry = 500;
  function connect() {
    const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/live');
    const badge = $('#connection');
    ws.onopen = () => {
      retry = 500;
      state.connected = true;
      badge.className = 'badge ok';
      badge.textContent = 'live';
    };
    ws.onmessage = (event) => render(JSON.parse(event.data));
    ws.onclose = (event) => {
      state.connected = false;
      badge.className = 'badge bad';
      badge.textContent = event.code === 4401 ? 'signed out' : 'reconnecting…';
      if (event.code === 4401) {
        location.href = '/monitor';
        return;
      }
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  window.addEventListener('resize', () => {
    for (const entry of cards.values()) entry.chart.setSize({ width: Math.max(280, entry.el.clientWidth - 32), height: 180 });
  });
  connect();
})();
