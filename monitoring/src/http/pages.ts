/** The /monitor pages: a login form, and the dashboard shell (its script does the rest). */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export function loginPage(failed: boolean): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>onair · ops sign-in</title><link rel="stylesheet" href="/monitor/assets/dashboard.css"></head>
<body class="login"><main>
<h1><span class="dot"></span> onair ops</h1>
<form method="post" action="/monitor/login">
<label for="token">Ops token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
${failed ? '<p class="error" role="alert">That token is not right.</p>' : ''}
<button type="submit">Open the dashboard</button>
<p class="hint">The token is OPS_TOKEN (printed by <code>onair up</code> in local mode).</p>
</form></main></body></html>`;
}

export function dashboardPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>onair · live operations</title>
<link rel="stylesheet" href="/monitor/assets/uPlot.min.css"><link rel="stylesheet" href="/monitor/assets/dashboard.css"></head>
<body>
<header><h1><span class="dot"></span> onair · live operations</h1>
<div class="status"><span id="connection" class="badge">connecting…</span> <span id="lag"></span>
<form method="post" action="/monitor/logout"><button class="link">sign out</button></form></div></header>
<main>
<section id="streams" class="streams" aria-live="polite"><p class="empty">No stream is live and nobody is watching.</p></section>
<section class="panels">
<div class="panel"><h2>Delivery backends</h2><table id="backends"><thead><tr><th>backend</th><th>state</th><th>in flight</th><th>requests</th></tr></thead><tbody></tbody></table></div>
<div class="panel"><h2>Pipeline</h2><dl id="pipeline"></dl></div>
<div class="panel"><h2>Recordings being watched</h2><table id="recordings"><thead><tr><th>stream</th><th>recording</th><th>unique IPs</th><th>sessions</th><th>last request</th></tr></thead><tbody></tbody></table></div>
</section>
</main>
<script src="/monitor/assets/uPlot.iife.min.js"></script>
<script src="/monitor/assets/dashboard.js"></script>
</body></html>`;
}
