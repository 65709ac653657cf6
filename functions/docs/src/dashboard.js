// The dashboard (GET /dashboard): polls the API once a second and draws plain SVG charts.
// It only reads: /metrics, /stats, /stats/patterns and /rate-limit/status (never a check).
// Every request goes to this page's own origin, relative to the page, so it also works under
// an API Gateway stage path; nothing is loaded from anywhere else.
"use strict";

const BASE = new URL(".", location.href);
const KEEP = 120; // samples kept per series: two minutes
const COLORS = ["#1565c0", "#2e7d32", "#c62828", "#6a1b9a", "#ef6c00", "#00838f", "#ad1457",
  "#4e342e", "#558b2f", "#283593"];
const KEY_STORE = "redis-cache-api-dashboard-key";
const $ = (id) => document.getElementById(id);

const keyInput = $("api-key");
keyInput.value = sessionStorage.getItem(KEY_STORE) || "";
keyInput.addEventListener("change", () => sessionStorage.setItem(KEY_STORE, keyInput.value));
const params = new URLSearchParams(location.search);
if (params.get("caller")) $("rl-user").value = params.get("caller");

async function get(path) {
  const headers = { accept: "application/json, text/plain" };
  if (keyInput.value) headers["x-api-key"] = keyInput.value;
  const response = await fetch(new URL(path, BASE), { headers, cache: "no-store" });
  const text = await response.text();
  return { status: response.status, text };
}

function json(answer) {
  try { return JSON.parse(answer.text); } catch { return null; }
}

// --- series -------------------------------------------------------------------------------

/** name -> [[time s, value], ...] for one chart. */
function seriesStore() { return new Map(); }

function push(store, name, t, value) {
  if (!store.has(name)) store.set(name, []);
  const points = store.get(name);
  points.push([t, value]);
  while (points.length > KEEP) points.shift();
}

// --- drawing ------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function format(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  return v.toFixed(3);
}

/** Draws `store`'s series as lines into the section's `.body`, with a legend. */
function draw(sectionId, store, now, opts = {}) {
  const body = document.querySelector(`#${sectionId} .body`);
  const W = 420, H = 150, L = 40, R = 6, T = 6, B = 16;
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  // The busiest `top` series only (by their sum over the window): a legend of every route
  // would drown the chart.
  const total = (points) => points.reduce((sum, [, v]) => sum + v, 0);
  const lines = [...store.entries()].filter(([, p]) => p.length > 0)
    .sort((a, b) => total(b[1]) - total(a[1])).slice(0, opts.top || 8);
  let max = opts.max || 0, oldest = now;
  for (const [, points] of lines) {
    for (const [t, v] of points) { max = Math.max(max, v); oldest = Math.min(oldest, t); }
  }
  if (max === 0) max = 1;
  // The time axis spans the data (30 s at least, KEEP at most), so a fresh page is not a
  // sliver at the right edge.
  const span = Math.min(KEEP, Math.max(30, Math.ceil(now - oldest)));
  const x = (t) => L + (W - L - R) * (1 - Math.min(span, now - t) / span);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  for (const f of [0, 0.5, 1]) {
    el("line", { x1: L, x2: W - R, y1: y(max * f), y2: y(max * f), stroke: "#eee" }, svg);
    el("text", { x: 2, y: y(max * f) + 3 }, svg).textContent = format(max * f) + (opts.unit || "");
  }
  el("text", { x: L, y: H - 3 }, svg).textContent = `${span} s ago`;
  el("text", { x: W - R - 20, y: H - 3 }, svg).textContent = "now";
  const legend = document.createElement("div");
  legend.className = "legend";
  lines.forEach(([name, points], i) => {
    const color = COLORS[i % COLORS.length];
    const d = points.map(([t, v], j) => `${j ? "L" : "M"}${x(t).toFixed(1)} ${y(v).toFixed(1)}`).join(" ");
    const top = Math.max(...points.map(([, v]) => v));
    el("path", { d, fill: "none", stroke: color, "stroke-width": 1.5, "data-series": name,
      "data-points": points.length, "data-max": top }, svg);
    const item = document.createElement("span");
    const last = points[points.length - 1][1];
    item.innerHTML = `<i style="background:${color}"></i>`;
    item.append(`${name} ${format(last)}${opts.unit || ""}`);
    legend.appendChild(item);
  });
  body.replaceChildren(svg, legend);
}

