// Druidflow console: six views drawn from the console's JSON API (same origin, Airflow's auth cookie).
"use strict";

const POLL_MS = 5000;
const $view = document.getElementById("view");
const $error = document.getElementById("error");
const $live = document.getElementById("live");
let liveRuns = false;
let renderSeq = 0;         // a render whose number is no longer current draws nothing (its hash was left)
const stale = (seq) => seq !== renderSeq;

// ------------------------------------------------------------------------------------------------ helpers
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const num = (n) => (n === null || n === undefined ? "" : Number(n).toLocaleString("en-US"));
function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = Number(n), i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)) + " " + units[i];
}
function duration(ms) {
  if (ms === null || ms === undefined || ms < 0) return "";
  if (ms < 1000) return ms + " ms";
  let s = Math.round(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return [d && d + " d", h && h + " h", m && m + " min", (s || !(d || h || m)) && s + " s"].filter(Boolean).slice(0, 2).join(" ");
}
function since(iso) {
  if (!iso) return "";
  const ms = Date.now() - Date.parse(iso);
  return ms >= 0 ? duration(ms) + " ago" : "in " + duration(-ms);
}
const shortTime = (iso) => (iso ? iso.replace(".000Z", "Z").replace("T00:00:00Z", "") : "");
const interval = (a, b) => shortTime(a) + "/" + shortTime(b);
const shortInterval = (text) => { const [a, b] = String(text || "").split("/"); return b === undefined ? String(text || "") : interval(a, b); };
const badge = (text, cls) => `<span class="badge ${esc((cls || text || "").replace(/\s+/g, "-"))}">${esc(text)}</span>`;
const taskLink = (id) => `<a href="#/task/${encodeURIComponent(id)}">${esc(id)}</a>`;
const airflowLink = (path, text) => `<a href="${esc(path)}" target="_top">${esc(text)}</a>`;

async function api(path, opts) {
  const res = await fetch("api/" + path, { credentials: "same-origin", headers: { "Content-Type": "application/json", "X-Druidflow-Console": "1" }, ...opts });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
    const err = new Error(`${res.status}: ${detail}`);
    err.status = res.status;
    throw err;
  }
  return body;
}
function showError(e) { $error.textContent = String(e.message || e); $error.hidden = false; }
function clearError() { $error.hidden = true; }
function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}
function route() {
  const [path, qs] = (location.hash.replace(/^#\/?/, "") || "datasources").split("?");
  const parts = path.split("/").map(decodeURIComponent);
  return { name: parts[0], arg: parts.slice(1).join("/"), params: Object.fromEntries(new URLSearchParams(qs || "")) };
}
function go(hash) { if (location.hash === hash) render(); else location.hash = hash; }
function table(columns, rows, opts = {}) {
  const head = columns.map((c) => `<th class="${c.num ? "num" : ""}">${esc(c.title)}</th>`).join("");
  const body = rows.length ? rows.map((r, i) => `<tr data-i="${i}" class="${opts.onClick ? "clickable" : ""}">` +
    columns.map((c) => `<td class="${c.num ? "num" : ""}">${c.html ? c.html(r) : esc(c.get ? c.get(r) : r[c.key])}</td>`).join("") + "</tr>").join("")
    : `<tr><td colspan="${columns.length}" class="muted">${esc(opts.empty || "none")}</td></tr>`;
  return `<table${opts.id ? ` id="${opts.id}"` : ""}><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}
function bindRows(el, rows, onClick) {
  el.querySelectorAll("tbody tr.clickable").forEach((tr) => tr.addEventListener("click", (ev) => {
    if (ev.target.closest("a")) return;
    onClick(rows[Number(tr.dataset.i)]);
  }));
}
const card = (k, v) => `<div class="card"><div class="k">${esc(k)}</div><div class="v">${v}</div></div>`;

// ------------------------------------------------------------------------------------------------ views
const views = {};

views.datasources = async (arg, params, seq) => {
  const rows = await api("datasources");
  if (stale(seq)) return;
  $view.innerHTML = `<h2>DataSources</h2>` + table([
    { title: "dataSource", html: (r) => `<a href="#/timeline/${encodeURIComponent(r.dataSource)}">${esc(r.dataSource)}</a>` },
    { title: "Segments", num: true, get: (r) => num(r.segments) },
    { title: "Rows", num: true, get: (r) => num(r.rows) },
    { title: "Size", num: true, get: (r) => bytes(r.size) },
    { title: "Interval", html: (r) => (r.start ? `<span class="mono">${esc(interval(r.start, r.end))}</span>` : `<span class="muted">no used segments</span>`) },
    { title: "Last ingestion", html: (r) => (r.lastIngestion ? `<span title="${esc(r.lastIngestion)}">${esc(since(r.lastIngestion))}</span>` : `<span class="muted">never</span>`) },
    { title: "Compaction", html: (r) => compactionCell(r.compaction) },
    { title: "Retention rules", html: (r) => (r.rules && r.rules.length ? r.rules.map((x) => `<code>${esc(ruleText(x))}</code>`).join("<br>") : `<span class="muted">none (keep forever)</span>`) },
    { title: "Unused (awaiting kill)", num: true, html: (r) => (r.unusedSegments ? `<a href="#/kill?dataSource=${encodeURIComponent(r.dataSource)}">${num(r.unusedSegments)} · ${bytes(r.unusedSize)}</a>` : "0") },
  ], rows, { id: "datasources", empty: "no dataSources yet: run druidflow_index" });
};
function compactionCell(c) {
  if (!c) return `<span class="muted">not in the last plan</span>`;
  const done = c.already_compacted || 0, todo = (c.compact || 0) + (c.no_slot || 0);
  const other = Object.entries(c).filter(([k]) => !["already_compacted", "compact", "no_slot"].includes(k)).map(([k, v]) => `${v} ${k.replace(/_/g, " ")}`);
  return `${num(done)} compacted · ${num(todo)} to compact` + (other.length ? `<br><span class="muted">${esc(other.join(", "))}</span>` : "");
}
function ruleText(r) {
  const what = r.period ? ` ${r.period}` : r.interval ? ` ${r.interval}` : "";
  return `${r.type}${what}`;
}

// -------------------------------------------------------------------- timeline
const tl = { ds: null, start: null, end: null, data: null, selected: null, page: 0 };

views.timeline = async (arg, params, seq) => {
  const list = await api("datasources");
  if (stale(seq)) return;
  const ds = arg || tl.ds || (list[0] && list[0].dataSource);
  if (!ds) { $view.innerHTML = `<h2>Timeline</h2><p class="muted">No dataSources yet.</p>`; return; }
  if (ds !== tl.ds) { tl.ds = ds; tl.selected = null; }
  tl.start = params.start || null; tl.end = params.end || null;
  const data = await api(`datasources/${encodeURIComponent(ds)}/timeline` + query({ start: tl.start, end: tl.end }));
  if (stale(seq)) return;
  tl.data = data;
  const options = list.map((d) => `<option ${d.dataSource === ds ? "selected" : ""}>${esc(d.dataSource)}</option>`).join("");
  const w = data.window;
  $view.innerHTML = `<h2>Timeline</h2>
    <div class="toolbar">
      <select id="tl-ds" aria-label="dataSource">${options}</select>
      <button id="tl-in">Zoom in</button><button id="tl-out">Zoom out</button><button id="tl-all">Whole extent</button>
      <button id="tl-left" aria-label="earlier">◀</button><button id="tl-right" aria-label="later">▶</button>
      <span class="mono muted" id="tl-window">${w ? esc(interval(w.start, w.end)) : ""}</span>
    </div>
    <div class="legend">
      <span><i style="background:#38a169"></i>visible</span><span><i style="background:#9ae6b4"></i>partly visible</span>
      <span><i style="background:#a0aec0"></i>overshadowed</span><span><i style="background:#dd6b20"></i>incomplete partition set</span>
      <span><i style="background:#e2e8f0;border:1px dashed #a0aec0"></i>unused (awaiting kill)</span><span><i style="background:rgba(229,62,62,.3)"></i>gap</span>
      <span class="muted">drag to zoom to a range · scroll to zoom · click a chunk for its segments</span>
    </div>
    <div id="tl-chart"></div><div id="tl-summary"></div><div id="tl-set"></div>`;
  document.getElementById("tl-ds").onchange = (e) => go(`#/timeline/${encodeURIComponent(e.target.value)}`);
  document.getElementById("tl-in").onclick = () => zoom(0.5);
  document.getElementById("tl-out").onclick = () => zoom(2);
  document.getElementById("tl-all").onclick = () => go(`#/timeline/${encodeURIComponent(ds)}`);
  document.getElementById("tl-left").onclick = () => pan(-0.5);
  document.getElementById("tl-right").onclick = () => pan(0.5);
  drawTimeline(data);
  if (tl.selected) await showSet(tl.selected, tl.page);
};
function windowMs() { const w = tl.data.window; return [w.startMs, w.endMs]; }
function setWindow(a, b) {
  const e = tl.data.extent;
  const JS_DATE_LIMIT = 8.64e15;  // Druid's ETERNITY bounds lie beyond what a JavaScript Date can print
  a = Math.max(Math.round(a), e.startMs - (e.endMs - e.startMs), -JS_DATE_LIMIT); b = Math.min(Math.round(b), JS_DATE_LIMIT);
  if (b - a < 60000) b = a + 60000;
  go(`#/timeline/${encodeURIComponent(tl.ds)}` + query({ start: new Date(a).toISOString(), end: new Date(b).toISOString() }));
}
function zoom(f, centre) {
  const [a, b] = windowMs(); const c = centre ?? (a + b) / 2;
  setWindow(c - (c - a) * f, c + (b - c) * f);
}
function pan(f) { const [a, b] = windowMs(); const d = (b - a) * f; setWindow(a + d, b + d); }

function drawTimeline(data) {
  const el = document.getElementById("tl-chart");
  const W = Math.max(el.clientWidth || 900, 600), left = 10, right = 10, top = 8, rowH = 26, axisH = 28;
  const [a, b] = windowMs();
  const x = (ms) => left + ((Math.min(Math.max(ms, a), b) - a) / (b - a)) * (W - left - right);
  let body = "", H;
  if (data.mode === "density") {
    const totals = {};
    for (const k of data.buckets) totals[k.start] = (totals[k.start] || 0) + k.segments;
    const max = Math.max(1, ...Object.values(totals));
    const h = 140; H = top + h + axisH;
    const below = {};  // used bars at the bottom, unused stacked on them
    const ordered = data.buckets.slice().sort((p, q) => (p.used === q.used ? 0 : p.used ? -1 : 1));
    body = ordered.map((k) => {
      const x0 = x(Date.parse(k.start)), x1 = x(Date.parse(k.end)), bh = Math.max(2, (k.segments / max) * h);
      const base = below[k.start] || 0; below[k.start] = base + bh;
      return `<rect class="bar ${k.used ? "" : "unused"}" data-start="${esc(k.start)}" data-end="${esc(k.end)}" x="${x0}" width="${Math.max(1, x1 - x0 - 1)}" y="${top + h - base - bh}" height="${bh}"><title>${esc(interval(k.start, k.end))}: ${num(k.segments)} ${k.used ? "used" : "unused"} segments, ${bytes(k.size)}, ${num(k.rows)} rows, ${k.versions} versions</title></rect>`;
    }).join("");
    document.getElementById("tl-summary").innerHTML = `<p class="notice">More than ${num(data.maxSets)} partition sets in this window: showing segments per bucket. Click a bar or zoom in to see chunks and versions.</p>`;
  } else if (data.mode === "empty") {
    el.innerHTML = `<p class="muted">No segments.</p>`; return;
  } else {
    // Rows: each chunk's sets stacked by version, newest on top; sets of different chunks share rows when they fit.
    const sets = data.sets.slice().sort((p, q) => (p.used === q.used ? 0 : p.used ? -1 : 1) || (q.version > p.version ? 1 : q.version < p.version ? -1 : 0));
    const rows = [];
    for (const s of sets) {
      let r = rows.findIndex((row) => row.every((o) => o.endMs <= s.startMs || o.startMs >= s.endMs));
      if (r < 0) { rows.push([]); r = rows.length - 1; }
      rows[r].push(s); s.row = r;
    }
    H = top + Math.max(rows.length, 1) * rowH + axisH;
    body += (data.gaps || []).map((g) => `<rect class="gap" x="${x(g.startMs)}" width="${Math.max(2, x(g.endMs) - x(g.startMs))}" y="0" height="${H - axisH}"><title>gap ${esc(interval(g.start, g.end))}: no visible data</title></rect>`).join("");
    body += data.sets.map((s, i) => {
      const cls = s.tombstone ? "tombstone" : s.state.replace(/\s+/g, "-");
      const x0 = x(s.startMs), x1 = x(s.endMs);
      const sel = tl.selected && tl.selected.startMs === s.startMs && tl.selected.endMs === s.endMs && tl.selected.version === s.version ? " selected" : "";
      const label = x1 - x0 > 150 ? `<text class="setlabel" x="${x0 + 5}" y="${top + s.row * rowH + rowH / 2 + 4}">${esc(s.version)}</text>` : "";
      return `<rect class="set ${cls}${sel}" data-i="${i}" x="${x0}" width="${Math.max(2, x1 - x0)}" y="${top + s.row * rowH + 2}" height="${rowH - 4}" rx="2"><title>${esc(interval(s.start, s.end))}\nversion ${esc(s.version)}\n${esc(s.state)}${s.complete === false ? " (core partitions missing)" : ""}\n${num(s.segments)} segments · ${bytes(s.size)} · ${num(s.rows)} rows</title></rect>${label}`;
    }).join("");
    const vis = data.sets.filter((s) => s.state === "visible" || s.state === "partly visible");
    document.getElementById("tl-summary").innerHTML = `<div class="cards">` +
      card("Partition sets", num(data.sets.length)) + card("Versions", num(data.versions.length)) +
      card("Visible", `${num(vis.length)} · ${bytes(vis.reduce((t, s) => t + s.size, 0))}`) +
      card("Overshadowed", num(data.sets.filter((s) => s.state === "overshadowed").length)) +
      card("Incomplete", num(data.sets.filter((s) => s.state === "incomplete").length)) +
      card("Unused", num(data.sets.filter((s) => s.state === "unused").length)) +
      card("Gaps", num((data.gaps || []).length)) + `</div>` +
      (data.conflict ? `<p class="notice">${esc(data.conflict)}</p>` : "");
  }
  // Axis: ~8 ticks at round instants.
  const ticks = [], n = 8, step = (b - a) / n;
  for (let i = 0; i <= n; i++) ticks.push(a + i * step);
  const fmt = (ms) => { if (Math.abs(ms) > 8.64e15) return ms < 0 ? "-∞" : "+∞"; const s = new Date(ms).toISOString(); return step >= 86400000 ? s.slice(0, 10) : s.slice(0, 16).replace("T", " "); };
  const axis = `<g class="axis">` + ticks.map((t, i) => `<line x1="${x(t)}" x2="${x(t)}" y1="0" y2="${H - axisH + 4}"></line><text x="${x(t)}" y="${H - 8}" text-anchor="${i === 0 ? "start" : i === n ? "end" : "middle"}">${fmt(t)}</text>`).join("") + `</g>`;
  el.innerHTML = `<svg class="timeline" id="tl-svg" viewBox="0 0 ${W} ${H}" height="${H}" role="img" aria-label="timeline of ${esc(tl.ds)}">${axis}${body}<rect class="brush" id="tl-brush" x="0" y="0" width="0" height="${H - axisH}"></rect></svg>`;
  const svg = document.getElementById("tl-svg");
  const toMs = (ev) => { const r = svg.getBoundingClientRect(); const px = ((ev.clientX - r.left) / r.width) * W; return a + ((px - left) / (W - left - right)) * (b - a); };
  svg.querySelectorAll("rect.set").forEach((r) => r.addEventListener("click", (ev) => { ev.stopPropagation(); selectSet(data.sets[Number(r.dataset.i)]); }));
  svg.querySelectorAll("rect.bar").forEach((r) => r.addEventListener("click", () => setWindow(Date.parse(r.dataset.start), Date.parse(r.dataset.end))));
  svg.addEventListener("wheel", (ev) => { ev.preventDefault(); zoom(ev.deltaY < 0 ? 0.6 : 1.6, toMs(ev)); }, { passive: false });
  let drag = null; const brush = document.getElementById("tl-brush");
  svg.addEventListener("mousedown", (ev) => { if (ev.target.classList.contains("set") || ev.target.classList.contains("bar")) return; drag = { from: toMs(ev), px: ev.clientX }; });
  svg.addEventListener("mousemove", (ev) => {
    if (!drag) return; const r = svg.getBoundingClientRect(); const k = W / r.width;
    const p0 = (Math.min(drag.px, ev.clientX) - r.left) * k, p1 = (Math.max(drag.px, ev.clientX) - r.left) * k;
    brush.setAttribute("x", p0); brush.setAttribute("width", p1 - p0);
  });
  window.onmouseup = (ev) => { if (!drag) return; const d = drag; drag = null; if (Math.abs(ev.clientX - d.px) > 5) { const t = toMs(ev); setWindow(Math.min(d.from, t), Math.max(d.from, t)); } else brush.setAttribute("width", 0); };
}
async function selectSet(s) { tl.selected = s; tl.page = 0; drawTimeline(tl.data); await showSet(s, 0); }
async function showSet(s, page) {
  const limit = 50;
  const d = await api(`datasources/${encodeURIComponent(tl.ds)}/sets` + query({ start: s.start, end: s.end, version: s.version, offset: page * limit, limit }));
  const el = document.getElementById("tl-set");
  if (!el || tl.selected !== s) return;  // another chunk was clicked, or the view was left, meanwhile
  const writers = d.writers.length ? d.writers.map((w) => `${taskLink(w.taskId)} <span class="muted">${esc(w.type || "")} · ${esc(w.lockType || "")} lock</span> ${w.status ? badge(w.status) : ""}`).join("<br>") : `<span class="muted">unknown (no lock record of this version)</span>`;
  el.innerHTML = `<h3 id="set-title">Chunk ${esc(interval(s.start, s.end))} · version <span class="mono">${esc(s.version)}</span> ${badge(s.state)}</h3>
    <div class="cards">${card("Segments", num(d.total))}${card("Size", bytes(s.size))}${card("Rows", num(s.rows))}
    ${card("Core partitions", s.corePartitions === null || s.corePartitions === undefined ? "—" : num(s.corePartitions))}${card("Complete", s.complete === null || s.complete === undefined ? "—" : s.complete ? "yes" : "no")}</div>
    <p><b>Written by:</b><br>${writers}</p>` +
    table([
      { title: "Partition", num: true, key: "partitionNum" },
      { title: "Segment id", html: (r) => `<span class="mono">${esc(r.id)}</span>` },
      { title: "Shard spec", html: (r) => `<code>${esc(JSON.stringify(r.shardSpec))}</code>` },
      { title: "Size", num: true, get: (r) => bytes(r.size) },
      { title: "Rows", num: true, get: (r) => num(r.numRows) },
      { title: "Used", html: (r) => (r.used ? "yes" : `no <span class="muted">(${esc(r.unusedReason || "")})</span>`) },
      { title: "Compacted", html: (r) => (r.lastCompactionState ? "yes" : `<span class="muted">no</span>`) },
    ], d.segments, { id: "set-segments" }) +
    `<div class="pager"><button id="set-prev" ${page ? "" : "disabled"}>Previous</button><span class="muted">${num(page * limit + 1)}–${num(Math.min((page + 1) * limit, d.total))} of ${num(d.total)}</span><button id="set-next" ${(page + 1) * limit < d.total ? "" : "disabled"}>Next</button></div>`;
  document.getElementById("set-prev").onclick = () => { tl.page = page - 1; showSet(s, page - 1); };
  document.getElementById("set-next").onclick = () => { tl.page = page + 1; showSet(s, page + 1); };
}

// -------------------------------------------------------------------- tasks
views.tasks = async (arg, params, seq) => {
  const limit = 50, offset = Number(params.offset || 0);
  const [d, dss] = await Promise.all([
    api("tasks" + query({ dataSource: params.dataSource, type: params.type, status: params.status, offset, limit })),
    api("datasources"),
  ]);
  if (stale(seq)) return;
  const opt = (values, sel, all) => `<option value="">${all}</option>` + values.map((v) => `<option ${v === sel ? "selected" : ""}>${esc(v)}</option>`).join("");
  $view.innerHTML = `<h2>Tasks</h2><div class="toolbar">
      <select id="f-ds" aria-label="dataSource">${opt(dss.map((x) => x.dataSource), params.dataSource, "every dataSource")}</select>
      <select id="f-type" aria-label="type">${opt(d.types, params.type, "every type")}</select>
      <select id="f-status" aria-label="status">${opt(["RUNNING", "SUCCESS", "FAILED"], params.status, "every status")}</select>
    </div>` + table([
    { title: "Task", html: (r) => taskLink(r.id) },
    { title: "Type", key: "type" },
    { title: "dataSource", key: "dataSource" },
    { title: "Status", html: (r) => badge(r.status) },
    { title: "Created", html: (r) => `<span title="${esc(r.createdTime)}">${esc(since(r.createdTime))}</span>` },
    { title: "Duration", num: true, get: (r) => (r.active ? duration(Date.now() - Date.parse(r.createdTime)) + " so far" : duration(r.duration)) },
    { title: "Error", html: (r) => (r.errorMsg ? `<span title="${esc(r.errorMsg)}">${esc(r.errorMsg.slice(0, 120))}</span>` : "") },
  ], d.tasks, { id: "tasks", onClick: true, empty: "no tasks match" }) +
    `<div class="pager"><button id="t-prev" ${offset ? "" : "disabled"}>Newer</button><button id="t-next" ${d.more ? "" : "disabled"}>Older</button></div>`;
  bindRows($view, d.tasks, (r) => go(`#/task/${encodeURIComponent(r.id)}`));
  const filter = (extra) => go("#/tasks" + query({ dataSource: params.dataSource, type: params.type, status: params.status, ...extra }));
  document.getElementById("f-ds").onchange = (e) => filter({ dataSource: e.target.value, offset: 0 });
  document.getElementById("f-type").onchange = (e) => filter({ type: e.target.value, offset: 0 });
  document.getElementById("f-status").onchange = (e) => filter({ status: e.target.value, offset: 0 });
  document.getElementById("t-prev").onclick = () => filter({ offset: Math.max(0, offset - limit) });
  document.getElementById("t-next").onclick = () => filter({ offset: offset + limit });
};

views.task = async (id, params, seq) => {
  const t = await api(`tasks/${encodeURIComponent(id)}`);
  if (stale(seq)) return;
  const report = t.report || {};
  const ing = (report.ingestionStatsAndErrors || {}).payload;
  const killed = (report.killUnusedSegments || {}).payload;
  let html = `<h2>Task <span class="mono">${esc(t.id)}</span> ${badge(t.status)}</h2><div class="cards">
    ${card("Type", esc(t.type))}${card("dataSource", `<a href="#/timeline/${encodeURIComponent(t.dataSource)}">${esc(t.dataSource)}</a>`)}
    ${card("Created", `<span title="${esc(t.createdTime)}">${esc(since(t.createdTime))}</span>`)}
    ${card("Duration", t.active ? duration(Date.now() - Date.parse(t.createdTime)) + " so far" : duration(t.duration))}
    ${card("Airflow", t.airflow ? `${airflowLink(t.airflow.runUrl, "DAG run")} · ${airflowLink(t.airflow.logsUrl, "task logs")}` : `<span class="muted">not run by Airflow</span>`)}</div>`;
  if (t.airflow) html += `<p class="muted">Airflow: DAG <span class="mono">${esc(t.airflow.dagId)}</span>, run <span class="mono">${esc(t.airflow.runId)}</span>, task <span class="mono">${esc(t.airflow.taskId)}</span></p>`;
  if (t.errorMsg) html += `<h3>Error</h3><pre id="task-error">${esc(t.errorMsg)}</pre>`;
  if (ing) {
    const phases = Object.entries(ing.rowStats || {});
    html += `<h3>Ingestion report <span class="muted">(${esc(ing.ingestionState || "")}, ${num(ing.segmentsPublished)} segments published)</span></h3>` + table([
      { title: "Phase", key: "phase" },
      { title: "Processed", num: true, get: (r) => num(r.processed) },
      { title: "With error", num: true, get: (r) => num(r.processedWithError) },
      { title: "Thrown away", num: true, get: (r) => num(r.thrownAway) },
      { title: "Unparseable", num: true, get: (r) => num(r.unparseable) },
      { title: "Bytes read", num: true, get: (r) => bytes(r.processedBytes) },
    ], phases.map(([phase, s]) => ({ phase, ...s })), { id: "row-stats" });
    const events = Object.entries(ing.unparseableEvents || {}).flatMap(([phase, list]) => (list || []).map((e) => ({ phase, e })));
    html += `<h3>Saved parse exceptions (${num(events.length)})</h3>` + table([
      { title: "Phase", key: "phase" },
      { title: "Message", html: (r) => esc(typeof r.e === "string" ? r.e : (r.e.details && r.e.details.errorMessage) || r.e.message || JSON.stringify(r.e)) },
      { title: "Input", html: (r) => `<code>${esc(typeof r.e === "string" ? "" : (r.e.input ?? r.e.rowIndex ?? ""))}</code>` },
    ], events, { id: "parse-exceptions", empty: "none" });
  }
  if (killed) html += `<h3>Kill report</h3><div class="cards">${card("Segments deleted", num(killed.numSegmentsKilled))}${card("Bytes", bytes(killed.bytesKilled))}${card("Files", num(killed.numFilesDeleted))}${card("Batches", num(killed.numBatchesProcessed))}</div>`;
  if (t.lockEvents && t.lockEvents.length) html += `<h3>Lock history</h3>` + table([
    { title: "At", key: "at" }, { title: "Event", key: "event" }, { title: "Interval", get: (r) => shortInterval(r.interval) },
    { title: "By", html: (r) => (r.actor ? taskLink(r.actor) : "") }, { title: "Detail", key: "detail" }], t.lockEvents);
  html += `<details><summary>Task spec</summary><pre>${esc(JSON.stringify(t.payload, null, 2))}</pre></details>`;
  if (t.report) html += `<details><summary>Full report JSON</summary><pre>${esc(JSON.stringify(t.report, null, 2))}</pre></details>`;
  $view.innerHTML = html;
};

// -------------------------------------------------------------------- locks
views.locks = async (arg, params, seq) => {
  const d = await api("locks" + query({ dataSource: params.dataSource }));
  if (stale(seq)) return;
  const active = d.locks.filter((l) => l.state === "active");
  $view.innerHTML = `<h2>Locks</h2><div class="cards">${card("Active", num(active.length))}${card("Revoked", num(d.locks.filter((l) => l.revoked).length))}${card("Expired", num(d.locks.filter((l) => l.expired).length))}</div>` + table([
    { title: "dataSource", key: "dataSource" },
    { title: "Interval", html: (r) => `<span class="mono" title="${esc(r.interval)}">${esc(shortInterval(r.interval))}</span>` },
    { title: "Type", key: "type" },
    { title: "Priority", num: true, key: "priority" },
    { title: "State", html: (r) => badge(r.state) },
    { title: "Version", html: (r) => `<span class="mono">${esc(r.version)}</span>` },
    { title: "Owner task", html: (r) => taskLink(r.taskId) + (r.groupId && r.groupId !== r.taskId ? `<br><span class="muted">group ${esc(r.groupId)}</span>` : "") },
    { title: "Lease expires", html: (r) => `<span title="${esc(r.leaseExpires)}">${esc(since(r.leaseExpires))}</span>` },
    { title: "Revoked by", html: (r) => (r.events || []).filter((e) => e.event === "revoke").map((e) => (e.actor ? taskLink(e.actor) : "") + (e.detail ? ` <span class="muted">${esc(e.detail)}</span>` : "")).join("<br>") },
  ], d.locks, { id: "locks", empty: "no locks held" });
};

// -------------------------------------------------------------------- auto-compaction
views.compaction = async (arg, params, seq) => {
  const d = await api("compaction");
  if (stale(seq)) return;
  if (!d.plan) { $view.innerHTML = `<h2>Auto-compaction</h2><p class="muted">No plan yet: <span class="mono">${esc(d.dagId)}</span> has not run (set its Variable, see docs/compaction.md).</p>`; return; }
  const p = d.plan, outcome = {};
  for (const c of ((d.outcome || {}).chunks || [])) outcome[(c.dataSource || c.data_source) + " " + c.interval] = c;
  const counts = {};
  for (const v of p.verdicts) counts[v.category] = (counts[v.category] || 0) + 1;
  const dsFilter = params.dataSource || "";
  const matching = p.verdicts.filter((v) => !dsFilter || (v.dataSource || v.data_source) === dsFilter);
  const pageSize = 200, offset = Math.max(0, Number(params.offset || 0));
  const rows = matching.slice(offset, offset + pageSize);
  const dss = [...new Set(p.verdicts.map((v) => v.dataSource || v.data_source))];
  $view.innerHTML = `<h2>Auto-compaction</h2><div class="cards">
      ${card("Planned", `<span title="${esc(p.plannedAt)}">${esc(since(p.plannedAt))}</span>`)}
      ${card("Run", `${airflowLink(`/dags/${encodeURIComponent(d.dagId)}/runs/${encodeURIComponent(d.runId)}`, d.runId)} ${d.runState ? badge(d.runState) : ""}`)}
      ${card("Free slots", num(p.slots))}${card("Running before", num((p.running || []).length))}${p.dryRun ? card("Mode", "dry run") : ""}
      ${Object.entries(counts).map(([k, v]) => card(k.replace(/_/g, " "), num(v))).join("")}</div>
    <div class="toolbar"><select id="c-ds" aria-label="dataSource"><option value="">every dataSource</option>${dss.map((x) => `<option ${x === dsFilter ? "selected" : ""}>${esc(x)}</option>`).join("")}</select></div>` +
    (p.notes && p.notes.length ? `<p class="notice">${p.notes.map(esc).join("<br>")}</p>` : "") + table([
    { title: "dataSource", get: (v) => v.dataSource || v.data_source },
    { title: "Chunk", html: (v) => `<span class="mono" title="${esc(v.interval)}">${esc(shortInterval(v.interval))}</span>` },
    { title: "Verdict", html: (v) => badge(v.category === "compact" ? "compact" : "skipped: " + v.category.replace(/_/g, " "), v.category) },
    { title: "Reason", key: "reason" },
    { title: "Segments", num: true, get: (v) => num(v.segments) },
    { title: "Small", num: true, get: (v) => num(v.smallSegments ?? v.small_segments) },
    { title: "Size", num: true, get: (v) => bytes(v.bytes) },
    { title: "Outcome", html: (v) => { const o = outcome[(v.dataSource || v.data_source) + " " + v.interval]; return o ? esc(o.outcome || o.verdict || "") : ""; } },
    { title: "Task", html: (v) => (v.taskId || v.task_id ? taskLink(v.taskId || v.task_id) : "") },
  ], rows, { id: "verdicts", empty: "no chunks" }) +
    `<div class="pager"><button id="c-prev" ${offset ? "" : "disabled"}>Previous</button><span class="muted">${num(Math.min(offset + 1, matching.length))}–${num(Math.min(offset + pageSize, matching.length))} of ${num(matching.length)} chunks</span><button id="c-next" ${offset + pageSize < matching.length ? "" : "disabled"}>Next</button></div>`;
  document.getElementById("c-ds").onchange = (e) => go("#/compaction" + query({ dataSource: e.target.value }));
  document.getElementById("c-prev").onclick = () => go("#/compaction" + query({ dataSource: dsFilter, offset: Math.max(0, offset - pageSize) }));
  document.getElementById("c-next").onclick = () => go("#/compaction" + query({ dataSource: dsFilter, offset: offset + pageSize }));
};

// -------------------------------------------------------------------- kill
views.kill = async (arg, params, seq) => {
  const dss = await api("datasources");
  if (stale(seq)) return;
  const ds = params.dataSource || (dss[0] && dss[0].dataSource) || "";
  const sel = dss.find((x) => x.dataSource === ds);
  const iv = params.interval || (sel && sel.start ? `${sel.start}/${sel.end}` : "");
  $view.innerHTML = `<h2>Kill unused segments</h2>
    <p class="muted">Deletes, for good, the <b>unused</b> segments lying entirely inside the interval, and their files. Used segments, and files a used segment still points at, are never deleted. Preview first: it deletes nothing.</p>
    <div class="toolbar">
      <select id="k-ds" aria-label="dataSource">${dss.map((x) => `<option ${x.dataSource === ds ? "selected" : ""}>${esc(x.dataSource)}</option>`).join("")}</select>
      <input id="k-interval" type="text" size="52" aria-label="interval" placeholder="2024-01-01/2024-02-01" value="${esc(iv)}">
      <button id="k-preview" class="primary">Preview (dry run)</button>
    </div><div id="k-result"></div>`;
  document.getElementById("k-preview").onclick = killPreview;
};
async function killPreview() {
  const form = { dataSource: document.getElementById("k-ds").value, interval: document.getElementById("k-interval").value.trim() };
  const out = document.getElementById("k-result");
  out.innerHTML = `<p class="muted">computing…</p>`;
  let d;
  try { d = await api("kill/preview", { method: "POST", body: JSON.stringify(form) }); } catch (e) { out.innerHTML = `<p class="notice" id="k-error">${esc(e.message)}</p>`; return; }
  const r = d.report;
  // A dry run's report names its counts for what it would do (numSegmentsToKill); older engines said ...Killed.
  const would = (name, old) => r[name] ?? r[old] ?? 0;
  const nSegments = would("numSegmentsToKill", "numSegmentsKilled");
  const skipped = Object.entries(r.skipped || {});
  out.innerHTML = `<h3>Dry run: ${esc(form.dataSource)} ${esc(shortInterval(d.spec.interval))}</h3><p id="k-summary">${esc(d.summary)}</p>
    <div class="cards">${card("Segments to delete", num(nSegments))}${card("Bytes", bytes(would("bytesToKill", "bytesKilled")))}${card("Files", num(would("numFilesToDelete", "numFilesDeleted")))}${card("Batches", num(would("numBatchesToProcess", "numBatchesProcessed")))}</div>` +
    (r.blockedBy && r.blockedBy.length ? `<p class="notice">Locked right now by ${r.blockedBy.map(taskLink).join(", ")}: a confirmed kill would wait for them.</p>` : "") +
    (skipped.length ? `<h3>Kept</h3>` + table([{ title: "Why", key: "why" }, { title: "Segments", num: true, get: (x) => num(x.segments) }, { title: "Bytes", num: true, get: (x) => bytes(x.bytes) }],
      skipped.map(([k, v]) => ({ why: v.why || k, segments: v.segments, bytes: v.bytes })), { id: "k-skipped" }) : "") +
    `<details ${r.segments.length <= 20 ? "open" : ""}><summary>${num(r.segments.length)} segment ids${r.listingTruncated ? " (first ones)" : ""}</summary><pre id="k-segments">${esc(r.segments.join("\n"))}</pre></details>` +
    (nSegments ? `<p><label><input type="checkbox" id="k-sure"> I want to delete these ${num(nSegments)} segments and their files for good</label>
      <br><span class="muted">The kill deletes only segments marked unused before this preview (${esc(d.previewedAt)}).</span></p>
      <button id="k-confirm" class="danger" disabled>Delete: trigger druidflow_kill with confirm</button><div id="k-triggered"></div>` : `<p class="ok">Nothing to delete.</p>`);
  const sure = document.getElementById("k-sure");
  if (!sure) return;
  const btn = document.getElementById("k-confirm");
  sure.onchange = () => { btn.disabled = !sure.checked; };
  btn.onclick = async () => {
    btn.disabled = true;
    const res = document.getElementById("k-triggered");
    try {
      const t = await api("kill", { method: "POST", body: JSON.stringify({ ...form, previewedAt: d.previewedAt }) });
      res.innerHTML = `<p class="ok">Triggered ${airflowLink(t.runUrl, t.runId)}${t.paused ? " — the DAG is paused: unpause druidflow_kill for it to run" : ""}. Its task appears under Tasks once it starts.</p>`;
    } catch (e) {
      res.innerHTML = `<p class="notice">${e.status === 403 ? "You may not trigger druidflow_kill: " : ""}${esc(e.message)}</p>`;
    }
  };
}

// ------------------------------------------------------------------------------------------------ router + polling
async function render(fromPoll) {
  const r = route();
  const name = r.name === "task" ? "task" : r.name in views ? r.name : "datasources";
  document.querySelectorAll("#tabs a").forEach((a) => a.classList.toggle("active", a.dataset.view === (name === "task" ? "tasks" : name)));
  if (fromPoll && (name === "kill")) return;  // never wipe a form being filled in
  const y = window.scrollY;
  const seq = ++renderSeq;
  try {
    await views[name](r.arg, r.params, seq);
    if (stale(seq)) return;
    clearError();
    if (fromPoll) window.scrollTo(0, y);
    document.body.dataset.loaded = name;
    document.body.dataset.hash = location.hash;  // what the page shows now (tests wait for it)
  } catch (e) { if (!stale(seq)) showError(e); }
}
async function poll() {
  try {
    const d = await api("tasks?status=RUNNING&limit=1");
    liveRuns = d.tasks.length > 0;
  } catch (e) { liveRuns = false; }
  const wasLive = !$live.hidden;
  $live.hidden = !liveRuns;
  if ((liveRuns || wasLive) && !document.hidden) await render(true);  // and once more when the last run ends
}
window.addEventListener("hashchange", () => render(false));
render(false);
setInterval(poll, POLL_MS);
poll();
