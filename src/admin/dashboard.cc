#include "admin/dashboard.h"

namespace speedmimi::admin {
namespace {

// The browser enforces "nothing from elsewhere" too: scripts and styles only inline, images
// only data: URLs, calls only to this origin, no framing (the page has buttons that change
// backends), no form submission anywhere (the token form is handled by the script).
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

// The page. Its script writes every value it gets from the API with textContent, never as
// markup. The fields that a newer API may add (latency percentiles, head-time percentiles,
// health history) are looked up under the names listed in SERVER_P, BACKEND_P99 and
// BACKEND_HISTORY, and shown as "–" when absent.
constexpr std::string_view kPage = R"page(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SpeedMimi dashboard</title>
<link rel="icon" href="data:,">
<style>
:root {
  --bg: #f4f6f8; --fg: #1a1f24; --muted: #57606a; --card: #fff; --line: #d0d7de;
  --head: #1d2b38; --accent: #0a5cc2; --second: #c2410c; --up: #116329; --down: #b42318;
  --unknown: #7a5c00; --focus: #f5a623; --inactive: #eef0f2;
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
}
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .4rem .8rem; }
.skip:focus { left: .5rem; z-index: 10; }
header {
  display: flex; align-items: center; gap: 1rem; flex-wrap: wrap;
  padding: .5rem 1.2rem; background: var(--head); color: #fff;
}
header h1 { font-size: 1.1rem; margin: 0; letter-spacing: .02em; }
#meta { color: #c8d3de; font-size: .85rem; }
#state { margin-left: auto; font-size: .85rem; color: #c8d3de; }
#state.error { color: #ffb4ab; font-weight: 600; }
header button { background: transparent; color: #fff; border-color: #8fa3b6; }
header button:hover { background: #2c3e50; }
main { padding: .7rem 1.2rem 2rem; max-width: 1500px; margin: 0 auto; }
h2 { font-size: 1rem; margin: .9rem 0 .4rem; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .95em; }
.totals {
  display: grid; grid-template-columns: repeat(7, minmax(0, 1fr)); gap: .5rem; margin: 0 0 .6rem;
}
.total { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .35rem .65rem; }
.total dt { color: var(--muted); font-size: .78rem; text-transform: uppercase; letter-spacing: .04em; }
.total dd { margin: 0; font-size: 1.2rem; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
.total dd.sub { font-size: .78rem; font-weight: 400; color: var(--muted); white-space: normal; }
figure.chart { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .35rem .6rem .4rem; }
figure.chart figcaption { font-size: .8rem; color: var(--muted); display: flex; gap: 1.2rem; align-items: center; }
.key::before { content: ""; display: inline-block; width: 1.4em; height: .22em; vertical-align: middle; margin-right: .35em; }
.key.rps::before { background: var(--accent); }
.key.p99::before { background: var(--second); }
#chart { display: block; width: 100%; height: 150px; }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); }
caption { text-align: left; }
th, td { padding: .3rem .45rem; text-align: left; border-bottom: 1px solid var(--line); vertical-align: middle; }
th { font-size: .75rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); background: #f8f9fa; white-space: nowrap; }
td, th[scope="row"] { white-space: nowrap; }
th[scope="row"] { font-size: 1em; text-transform: none; letter-spacing: 0; color: var(--fg); background: none; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap { white-space: normal; min-width: 8rem; max-width: 14rem; }
td.report { white-space: normal; min-width: 9rem; max-width: 13rem; }
.table-wrap { overflow-x: auto; }
tr.inactive > * { background: var(--inactive); }
tr.inactive td[data-field="active"] { color: var(--down); font-weight: 600; }
.health { font-weight: 600; }
.health.up { color: var(--up); }
.health.down { color: var(--down); }
.health.unknown { color: var(--unknown); }
.reason, .age { display: block; color: var(--muted); font-size: .85em; }
.reason:empty, .age:empty { display: none; }
.muted { color: var(--muted); }
button, input { font: inherit; }
button {
  padding: .15rem .55rem; border: 1px solid #8c959f; border-radius: 4px; background: #fff;
  color: var(--fg); cursor: pointer;
}
button:hover { background: #eaf1fb; }
button[aria-busy="true"] { opacity: .6; }
input { padding: .12rem .3rem; border: 1px solid #8c959f; border-radius: 4px; }
input[type="number"] { width: 4.6rem; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 1px; }
.actions { display: flex; gap: .3rem; align-items: center; }
.actions form { display: flex; gap: .3rem; align-items: center; margin: 0 0 0 .4rem; }
#notice { min-height: 1.4em; margin: 0 0 .5rem; font-weight: 600; }
#notice.ok { color: var(--up); }
#notice.error { color: var(--down); }
#login { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; max-width: 36rem; margin: 1rem 0; }
#login h2 { margin-top: 0; }
#login form { display: flex; gap: .5rem; align-items: center; }
#login input { width: 20rem; }
#login-error { color: var(--down); font-weight: 600; }
.visually-hidden {
  position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap; border: 0; padding: 0; margin: -1px;
}
[hidden] { display: none !important; }
</style>
</head>
<body>
<a class="skip" href="#upstreams">Skip to the backends</a>
<header>
  <h1>SpeedMimi</h1>
  <span id="meta">&ndash;</span>
  <span id="state">connecting&hellip;</span>
  <button type="button" id="forget" hidden>Forget token</button>
</header>
<main>
  <section id="login" hidden aria-labelledby="login-title">
    <h2 id="login-title">API token</h2>
    <p id="login-why">This proxy's API needs its token (<code>admin.auth_token</code>).
      It is kept in this browser tab only (session storage) and sent as
      <code>Authorization: Bearer</code>.</p>
    <p id="login-error" role="alert" hidden></p>
    <form id="token-form" autocomplete="off">
      <label for="token">Token</label>
      <input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required>
      <button type="submit" id="token-submit">Use token</button>
    </form>
  </section>
  <p id="notice" role="status" aria-live="polite"></p>
  <section id="overview" aria-label="Server">
    <dl class="totals">
      <div class="total"><dt>Requests</dt><dd data-field="requests">&ndash;</dd><dd class="sub" data-field="classes">&nbsp;</dd></div>
      <div class="total"><dt>Requests/s</dt><dd data-field="rps">&ndash;</dd><dd class="sub" data-field="rps-long">&nbsp;</dd></div>
      <div class="total"><dt>Connections</dt><dd data-field="connections">&ndash;</dd><dd class="sub" data-field="accepted">&nbsp;</dd></div>
      <div class="total"><dt>Bytes in</dt><dd data-field="bytes-in">&ndash;</dd><dd class="sub">from clients</dd></div>
      <div class="total"><dt>Bytes out</dt><dd data-field="bytes-out">&ndash;</dd><dd class="sub">to clients</dd></div>
      <div class="total"><dt>p99 latency</dt><dd data-field="p99">&ndash;</dd><dd class="sub" data-field="percentiles">&nbsp;</dd></div>
      <div class="total"><dt>Host</dt><dd data-field="cpu">&ndash;</dd><dd class="sub" data-field="host">&nbsp;</dd></div>
    </dl>
    <figure class="chart">
      <figcaption><span class="key rps">requests/s (left)</span><span class="key p99">p99 latency, ms (right)</span><span>last 5 minutes</span></figcaption>
      <canvas id="chart" role="img" aria-label="Requests per second and p99 latency over the last 5 minutes"></canvas>
    </figure>
  </section>
  <div id="upstreams"><p class="muted" id="no-upstreams" hidden>No upstreams are configured.</p></div>
</main>
<script>
'use strict';
(function () {
  const REFRESH_MS = 1000;
  const HISTORY_MS = 5 * 60 * 1000;
  const TOKEN_KEY = 'speedmimi.token';
  const DASH = '\u2013';
  const NBSP = '\u00a0';  // between a number and its unit, so that a wrap keeps them together
  // Where the percentiles may be (in ms), first match wins; absent ones show as DASH.
  const SERVER_P = {
    p50: ['latency.p50', 'latency.p50_ms'], p90: ['latency.p90', 'latency.p90_ms'],
    p99: ['latency.p99', 'latency.p99_ms'], p999: ['latency.p999', 'latency.p999_ms'],
  };
  const BACKEND_P99 = ['head_time.p99', 'head_time.p99_ms', 'head_time_ms.p99',
    'time_to_head.p99', 'time_to_head_ms.p99', 'latency.p99', 'latency.p99_ms'];
  const BACKEND_HISTORY = ['health.history', 'health_history'];

  const $ = (id) => document.getElementById(id);
  const history = [];          // {t: Date.now(), rps, p99 (or null)}, the last 5 minutes
  const sections = new Map();  // upstream -> {section, tbody, count}
  const rows = new Map();      // "upstream/id" -> row state
  let lastTotal = null;        // {t, total}: for req/s when the API gives none
  let token = loadToken();
  let askingForToken = false;
  let timer = null;
  let refreshing = false;
  let refreshAgain = false;
  let rowSerial = 0;

  // ---- values ------------------------------------------------------------------------------
  function finite(v) { return typeof v === 'number' && Number.isFinite(v) ? v : null; }
  function at(obj, path) {
    let v = obj;
    for (const key of path.split('.')) v = v !== null && typeof v === 'object' ? v[key] : undefined;
    return v;
  }
  function pick(obj, paths) {
    for (const p of paths) { const v = finite(at(obj, p)); if (v !== null) return v; }
    return null;
  }
  const numberFormat = new Intl.NumberFormat('en-US');
  function fmtInt(v) { return finite(v) === null ? DASH : numberFormat.format(Math.round(v)); }
  function fmtRate(v) {
    if (finite(v) === null) return DASH;
    return v >= 100 ? numberFormat.format(Math.round(v)) : v.toFixed(1);
  }
  function fmtBytes(v) {
    if (finite(v) === null) return DASH;
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; ++i; }
    return (i === 0 ? String(v) : v.toFixed(1)) + NBSP + units[i];
  }
  function fmtMs(v) {
    if (finite(v) === null) return DASH;
    if (v >= 1000) return (v / 1000).toFixed(2) + NBSP + 's';
    if (v >= 100) return Math.round(v) + NBSP + 'ms';
    return (v >= 1 ? v.toFixed(1) : v.toFixed(2)) + NBSP + 'ms';
  }
  function fmtPercent(v) { return finite(v) === null ? DASH : v.toFixed(1) + NBSP + '%'; }
  function fmtAge(seconds) {
    if (finite(seconds) === null) return DASH;
    if (seconds < 1) return 'just now';
    if (seconds < 60) return Math.floor(seconds) + ' s ago';
    if (seconds < 3600) return Math.floor(seconds / 60) + ' min ago';
    if (seconds < 86400) return Math.floor(seconds / 3600) + ' h ago';
    return Math.floor(seconds / 86400) + ' d ago';
  }
  function fmtUptime(s) {
    if (finite(s) === null) return DASH;
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    const m = Math.floor(s % 3600 / 60), sec = Math.floor(s % 60);
    if (d > 0) return d + ' d ' + h + ' h';
    if (h > 0) return h + ' h ' + m + ' min';
    return m > 0 ? m + ' min ' + sec + ' s' : sec + ' s';
  }
  function setText(el, text) { if (el.textContent !== text) el.textContent = text; }
  function field(root, name) { return root.querySelector('[data-field="' + name + '"]'); }

  // ---- the token ---------------------------------------------------------------------------
  function loadToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }
  function saveToken(value) {
    token = value;
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* the token then lasts as long as the page */ }
    $('forget').hidden = !value;
  }
  // A call sent with `sent` (maybe none) answered 401: forget that token, ask once, and stop
  // refreshing until the operator answers. A late 401 to a token replaced since is ignored.
  function askForToken(sent, error) {
    if (sent !== token) return;
    const refused = sent !== '';
    if (refused) saveToken('');
    if (askingForToken) return;
    askingForToken = true;
    clearTimeout(timer);
    const why = $('login-error');
    why.hidden = !refused;
    why.textContent = refused ? 'The API refused that token' + (error ? ': ' + error : '') + '.' : '';
    $('overview').hidden = true;
    $('upstreams').hidden = true;
    $('login').hidden = false;
    setState('error', 'the API needs its token');
    const input = $('token');
    input.value = '';
    input.focus();
  }
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const value = $('token').value.trim();
    if (!value) { $('token').focus(); return; }
    saveToken(value);
    askingForToken = false;
    $('login').hidden = true;
    $('overview').hidden = false;
    $('upstreams').hidden = false;
    refreshSoon();
  });
  $('forget').addEventListener('click', () => { saveToken(''); refreshSoon(); });

  // ---- the API -----------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function api(method, path, body) {
    const headers = { 'Accept': 'application/json' };
    const sent = token;
    if (sent) headers['Authorization'] = 'Bearer ' + sent;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method, headers, cache: 'no-store', credentials: 'omit',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, 'cannot reach the API (' + e.message + ')');
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    const error = data && typeof data.error === 'string' ? data.error : '';
    if (response.status === 401) {
      askForToken(sent, error);
      throw new ApiError(401, error || 'the API needs its token');
    }
    if (!response.ok || !data || data.success !== true) {
      throw new ApiError(response.status, error || 'HTTP ' + response.status + ' ' + response.statusText);
    }
    return data;
  }

  // ---- refreshing --------------------------------------------------------------------------
  function setState(kind, text) {
    const el = $('state');
    el.className = kind;
    setText(el, text);
  }
  function refreshSoon() {
    if (refreshing) { refreshAgain = true; return; }
    refresh();
  }
  async function refresh() {
    clearTimeout(timer);
    refreshing = true;
    try {
      const [server, backends] = await Promise.all([
        api('GET', '/api/v1/stats/server'), api('GET', '/api/v1/backends')]);
      renderServer(server);
      renderUpstreams(backends.upstreams);
      setState('', 'live, updated ' + new Date().toLocaleTimeString('en-GB'));
    } catch (e) {
      if (!(e instanceof ApiError)) setState('error', 'page error: ' + e.message);
      else if (e.status !== 401) setState('error', e.message);
      history.push({ t: Date.now(), rps: null, p99: null });  // a gap in the chart's lines
    } finally {
      refreshing = false;
    }
    if (askingForToken) return;
    timer = setTimeout(refresh, refreshAgain ? 0 : REFRESH_MS);
    refreshAgain = false;
  }

  // ---- the server --------------------------------------------------------------------------
  function renderServer(s) {
    const overview = $('overview');
    const now = Date.now();
    const total = finite(at(s, 'requests.total'));
    let rps = finite(at(s, 'requests.per_second.1s'));
    if (rps === null && total !== null && lastTotal && now > lastTotal.t && total >= lastTotal.total) {
      rps = (total - lastTotal.total) * 1000 / (now - lastTotal.t);
    }
    if (total !== null) lastTotal = { t: now, total };
    const p = {};
    for (const name of Object.keys(SERVER_P)) p[name] = pick(s, SERVER_P[name]);

    setText(field(overview, 'requests'), fmtInt(total));
    const classes = at(s, 'requests.by_status_class') || {};
    setText(field(overview, 'classes'), ['2xx', '4xx', '5xx']
      .map((c) => c + ' ' + fmtInt(finite(classes[c]) === null ? 0 : classes[c])).join(' \u00b7 '));
    setText(field(overview, 'rps'), fmtRate(rps));
    setText(field(overview, 'rps-long'), '10 s ' + fmtRate(finite(at(s, 'requests.per_second.10s'))) +
      ' \u00b7 60 s ' + fmtRate(finite(at(s, 'requests.per_second.60s'))));
    const max = finite(at(s, 'connections.max'));
    setText(field(overview, 'connections'), fmtInt(finite(at(s, 'connections.active'))) +
      (max ? ' / ' + fmtInt(max) : ''));
    setText(field(overview, 'accepted'), fmtInt(finite(at(s, 'connections.accepted'))) + ' accepted');
    setText(field(overview, 'bytes-in'), fmtBytes(finite(s.bytes_in)));
    setText(field(overview, 'bytes-out'), fmtBytes(finite(s.bytes_out)));
    setText(field(overview, 'p99'), fmtMs(p.p99));
    const bare = (v) => finite(v) === null ? DASH : v >= 100 ? String(Math.round(v)) : v.toFixed(v >= 1 ? 1 : 2);
    setText(field(overview, 'percentiles'),
      'p50 ' + bare(p.p50) + ' \u00b7 p90 ' + bare(p.p90) + ' \u00b7 p99.9 ' + bare(p.p999) + ' ms');
    setText(field(overview, 'cpu'), 'cpu ' + fmtPercent(finite(s.cpu_usage)));
    setText(field(overview, 'host'), 'mem ' + fmtPercent(finite(s.memory_usage)) + ' \u00b7 load ' +
      (finite(s.load_avg_1) === null ? DASH : s.load_avg_1.toFixed(2)));
    setText($('meta'), 'version ' + (s.version || DASH) + ' \u00b7 generation ' + fmtInt(finite(s.generation)) +
      ' \u00b7 ' + fmtInt(finite(s.workers)) + ' workers \u00b7 up ' + fmtUptime(finite(s.uptime_seconds)));

    history.push({ t: now, rps, p99: p.p99 });
    while (history.length && history[0].t < now - HISTORY_MS) history.shift();
    drawChart();
    $('chart').setAttribute('aria-label', 'Requests per second and p99 latency over the last 5 minutes; now ' +
      fmtRate(rps) + ' requests/s, p99 ' + fmtMs(p.p99));
  }

  // ---- the chart ---------------------------------------------------------------------------
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const e = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= v) return m * e;
    return 10 * e;
  }
  function label(v) { return v >= 1000 ? numberFormat.format(v) : String(+v.toPrecision(3)); }
  function drawChart() {
    const canvas = $('chart');
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width || !height) return;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const style = getComputedStyle(document.documentElement);
    const colour = (name) => style.getPropertyValue(name).trim();
    const left = 56, right = 62, top = 8, bottom = 20;
    const w = width - left - right, h = height - top - bottom;
    const end = Date.now(), start = end - HISTORY_MS;
    const x = (t) => left + (t - start) / HISTORY_MS * w;
    const maxRps = niceMax(Math.max(0, ...history.map((p) => p.rps || 0)));
    const maxP99 = niceMax(Math.max(0, ...history.map((p) => p.p99 || 0)));
    const hasP99 = history.some((p) => finite(p.p99) !== null);

    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    ctx.strokeStyle = colour('--line');
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; ++i) {
      const y = top + h - i / 4 * h;
      ctx.beginPath(); ctx.moveTo(left, y + .5); ctx.lineTo(left + w, y + .5); ctx.stroke();
      ctx.fillStyle = colour('--accent'); ctx.textAlign = 'right';
      ctx.fillText(label(maxRps * i / 4), left - 6, y);
      ctx.fillStyle = colour('--second'); ctx.textAlign = 'left';
      if (hasP99) ctx.fillText(label(maxP99 * i / 4) + ' ms', left + w + 6, y);
    }
    if (!hasP99) ctx.fillText('no p99', left + w + 6, top + h / 2);  // not in this API's answers
    ctx.fillStyle = colour('--muted'); ctx.textAlign = 'center'; ctx.textBaseline = 'top';
    for (let m = 5; m >= 0; --m) {
      ctx.fillText(m ? '\u2212' + m + ' min' : 'now', x(end - m * 60000), top + h + 5);
    }
    const series = (key, max, name) => {
      ctx.strokeStyle = colour(name); ctx.lineWidth = 2; ctx.lineJoin = 'round';
      ctx.beginPath();
      let drawing = false;
      for (const p of history) {
        const v = p[key];
        if (finite(v) === null) { drawing = false; continue; }
        const px = x(p.t), py = top + h - Math.min(v / max, 1) * h;
        if (drawing) ctx.lineTo(px, py); else ctx.moveTo(px, py);
        drawing = true;
      }
      ctx.stroke();
    };
    series('rps', maxRps, '--accent');
    series('p99', maxP99, '--second');
  }
  window.addEventListener('resize', drawChart);

  // ---- upstreams and backends --------------------------------------------------------------
  const COLUMNS = [
    ['Backend', ''], ['Address', ''], ['State', ''], ['Health', ''], ['Weight', 'num'],
    ['Conns', 'num'], ['Req/s', 'num'], ['Errors', 'num'], ['p99', 'num'],
    ['Last report', ''], ['Actions', ''],
  ];
  function sectionFor(name) {
    let s = sections.get(name);
    if (s) return s;
    const section = document.createElement('section');
    section.className = 'upstream';
    section.dataset.upstream = name;
    const heading = document.createElement('h2');
    heading.append('Upstream ');
    const code = document.createElement('code');
    code.textContent = name;
    const count = document.createElement('span');
    count.className = 'muted';
    heading.append(code, ' ', count);
    const table = document.createElement('table');
    const caption = document.createElement('caption');
    caption.className = 'visually-hidden';
    caption.textContent = 'Backends of upstream ' + name;
    const head = table.createTHead().insertRow();
    for (const [title, cls] of COLUMNS) {
      const th = document.createElement('th');
      th.scope = 'col';
      th.textContent = title;
      if (cls) th.className = cls;
      head.append(th);
    }
    table.prepend(caption);
    const tbody = table.createTBody();
    const wrap = document.createElement('div');
    wrap.className = 'table-wrap';  // a narrow window scrolls the table, not the page
    wrap.append(table);
    const empty = document.createElement('p');
    empty.className = 'muted';
    empty.textContent = 'No backends.';
    empty.hidden = true;
    section.append(heading, wrap, empty);
    s = { section, tbody, count, wrap, empty };
    sections.set(name, s);
    // In name order.
    const after = [...sections.keys()].sort().find((other) => other > name);
    $('upstreams').insertBefore(section, after ? sections.get(after).section : null);
    return s;
  }

  function rowFor(s, upstream, id) {
    const key = upstream + '/' + id;
    let r = rows.get(key);
    if (r) return r;
    const tr = document.createElement('tr');
    tr.setAttribute('data-backend', key);
    const cells = {};
    for (const [name, cls] of [['id', ''], ['address', ''], ['active', ''], ['health', 'wrap'],
      ['weight', 'num'], ['connections', 'num'], ['rps', 'num'], ['errors', 'num'], ['p99', 'num'],
      ['report', 'report']]) {
      const td = document.createElement(name === 'id' ? 'th' : 'td');
      if (name === 'id') td.scope = 'row';
      td.setAttribute('data-field', name);
      if (cls) td.className = cls;
      td.textContent = DASH;
      tr.append(td);
      cells[name] = td;
    }
    const health = cells.health;
    health.textContent = '';
    const status = document.createElement('span');
    status.className = 'health';
    const reason = document.createElement('span');
    reason.className = 'reason';
    health.append(status, ' ', reason);
    // The report's figures, and its age below them.
    const figures = document.createElement('span');
    const age = document.createElement('span');
    age.className = 'age';
    age.setAttribute('data-field', 'report-age');
    cells.report.textContent = '';
    cells.report.append(figures, ' ', age);

    const actions = document.createElement('td');
    actions.className = 'actions-cell';
    const box = document.createElement('div');
    box.className = 'actions';
    const button = (action, text, title) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.setAttribute('data-action', action);
      b.textContent = text;
      b.setAttribute('aria-label', text + ' ' + id + ' (upstream ' + upstream + ')');
      b.title = title;
      return b;
    };
    const drain = button('drain', 'Drain', 'Disconnect: no new requests; idle connections, tunnels and streams close');
    const activate = button('activate', 'Activate', 'Set active: true');
    const form = document.createElement('form');
    form.noValidate = true;  // act() says what is wrong, in the notice
    const inputId = 'weight-' + ++rowSerial;
    const labelEl = document.createElement('label');
    labelEl.className = 'visually-hidden';
    labelEl.htmlFor = inputId;
    labelEl.textContent = 'New weight of ' + id + ' (upstream ' + upstream + ')';
    const input = document.createElement('input');
    input.id = inputId;
    input.type = 'number';
    input.min = '1';
    input.max = '10000';
    input.step = '1';
    input.required = true;
    input.setAttribute('data-field', 'weight-input');
    const set = button('weight', 'Set weight', 'Set this weight (1..10000)');
    set.type = 'submit';
    form.append(labelEl, input, set);
    box.append(drain, activate, form);
    actions.append(box);
    tr.append(actions);
    s.tbody.append(tr);

    r = { key, upstream, id, tr, cells, status, reason, figures, age, input, edited: false, prev: null };
    input.addEventListener('input', () => { r.edited = true; });
    drain.addEventListener('click', () => act(r, drain, 'drain'));
    activate.addEventListener('click', () => act(r, activate, 'activate'));
    form.addEventListener('submit', (event) => { event.preventDefault(); act(r, set, 'weight'); });
    rows.set(key, r);
    return r;
  }

  function historyText(b) {
    for (const path of BACKEND_HISTORY) {
      const list = at(b, path);
      if (!Array.isArray(list) || !list.length) continue;
      return 'Health changes, newest first:\n' + list.slice(0, 16).map((h) => {
        if (h === null || typeof h !== 'object') return String(h);
        return [h.time || h.at || h.timestamp || '', h.status || h.state || h.to || '', h.reason || '']
          .filter((v) => v !== '').join(' ');
      }).join('\n');
    }
    return '';
  }

  function updateRow(r, b) {
    const now = performance.now();
    const c = r.cells;
    setText(c.id, String(b.id));
    c.id.title = b.name ? String(b.name) : '';
    const host = String(b.host === undefined ? DASH : b.host);
    setText(c.address, (host.includes(':') ? '[' + host + ']' : host) + ':' + (b.port === undefined ? DASH : b.port));
    const active = b.active !== false;
    setText(c.active, active ? 'active' : 'inactive');
    r.tr.classList.toggle('inactive', !active);
    r.tr.dataset.active = String(active);

    const status = typeof at(b, 'health.status') === 'string' ? b.health.status : 'unknown';
    setText(r.status, status);
    r.status.className = 'health ' + (['up', 'down'].includes(status) ? status : 'unknown');
    const reason = typeof at(b, 'health.reason') === 'string' ? b.health.reason : '';
    setText(r.reason, status === 'down' && reason ? reason : '');
    const last = at(b, 'health.last_check');
    c.health.title = (typeof last === 'string' ? 'last check ' + last + '\n' : '') + historyText(b);

    setText(c.weight, fmtInt(finite(b.weight)));
    if (!r.edited && document.activeElement !== r.input && finite(b.weight) !== null) {
      r.input.value = String(b.weight);
    }
    setText(c.connections, fmtInt(finite(b.active_connections)));

    // Rates over the interval since the previous answer.
    const requests = finite(b.requests), failures = finite(b.failures);
    let rps = null, errors = null;
    const prev = r.prev;
    if (prev && requests !== null && requests >= prev.requests && now > prev.t) {
      const delta = requests - prev.requests;
      rps = delta * 1000 / (now - prev.t);
      if (delta > 0 && failures !== null && failures >= prev.failures) {
        errors = Math.min(1, (failures - prev.failures) / delta);
      }
    }
    if (requests !== null) r.prev = { t: now, requests, failures: failures === null ? 0 : failures };
    setText(c.rps, fmtRate(rps));
    setText(c.errors, errors === null ? DASH : fmtPercent(errors * 100));
    c.errors.title = errors === null ? 'no requests in the last interval' : '';
    setText(c.p99, fmtMs(pick(b, BACKEND_P99)));

    const report = b.last_report;
    if (report && typeof report === 'object') {
      const load = finite(report.load_avg_1);
      setText(r.figures, 'cpu ' + fmtPercent(finite(report.cpu_usage)) + ' \u00b7 mem ' +
        fmtPercent(finite(report.memory_usage)) + ' \u00b7 load ' + (load === null ? DASH : load.toFixed(2)));
      setText(r.age, fmtAge(finite(report.age_seconds)) + (report.counts === false ? ' (stale)' : ''));
      r.age.title = report.counts === false ? 'older than 30 s: the balancer ignores it' : '';
    } else {
      setText(r.figures, DASH);
      setText(r.age, '');
      r.age.title = '';
    }
  }

  function renderUpstreams(upstreams) {
    if (!upstreams || typeof upstreams !== 'object') upstreams = {};
    const names = Object.keys(upstreams).sort();
    const seen = new Set();
    for (const name of names) {
      const s = sectionFor(name);
      const list = Array.isArray(upstreams[name]) ? upstreams[name] : [];
      setText(s.count, '(' + list.length + (list.length === 1 ? ' backend)' : ' backends)'));
      s.wrap.hidden = list.length === 0;
      s.empty.hidden = list.length > 0;
      for (const b of list) {
        if (!b || typeof b !== 'object' || b.id === undefined) continue;
        const r = rowFor(s, name, String(b.id));
        seen.add(r.key);
        updateRow(r, b);
      }
    }
    for (const [key, r] of rows) {
      if (!seen.has(key)) { r.tr.remove(); rows.delete(key); }
    }
    for (const [name, s] of sections) {
      if (!names.includes(name)) { s.section.remove(); sections.delete(name); }
    }
    $('no-upstreams').hidden = names.length > 0;
  }

  // ---- actions -----------------------------------------------------------------------------
  function notify(kind, text) {
    const el = $('notice');
    el.className = kind;
    el.textContent = new Date().toLocaleTimeString('en-GB') + '  ' + text;
  }
  async function act(r, button, action) {
    const query = '?upstream=' + encodeURIComponent(r.upstream) + '&backend_id=' + encodeURIComponent(r.id);
    let call;
    if (action === 'drain') {
      call = () => api('POST', '/api/v1/backends/disconnect' + query);
    } else if (action === 'activate') {
      call = () => api('PUT', '/api/v1/backends/update', { upstream: r.upstream, backend: { id: r.id, active: true } });
    } else {
      const weight = Number(r.input.value);
      if (r.input.value === '' || !Number.isInteger(weight) || weight < 1 || weight > 10000) {
        notify('error', 'Set weight of ' + r.id + ': the weight must be an integer from 1 to 10000');
        r.input.focus();
        return;
      }
      call = () => api('PUT', '/api/v1/backends/update', { upstream: r.upstream, backend: { id: r.id, weight } });
    }
    button.setAttribute('aria-busy', 'true');
    try {
      const data = await call();
      notify('ok', data.message || 'done');
      if (action === 'weight') r.edited = false;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      notify('error', button.textContent + ' ' + r.id + ': ' +
        (e.status === 401 ? 'the API needs its token; enter it, then try again' : e.message));
    } finally {
      button.removeAttribute('aria-busy');
    }
    refreshSoon();
  }

  window.addEventListener('error', (event) => notify('error', 'page error: ' + event.message));
  window.addEventListener('unhandledrejection', (event) =>
    notify('error', 'page error: ' + (event.reason && event.reason.message || event.reason)));
  $('forget').hidden = !token;
  refresh();
})();
</script>
</body>
</html>
)page";

void servePage(const CallPtr& call) {
  call->addHeader("Content-Security-Policy", kContentSecurityPolicy);
  call->addHeader("X-Content-Type-Options", "nosniff");
  call->addHeader("Referrer-Policy", "no-referrer");
  call->answer(200, kPage, "text/html; charset=utf-8");
}

}  // namespace

void registerDashboard(HttpServer& server) {
  for (const char* path : {"/", "/dashboard"}) {
    server.route(path, Method::kGet, servePage, Access::kPublic);
  }
}

}  // namespace speedmimi::admin