function absent(sectionId, why) {
  const body = document.querySelector(`#${sectionId} .body`);
  const p = document.createElement("p");
  p.className = "absent";
  p.textContent = why;
  body.replaceChildren(p);
}

/** A row of one cell across the table, saying `text`. */
function note(tbody, text) {
  const td = tbody.insertRow().insertCell();
  td.className = "empty";
  td.colSpan = tbody.parentElement.tHead.rows[0].cells.length;
  td.textContent = text;
}

function rows(tbodyId, items, cells, empty) {
  const tbody = $(tbodyId);
  tbody.replaceChildren();
  if (items.length === 0) {
    note(tbody, empty);
    return;
  }
  for (const item of items) {
    const tr = tbody.insertRow();
    tr.dataset.name = cells(item)[0];
    for (const c of cells(item)) tr.insertCell().textContent = c ?? "–";
  }
}

// --- /metrics (Prometheus text) ---------------------------------------------------------

/** route -> {count, sum} summed over methods and status classes. */
function parseMetrics(text) {
  const routes = new Map();
  // Greedy up to the last "}": a route template's own braces (`/cache/{key}`) are inside
  // the label values.
  const re = /^http_server_request_duration_seconds_(count|sum)\{(.*)\}\s+(\S+)$/;
  for (const line of text.split("\n")) {
    const m = re.exec(line);
    if (!m) continue;
    const route = /route="([^"]*)"/.exec(m[2]);
    const method = /method="([^"]*)"/.exec(m[2]);
    if (!route) continue;
    const name = `${method ? method[1] + " " : ""}${route[1]}`;
    if (!routes.has(name)) routes.set(name, { count: 0, sum: 0 });
    routes.get(name)[m[1]] += Number(m[3]);
  }
  return routes;
}

const rate = seriesStore(), latency = seriesStore(), hits = seriesStore(),
  memory = seriesStore(), ops = seriesStore(), queueSeries = seriesStore(), limit = seriesStore();
let previous = null;

function onMetrics(answer, t) {
  if (answer.status !== 200) {
    const why = answer.status === 404
      ? "No /metrics here: the local runner serves it unless started with METRICS=off; on " +
        "Lambda (and under cargo lambda watch) the functions write CloudWatch EMF lines " +
        "instead. So requests per route cannot be drawn."
      : `GET /metrics answered ${answer.status}` + (answer.status === 401 ? ": type the API key above." : ".");
    absent("requests", why);
    absent("latency", why);
    previous = null;
    return;
  }
  const now = parseMetrics(answer.text);
  if (previous) {
    const dt = Math.max(0.001, t - previous.t);
    for (const [route, c] of now) {
      const before = previous.routes.get(route) || { count: 0, sum: 0 };
      const dc = c.count - before.count;
      // A route appears once it has moved; from then on it is drawn, zeros included.
      if (dc > 0 || rate.has(route)) push(rate, route, t, dc / dt);
      if (dc > 0) push(latency, route, t, ((c.sum - before.sum) / dc) * 1000);
    }
    draw("requests", rate, t, { unit: "/s" });
    draw("latency", latency, t, { unit: " ms" });
  }
  previous = { t, routes: now };
}

function onStats(answer, t) {
  const s = json(answer);
  if (answer.status !== 200 || !s) {
    absent("hits", `GET /stats answered ${answer.status}`);
    absent("redis", `GET /stats answered ${answer.status}`);
    absent("ops", `GET /stats answered ${answer.status}`);
    return;
  }
  const lookups = s.keyspace_hits + s.keyspace_misses;
  const keyspace = lookups > 0 ? s.keyspace_hits / lookups : null;
  $("hit-rate").innerHTML = `${s.hit_rate == null ? "–" : (s.hit_rate * 100).toFixed(1) + "%"} <small>profiles</small>`;
  $("keyspace-rate").innerHTML = `${keyspace == null ? "–" : (keyspace * 100).toFixed(1) + "%"} <small>keyspace</small>`;
  if (s.hit_rate != null) push(hits, "profiles %", t, s.hit_rate * 100);
  if (keyspace != null) push(hits, "keyspace %", t, keyspace * 100);
  draw("hits", hits, t, { max: 100, unit: "%" });
  $("memory").innerHTML = `${s.memory_used} <small>memory</small>`;
  $("ops-now").innerHTML = `${s.operations_per_second} <small>ops/s</small>`;
  push(memory, "used memory", t, s.used_memory_bytes / 1048576);
  push(ops, "ops/s", t, s.operations_per_second);
  draw("redis", memory, t, { unit: " MB" });
  draw("ops", ops, t);
}

/** Pages of /stats/patterns one poll walks at most (each at most 10 SCAN steps). */
const PATTERN_PAGES = 20;

/** Walks /stats/patterns to the end, or `partial` after PATTERN_PAGES pages. */
async function patterns() {
  const all = { queues: new Map(), locks: new Map(), semaphores: new Map(), partial: false };
  let cursor = 0;
  for (let page = 0; page < PATTERN_PAGES; page++) {
    const answer = await get(`stats/patterns?cursor=${cursor}`);
    const p = json(answer);
    if (answer.status !== 200 || !p) return { error: `GET /stats/patterns answered ${answer.status}` };
    for (const q of p.queues) all.queues.set(q.name, q);
    for (const l of p.locks) all.locks.set(l.resource, l);
    for (const s of p.semaphores) all.semaphores.set(s.name, s);
    cursor = p.cursor;
    if (cursor === 0) return all;
  }
  all.partial = true;
  return all;
}

function onPatterns(p, t) {
  if (p.error) {
    // Nothing shown may look current: every table says why it is empty.
    for (const id of ["queue-rows", "lock-rows", "semaphore-rows"]) rows(id, [], () => [], p.error);
    return;
  }
  const queues = [...p.queues.values()];
  rows("queue-rows", queues, (q) => [q.name, q.pending, q.processing, q.dead, q.scheduled], "no queue");
  for (const q of queues) {
    push(queueSeries, `${q.name} pending`, t, q.pending);
    push(queueSeries, `${q.name} dead`, t, q.dead);
  }
  for (const [name, points] of queueSeries) {
    if (points[points.length - 1][0] !== t) push(queueSeries, name, t, 0);
  }
  draw("queues", queueSeries, t);
  rows("lock-rows", [...p.locks.values()], (l) => [l.resource, l.ttl_ms, l.fencing_token], "no lock held");
  rows("semaphore-rows", [...p.semaphores.values()], (s) => [s.name, s.holders, s.permits], "no semaphore held");
  if (p.partial) {
    const text = `partial: more keys under the prefix than ${PATTERN_PAGES} pages of ` +
      "GET /stats/patterns walk in one poll; walk its cursor for the rest";
    for (const id of ["queue-rows", "lock-rows", "semaphore-rows"]) note($(id), text);
  }
}

async function onRateLimit(t) {
  const q = new URLSearchParams({
    user_id: $("rl-user").value, limit: $("rl-limit").value, window: $("rl-window").value,
    algorithm: $("rl-algorithm").value,
  });
  const answer = await get(`rate-limit/status?${q}`);
  const d = json(answer);
  if (answer.status !== 200 || !d) {
    const failed = `GET /rate-limit/status answered ${answer.status}`;
    $("rl-text").textContent = failed + (d && d.detail ? `: ${d.detail}` : "");
    return failed;
  }
  const share = Math.min(1, d.current_count / d.limit);
  const meter = $("rl-meter");
  meter.style.width = `${share * 100}%`;
  meter.className = d.allowed ? "" : "full";
  $("rl-text").textContent = `${d.current_count} of ${d.limit} used, ${d.remaining} left; ` +
    `resets in ${d.reset_in_seconds} s (${d.algorithm})`;
  push(limit, "used", t, d.current_count);
  push(limit, "limit", t, d.limit);
  draw("rate-limit", limit, t);
  return null;
}

async function poll() {
  const t = performance.now() / 1000;
  try {
    const [metrics, stats, pats] = await Promise.all([get("metrics"), get("stats"), patterns()]);
    onMetrics(metrics, t);
    onStats(stats, t);
    onPatterns(pats, t);
    const failed = [await onRateLimit(t)];
    // A 404 from /metrics is its absence (said in the charts), not a failure.
    if (metrics.status !== 200 && metrics.status !== 404) failed.push(`GET /metrics answered ${metrics.status}`);
    if (stats.status !== 200) failed.push(`GET /stats answered ${stats.status}`);
    if (pats.error) failed.push(pats.error);
    const errors = failed.filter(Boolean);
    const time = new Date().toLocaleTimeString();
    $("status").textContent = errors.length === 0
      ? `updated ${time}`
      : `${time}: ${errors.join("; ")}` + (errors.some((e) => e.endsWith("401")) ? " (type the API key)" : "");
  } catch (e) {
    $("status").textContent = `cannot reach the API: ${e.message}`;
  }
  setTimeout(poll, 1000);
}

poll();
