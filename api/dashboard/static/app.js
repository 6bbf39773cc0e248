// SafeWatch dashboard: one page, hash routes, no build step, no third-party code.
// Data comes from the API of the same process; alert changes arrive over server-sent events.
"use strict";

const S = {
  token: sessionStorage.getItem("sw_token"),
  lang: localStorage.getItem("sw_lang") || "zh",
  me: null,
  divisions: [],          // as the API returns them (banner-level counts)
  byCode: {},             // rolled-up copies, keyed by code
  page: null, arg: null,
  alerts: [], expanded: new Set(), eqCursor: null, chartRange: "hour",
  collapsed: new Set(), refreshing: false, pending: false,
};
const SEVERITIES = ["critical", "major", "minor", "warning"];
const STATES = ["active_unack", "active_ack", "returned_unack", "shelved", "suppressed", "out_of_service", "normal"];
const RANK = Object.fromEntries(SEVERITIES.map((s, i) => [s, i]));
const t = k => (I18N[S.lang] || I18N.zh)[k] ?? I18N.zh[k] ?? k;
const $ = (sel, root = document) => root.querySelector(sel);
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const dname = d => (d ? (S.lang === "en" && d.name_en ? d.name_en : d.name) : "");
const divName = code => dname(S.byCode[code]) || code;

class ApiError extends Error {}

async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { ...(opts.headers || {}), Authorization: "Bearer " + S.token } });
  if (r.status === 401) { logout(); throw new ApiError(t("login")); }
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    const msg = Array.isArray(body?.detail) ? body.detail.map(d => d.msg).join("; ") : (body?.detail || r.statusText);
    throw new ApiError(msg);
  }
  return body;
}
const post = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                         body: JSON.stringify(body || {}) });

// ---------- time ----------
function fmtDuration(ms) {
  const neg = ms < 0; let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400); s %= 86400;
  const h = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60); s %= 60;
  const p = n => String(n).padStart(2, "0");
  return (neg ? "-" : "") + (d ? `${d}d ` : "") + `${p(h)}:${p(m)}:${p(s)}`;
}
const fmtTime = iso => (iso ? new Date(iso).toLocaleString(S.lang === "en" ? "en-GB" : "zh-CN", { hour12: false }) : "");
function tick() {
  const now = Date.now();
  document.querySelectorAll("[data-since]").forEach(el => { el.textContent = fmtDuration(now - Date.parse(el.dataset.since)); });
  document.querySelectorAll("[data-until]").forEach(el => {
    const left = Date.parse(el.dataset.until) - now;
    el.textContent = fmtDuration(left);
    el.classList.toggle("late", left < 0); el.classList.toggle("bad", left < 0);
  });
}
setInterval(tick, 1000);

// ---------- language ----------
function applyI18n() {
  document.documentElement.lang = S.lang === "en" ? "en" : "zh-CN";
  if (!Alarm.flashOn) document.title = baseTitle();
  document.querySelectorAll("[data-i18n]").forEach(el => { el.textContent = t(el.dataset.i18n); });
  $("#live").textContent = document.body.dataset.live === "1" ? t("live") : t("offline_poll");
  if (S.me) $("#who").textContent = `${S.me.username} · ${t("role_" + S.me.role)} · ${divName(S.me.division_code)}`;
  updateAlarmButtons();
}
$("#lang").addEventListener("click", () => {
  S.lang = S.lang === "zh" ? "en" : "zh"; localStorage.setItem("sw_lang", S.lang);
  applyI18n(); fillSelects(); render(); drawSystemAlerts();
});

// ---------- login ----------
$("#login").addEventListener("submit", async e => {
  e.preventDefault();
  const r = await fetch("/api/v1/auth/token", { method: "POST", body: new URLSearchParams(new FormData(e.target)) });
  if (!r.ok) { $("#login-error").textContent = t("login_failed"); return; }
  S.token = (await r.json()).access_token; sessionStorage.setItem("sw_token", S.token);
  $("#login-error").textContent = ""; start();
});
function logout() {
  sessionStorage.removeItem("sw_token"); S.token = null; S.me = null;
  if (S.events) { S.events.close(); S.events = null; }
  [...Alarm.ringing.keys()].forEach(silence); Alarm.known.clear();
  ["#app", "#nav", "#logout", "#live"].forEach(s => $(s).classList.add("hidden"));
  S.system = []; drawSystemAlerts();
  $("#who").textContent = ""; $("#login").classList.remove("hidden");
}
$("#logout").addEventListener("click", logout);

// ---------- jurisdiction ----------
function rollUp(divisions) {
  const byCode = Object.fromEntries(divisions.map(d => [d.code, { ...d, children: [] }]));
  const keys = ["equipment", "online", "inspections_overdue", "critical", "major", "minor", "warning"];
  for (const d of divisions.filter(d => d.level === "banner")) {
    for (let p = byCode[d.parent_code]; p; p = byCode[p.parent_code]) for (const k of keys) p[k] += d[k];
  }
  for (const d of Object.values(byCode)) if (byCode[d.parent_code]) byCode[d.parent_code].children.push(d);
  return byCode;
}
const roots = () => Object.values(S.byCode).filter(d => !S.byCode[d.parent_code]);
async function loadDivisions() {
  // One call carries the tree with its counts and the map (the overview endpoint is built for it).
  S.overview = await api("/api/v1/dashboard/overview");
  S.divisions = S.overview.divisions;
  S.byCode = rollUp(S.divisions);
}
function divisionOptions(selected) {
  const out = [`<option value="">${esc(t("all"))}</option>`];
  const walk = (d, depth) => {
    out.push(`<option value="${d.code}" ${d.code === selected ? "selected" : ""}>${"\u00a0".repeat(depth * 3)}${esc(dname(d))}</option>`);
    d.children.forEach(c => walk(c, depth + 1));
  };
  roots().forEach(r => walk(r, 0));
  return out.join("");
}
function fillSelects() {
  const f = $("#alert-filters");
  const keep = name => f.elements[name].value;
  f.elements.severity.innerHTML = `<option value="">${esc(t("all"))}</option>` +
    SEVERITIES.map(s => `<option value="${s}">${esc(t(s))}</option>`).join("");
  f.elements.state.innerHTML = `<option value="">${esc(t("all"))}</option>` +
    STATES.map(s => `<option value="${s}">${esc(t("st_" + s))}</option>`).join("");
  const div = keep("division");
  f.elements.division.innerHTML = divisionOptions(div);
  const q = $("#eq-search");
  q.elements.division.innerHTML = divisionOptions(q.elements.division.value);
  const kd = $("#kpi-form").elements.division;
  kd.innerHTML = divisionOptions(kd.value);
  const sf = $("#sup-filters").elements;
  sf.division.innerHTML = divisionOptions(sf.division.value);
  const rule = sf.rule.value;
  sf.rule.innerHTML = `<option value="">${esc(t("all"))}</option>` + SUPERVISION_RULES.map(r =>
    `<option value="${r}" ${r === rule ? "selected" : ""}>${esc(t("rule_" + r))}</option>`).join("");
  const cat = q.elements.category.value;
  q.elements.category.innerHTML = `<option value="">${esc(t("all"))}</option>` +
    ["1000", "2000", "3000"].map(c => `<option value="${c}" ${c === cat ? "selected" : ""}>${esc(t("cat_" + c))}</option>`).join("");
}

// ---------- alarms: heard at once ----------
// Every new unacknowledged critical hazard and every trapped passenger sounds (WebAudio, no asset), shows a
// browser notification, flashes the title and the tab icon, and is announced to screen readers; sound and
// notification repeat until someone acknowledges it. Mute silences the sound for this browser session only.
// "New": the system learned of it (learned_at, not the device's clock) less than ALARM_RECENT_MS before it
// reached this page, or it came back unacknowledged after an acknowledgement.
const TRAPPED_RULE = "event.passenger_trapped";
const ALARM_RECENT_MS = 10 * 60 * 1000;
const Alarm = {
  ctx: null, ringing: new Map(), notes: new Map(), known: new Map(), repeat: null, flash: null, flashOn: false,
  // The repeat period: 30 s unless this browser sets sw_alarm_repeat_ms (the browser tests use 1 s).
  ticks: 0, sounds: 0, repeatMs: +(localStorage.getItem("sw_alarm_repeat_ms") || 30000),
};
S.muted = sessionStorage.getItem("sw_mute") === "1";
const baseTitle = () => "SafeWatch · " + t("app_title");
const unacked = state => state === "active_unack" || state === "returned_unack";
const dangerous = a => a.world !== "supervision" && (a.severity === "critical" || a.rule_key === TRAPPED_RULE);
function unlockAudio() {   // browsers start audio only from a user gesture
  try {
    Alarm.ctx ||= new (window.AudioContext || window.webkitAudioContext)();
    if (Alarm.ctx.state === "suspended") Alarm.ctx.resume();
  } catch { Alarm.ctx = null; }
  updateAlarmButtons();
}
document.addEventListener("pointerdown", unlockAudio, true);
document.addEventListener("keydown", unlockAudio, true);
function playAlarm() {
  if (S.muted || !Alarm.ctx) return;
  // A high-priority burst in the manner of IEC 60601-1-8: two groups of pulses, alternating 880/660 Hz.
  const c = Alarm.ctx, t0 = c.currentTime + 0.02;
  [0, 0.2, 0.4, 0.9, 1.1].forEach((dt, i) => {
    const o = c.createOscillator(), g = c.createGain();
    o.type = "square"; o.frequency.value = i % 2 ? 660 : 880;
    g.gain.setValueAtTime(0.0001, t0 + dt);
    g.gain.exponentialRampToValueAtTime(0.25, t0 + dt + 0.02);
    g.gain.exponentialRampToValueAtTime(0.0001, t0 + dt + 0.16);
    o.connect(g).connect(c.destination); o.start(t0 + dt); o.stop(t0 + dt + 0.18);
  });
  document.body.dataset.alarmSounds = String(++Alarm.sounds);
}
function alarmText(a) {
  const what = a.rule_key === TRAPPED_RULE ? t("trapped") : t(a.severity);
  return [`${what} · ${divName(a.division_code)}`, `#${a.id} · ${t("lvl_" + a.level)} · ${t("st_" + a.state)}`];
}
function notify(a) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const [title, body] = alarmText(a);
  Alarm.notes.get(a.id)?.close();
  try {
    const n = new Notification(title, { body, tag: "sw-alert-" + a.id, renotify: true, requireInteraction: true });
    n.onclick = () => { window.focus(); location.hash = "#/alerts"; };
    Alarm.notes.set(a.id, n);
  } catch { /* some mobile browsers allow notifications from a service worker only */ }
}
function setFavicon(on) {
  $("#favicon").href = on ? "data:image/svg+xml," + encodeURIComponent(
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#c0142b"/></svg>') : "data:,";
}
function flashTitle() {
  Alarm.flashOn = !Alarm.flashOn;
  document.title = Alarm.flashOn ? `⚠ (${Alarm.ringing.size}) ${t("alarm_title")}` : baseTitle();
  setFavicon(Alarm.flashOn);
}
function repeatAlarm() {
  document.body.dataset.alarmTicks = String(++Alarm.ticks);
  playAlarm();
  Alarm.ringing.forEach(notify);
}
function updateAlarm() {
  const n = Alarm.ringing.size;
  document.body.dataset.alarm = String(n);
  if (n && !Alarm.repeat) {
    Alarm.repeat = setInterval(repeatAlarm, Alarm.repeatMs);
    Alarm.flash = setInterval(flashTitle, 1000);
    flashTitle();
  } else if (!n && Alarm.repeat) {
    clearInterval(Alarm.repeat); clearInterval(Alarm.flash);
    Alarm.repeat = Alarm.flash = null; Alarm.flashOn = false;
    document.title = baseTitle(); setFavicon(false);
  }
  document.body.dataset.alarmRepeat = Alarm.repeat ? "on" : "off";
}
function ring(a) {
  Alarm.ringing.set(a.id, a);
  notify(a); playAlarm();
  $("#announce").textContent = alarmText(a).join(" · ");
  updateAlarm();
}
function silence(id) {
  if (!Alarm.ringing.delete(id)) return;
  Alarm.notes.get(id)?.close(); Alarm.notes.delete(id);
  updateAlarm();
}
// Called for every alert event of the stream.
function watchAlarm(a) {
  const was = Alarm.known.get(a.id);
  const now = unacked(a.state);
  Alarm.known.set(a.id, now);
  if (!dangerous(a) || !now) { silence(a.id); return; }
  const fresh = was === undefined ? Date.now() - Date.parse(a.learned_at) < ALARM_RECENT_MS : was === false;
  if (fresh && !Alarm.ringing.has(a.id)) ring(a);
}
function updateAlarmButtons() {
  const canAsk = "Notification" in window && Notification.permission === "default";
  $("#alarm-enable").classList.toggle("hidden", !S.me || (!canAsk && !!Alarm.ctx));
  const mute = $("#mute");
  mute.classList.toggle("hidden", !S.me);
  mute.textContent = t(S.muted ? "unmute" : "mute");
  mute.setAttribute("aria-pressed", String(S.muted));
}
$("#alarm-enable").addEventListener("click", async () => {
  unlockAudio();
  if ("Notification" in window && Notification.permission === "default") await Notification.requestPermission();
  updateAlarmButtons();
});
$("#mute").addEventListener("click", () => {
  S.muted = !S.muted;
  sessionStorage.setItem("sw_mute", S.muted ? "1" : "0");
  updateAlarmButtons();
});

// ---------- live updates (SSE) ----------
function setLive(on) {
  document.body.dataset.live = on ? "1" : "0";
  $("#live").textContent = on ? t("live") : t("offline_poll");
}
function connectLive() {
  if (S.events) S.events.close();
  const es = new EventSource("/api/v1/dashboard/events?access_token=" + encodeURIComponent(S.token));
  S.events = es;
  es.addEventListener("ready", () => {   // the server listens (again): refetch whatever may have been missed
    document.body.dataset.streamReady = String(+(document.body.dataset.streamReady || 0) + 1);
    setLive(true); refreshSoon(); refreshSystemAlerts();
  });
  es.addEventListener("resync", () => refreshSoon());
  es.addEventListener("alert", e => {
    const a = JSON.parse(e.data);
    S.lastEvent = a;
    watchAlarm(a);
    if (S.page === "equipment" && S.arg) { refreshSoon(); return; }
    refreshSoon();
  });
  es.onerror = () => { setLive(false); };
}
// Without SSE (proxy, database outage) the page still refreshes, slowly.
setInterval(() => { if (S.me && document.body.dataset.live !== "1") refreshSoon(); }, 30000);
// Registry-side counts (gateways going on/offline) have no event: refresh the overview now and then.
setInterval(() => { if (S.me && S.page === "overview") refreshSoon(); }, 60000);
function refreshSoon() {
  if (S.refreshing) { S.pending = true; return; }
  S.refreshing = true;
  setTimeout(async () => {
    try { await render(true); } finally {
      S.refreshing = false;
      if (S.pending) { S.pending = false; refreshSoon(); }
    }
  }, 150);
}

// ---------- system alerts (SafeWatch itself is faulty, e.g. a TimescaleDB job fails) ----------
// Administrators and region inspectors bound to the region may read them (api/system/routes.py); nobody
// else asks, so no one sees a refusal. No event announces them: polled, and on every (re)connection.
const SEE_SYSTEM_ALERTS = ["administrator", "region_inspector"];
const SYSTEM_POLL_MS = 10000;
const seesSystemAlerts = () => !!S.me && SEE_SYSTEM_ALERTS.includes(S.me.role)
  && S.byCode[S.me.division_code]?.level === "region";
async function refreshSystemAlerts() {
  if (!seesSystemAlerts()) { S.system = []; drawSystemAlerts(); return; }
  try { S.system = await api("/api/v1/system/alerts"); } catch { return; }   // unreachable: keep what is shown
  drawSystemAlerts();
}
function drawSystemAlerts() {
  const box = $("#system-alerts"), shown = S.system || [];
  box.classList.toggle("hidden", !shown.length);
  box.innerHTML = shown.map(a => `<div class="system-alert" data-id="${esc(a.id)}">
    <span class="chip ${esc(a.severity)}">${esc(t(a.severity))}</span>
    <strong>${esc(t("system_alert"))}</strong> <span class="msg">${esc(a.message)}</span>
    <span class="since">${esc(t("system_since"))} <time datetime="${esc(a.opened_at)}">${esc(fmtTime(a.opened_at))}</time>
    (<span data-since="${esc(a.opened_at)}"></span>)</span></div>`).join("");
  tick();
}
setInterval(() => { if (S.me) refreshSystemAlerts(); }, SYSTEM_POLL_MS);

// ---------- routing ----------
function route() {
  const [, page = "overview", ...rest] = location.hash.split("/");
  S.page = ["overview", "alerts", "equipment", "emergency", "supervision", "kpis"].includes(page) ? page : "overview";
  S.arg = rest.length ? decodeURIComponent(rest.join("/")) : null;
  document.querySelectorAll("#nav a").forEach(a => a.classList.toggle("active", a.dataset.page === S.page));
  document.querySelectorAll("main > section").forEach(s => s.classList.toggle("hidden", s.id !== "page-" + S.page));
  render();
}
window.addEventListener("hashchange", route);

async function render(refresh = false) {
  if (!S.me || !S.page) return;
  const section = $("#page-" + S.page);
  try {
    if ((refresh && S.page === "overview") || !S.divisions.length) await loadDivisions();
    await ({ overview: renderOverview, alerts: renderAlerts, equipment: renderEquipment,
             emergency: renderEmergency, supervision: renderSupervision, kpis: renderKpis })[S.page]();
    section.dataset.ready = "1";
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    section.dataset.error = err.message;
  }
  tick();
}

// ---------- overview ----------
async function renderOverview() {
  if (!S.overview) await loadDivisions();
  const rs = roots();
  const sum = k => rs.reduce((n, d) => n + d[k], 0);
  const total = sum("equipment"), online = sum("online");
  const tiles = [["equipment", total], ["online", online], ["offline", total - online],
    ["overdue", sum("inspections_overdue")], ["critical", sum("critical")], ["major", sum("major")],
    ["minor", sum("minor") + sum("warning")]];
  $("#tiles").innerHTML = tiles.map(([k, v]) => `<div class="tile" data-tile="${k}"><div class="v ${
    (k === "critical" && v) ? "bad" : ""}">${v.toLocaleString()}</div><div class="k">${esc(t(k))}${
    k === "minor" ? " / " + esc(t("warning")) : ""}</div></div>`).join("");
  renderTree();
  renderMap(S.overview);
  if (!window.__overviewRenderedAt) {
    window.__overviewRenderedAt = performance.now();
    performance.mark("overview-rendered");
  }
}
function chips(d) {
  return SEVERITIES.map(s => `<span class="chip ${d[s] ? s : "zero"}" title="${esc(t(s))}">${d[s]}</span>`).join(" ");
}
function renderTree() {
  const rows = [];
  if (!S.treeShown) {   // a region's 103 banners are too many at first sight: start with leagues folded
    S.treeShown = true;
    const leagues = Object.values(S.byCode).filter(d => d.level === "league");
    if (leagues.length > 1) leagues.forEach(d => S.collapsed.add(d.code));
  }
  const row = d => {
    const off = d.equipment - d.online;
    const toggle = d.level === "league" ? `<span class="toggle">${S.collapsed.has(d.code) ? "▸" : "▾"}</span>` : "";
    rows.push(`<tr class="${d.level}" data-code="${d.code}"><td>${toggle}${esc(dname(d))}</td>
      <td class="num">${d.equipment.toLocaleString()}</td><td class="num">${d.online.toLocaleString()}</td>
      <td class="num ${off ? "bad" : ""}">${off.toLocaleString()}</td>
      <td class="num ${d.inspections_overdue ? "bad" : ""}">${d.inspections_overdue.toLocaleString()}</td>
      <td class="alerts-cell">${chips(d)}</td></tr>`);
    if (d.level === "league" && S.collapsed.has(d.code)) return;
    d.children.sort((a, b) => a.code.localeCompare(b.code)).forEach(row);
  };
  roots().forEach(row);
  $("#tree").innerHTML = `<thead><tr><th>${esc(t("division"))}</th><th class="num">${esc(t("equipment"))}</th>
    <th class="num">${esc(t("online"))}</th><th class="num">${esc(t("offline"))}</th>
    <th class="num">${esc(t("overdue"))}</th><th>${esc(t("open_alerts"))}</th></tr></thead><tbody>${rows.join("")}</tbody>`;
}
$("#tree").addEventListener("click", e => {
  const tr = e.target.closest("tr.league");
  if (!tr) return;
  S.collapsed.has(tr.dataset.code) ? S.collapsed.delete(tr.dataset.code) : S.collapsed.add(tr.dataset.code);
  renderTree();
});

function hull(points) {   // Andrew's monotone chain; points [[x, y]]
  const p = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower = [], upper = [];
  for (const q of p) { while (lower.length >= 2 && cross(lower.at(-2), lower.at(-1), q) <= 0) lower.pop(); lower.push(q); }
  for (const q of p.reverse()) { while (upper.length >= 2 && cross(upper.at(-2), upper.at(-1), q) <= 0) upper.pop(); upper.push(q); }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}
function renderMap({ cells: raw, alerts }) {
  const box = $("#map-canvas");
  const cells = raw.map(([lat, lon, league_code, equipment, offline]) => ({ lat, lon, league_code, equipment, offline }));
  if (!cells.length) { box.innerHTML = `<p class="note">${esc(t("no_values"))}</p>`; return; }
  const lats = cells.map(c => c.lat), lons = cells.map(c => c.lon);
  const [la0, la1, lo0, lo1] = [Math.min(...lats) - 0.3, Math.max(...lats) + 0.3, Math.min(...lons) - 0.4, Math.max(...lons) + 0.4];
  const k = Math.cos(((la0 + la1) / 2) * Math.PI / 180);   // equirectangular, true scale at mid latitude
  const W = 800, H = Math.max(260, Math.min(640, W * (la1 - la0) / ((lo1 - lo0) * k)));
  const sx = W / ((lo1 - lo0) * k), sy = H / (la1 - la0), s = Math.min(sx, sy);
  const x = lon => ((lon - lo0) * k * s + (W - (lo1 - lo0) * k * s) / 2).toFixed(1);
  const y = lat => ((la1 - lat) * s + (H - (la1 - la0) * s) / 2).toFixed(1);
  const byLeague = {};
  for (const c of cells) (byLeague[c.league_code] ||= []).push(c);
  const maxN = Math.max(...cells.map(c => c.equipment));
  const parts = [];
  for (const [code, cs] of Object.entries(byLeague)) {
    const h = hull(cs.map(c => [c.lon, c.lat]));
    if (h.length >= 3) parts.push(`<polygon class="hull" points="${h.map(([lo, la]) => `${x(lo)},${y(la)}`).join(" ")}"/>`);
  }
  for (const c of cells) {
    const r = (1 + 5 * Math.sqrt(c.equipment / maxN)).toFixed(1);
    parts.push(`<circle class="cell ${c.offline === c.equipment ? "off" : ""}" cx="${x(c.lon)}" cy="${y(c.lat)}" r="${r}"><title>${c.equipment} ${esc(t("equipment"))}, ${c.offline} ${esc(t("offline"))}</title></circle>`);
  }
  for (const [code, cs] of Object.entries(byLeague)) {
    const n = cs.reduce((a, c) => a + c.equipment, 0);
    const cx = cs.reduce((a, c) => a + c.lon * c.equipment, 0) / n, cy = cs.reduce((a, c) => a + c.lat * c.equipment, 0) / n;
    const d = S.byCode[code];
    const open = d ? d.critical + d.major + d.minor + d.warning : 0;
    parts.push(`<text class="label" x="${x(cx)}" y="${(+y(cy) - 14).toFixed(1)}" text-anchor="middle">${esc(divName(code))}${open ? ` ⚠${open}` : ""}</text>`);
  }
  for (const a of [...alerts].sort((p, q) => RANK[q.severity] - RANK[p.severity])) {
    parts.push(`<a href="#/equipment/${encodeURIComponent(a.equipment_code)}"><circle class="alert" data-map-alert="${a.id}" cx="${x(a.lon)}" cy="${y(a.lat)}" r="5" fill="var(--${a.severity})"><title>${esc(t(a.severity))} · ${esc(a.equipment_code)}</title></circle></a>`);
  }
  // The map draws at most 2,000 open hazards, the most severe first; say so when there are more.
  const capped = (S.overview.map_alerts_total || 0) > alerts.length
    ? `<p class="note" data-map-capped>${esc(t("map_capped").replace("{n}", alerts.length.toLocaleString()).replace("{m}", S.overview.map_alerts_total.toLocaleString()))}</p>` : "";
  box.innerHTML = `<svg viewBox="0 0 ${W} ${H.toFixed(0)}" role="img" aria-label="${esc(t("map"))}">${parts.join("")}</svg>${capped}`;
}

// ---------- alert feed ----------
function alertFilters() {
  const f = $("#alert-filters").elements;
  return { severity: f.severity.value, state: f.state.value, division: f.division.value, open: f.open.checked,
           q: f.q.value.trim().toLowerCase(), sort: f.sort.value };
}
$("#alert-filters").addEventListener("change", () => renderAlerts());
$("#alert-filters").addEventListener("submit", e => e.preventDefault());
$("#alert-filters").addEventListener("input", e => { if (e.target.name === "q") drawAlerts(); });

// The server sorts (most severe, then unacknowledged, then newest) and pages; the page shows the totals of
// the whole list, so nothing dangerous can sit unseen behind a cap. A refresh reloads as many rows as are shown.
const FEED_PAGE = 100;
const CRITICAL_BOARD = 500;   // open criticals on the board above the feed; beyond it, the board says "N of M"
function alertQuery(f, limit) {
  const qs = new URLSearchParams({ limit: String(limit), world: "hazard", sort: f.sort === "time" ? "time" : "priority" });
  if (f.open) qs.set("open", "true");
  for (const k of ["severity", "state", "division"]) if (f[k]) qs.set(k, f[k]);
  return qs;
}
async function renderAlerts(more = false) {
  // Refreshes overlap (a live event, an action's own reload): only the latest started may draw, since
  // an older answer may predate the action just taken and would put stale rows back.
  const seq = S.alertsSeq = (S.alertsSeq || 0) + 1;
  const f = alertFilters();
  const key = JSON.stringify(f);
  if (key !== S.alertsKey) { S.alertsKey = key; S.alertsShown = FEED_PAGE; }
  const qs = alertQuery(f, more ? FEED_PAGE : Math.min(1000, S.alertsShown || FEED_PAGE));
  if (more && S.alertsCursor) qs.set("cursor", S.alertsCursor);
  // The critical board: every open critical hazard (of the chosen division), whatever the other filters say.
  const cq = new URLSearchParams({ open: "true", world: "hazard", severity: "critical", limit: String(CRITICAL_BOARD) });
  if (f.division) cq.set("division", f.division);
  const [page, next, criticals] = await Promise.all([api("/api/v1/alerts?" + qs), api("/api/v1/dashboard/escalations"),
    more ? Promise.resolve(S.criticals) : api("/api/v1/alerts?" + cq)]);
  if (seq !== S.alertsSeq) return;
  S.criticals = criticals;
  const climbs = Object.fromEntries(next.map(n => [n.alert_id, n]));
  const items = page.items.map(a => ({ ...a, ...(climbs[a.id] || {}) }));
  S.alerts = more ? S.alerts.concat(items) : items;
  S.alertsShown = Math.max(FEED_PAGE, S.alerts.length);
  S.alertsCursor = page.next_cursor;
  S.alertsPage = page;
  drawAlerts();
  const details = [...S.expanded].filter(id => S.alerts.some(a => a.id === id));
  await Promise.all(details.map(loadAlertDetail));
}
// Every open critical at a glance, above the feed, unacknowledged first: one compact chip each (where, how
// long), so a screen holds dozens of them. A chip opens its row in the feed (or the equipment).
function drawCriticalBoard() {
  const board = $("#critical-board"), c = S.criticals;
  if (!c || !c.total) { board.innerHTML = ""; board.classList.add("hidden"); return; }
  board.classList.remove("hidden");
  board.setAttribute("aria-label", t("critical_board"));
  const head = `<div class="board-head"><strong>${esc(t("critical"))} ${c.total.toLocaleString()}</strong>
    <span class="note">${esc(t("unacknowledged"))} ${c.unacknowledged.toLocaleString()}${c.items.length < c.total
      ? " · " + esc(t("showing").replace("{n}", c.items.length.toLocaleString()).replace("{m}", c.total.toLocaleString())) : ""}</span></div>`;
  board.innerHTML = head + `<div class="chips">${c.items.map(a => `<button type="button" class="crit-chip ${unacked(a.state) ? "unack" : ""}"
    data-crit="${a.id}" data-code="${esc(a.equipment_code)}" title="${esc(a.message)}">${a.rule_key === TRAPPED_RULE ? `<b>${esc(t("trapped"))}</b> ` : ""}${esc(divName(a.division_code))}
    <span class="clock" data-since="${esc(a.opened_at)}"></span></button>`).join("")}</div>`;
}
$("#critical-board").addEventListener("click", e => {
  const chip = e.target.closest("[data-crit]");
  if (!chip) return;
  const row = $(`#alert-table tr[data-alert="${chip.dataset.crit}"]`);
  if (!row) { location.hash = "#/equipment/" + encodeURIComponent(chip.dataset.code); return; }
  row.scrollIntoView({ block: "center" });
  row.querySelector("button")?.focus();
});
// Totals per severity (always all four), unacknowledged, and "showing N of M".
function totalsBar(page, shown) {
  const chipsHtml = SEVERITIES.map(s => `<span class="total-chip ${page.totals[s] ? s : "zero"}" data-total="${s}">${esc(t(s))} <b>${page.totals[s].toLocaleString()}</b></span>`).join("");
  return `${chipsHtml}<span class="note" data-unack="${page.unacknowledged}">${esc(t("unacknowledged"))} ${page.unacknowledged.toLocaleString()}</span>
    <span class="showing" data-shown="${shown}" data-total="${page.total}">${esc(t("showing").replace("{n}", shown.toLocaleString()).replace("{m}", page.total.toLocaleString()))}</span>`;
}
const canShelve = a => !a.latched && a.severity !== "critical" && ["active_unack", "active_ack", "returned_unack"].includes(a.state);
const HANDLE_ALERTS = ["region_inspector", "league_inspector", "banner_inspector", "emergency_responder", "administrator"];
function actionsFor(a) {
  const b = [];
  if (!HANDLE_ALERTS.includes(S.me.role)) return "";   // registry clerks read alerts, they do not handle them
  const btn = (act, label) => `<button type="button" data-act="${act}" data-id="${a.id}">${esc(t(label))}</button>`;
  if (a.state === "active_unack" || a.state === "returned_unack") b.push(btn("acknowledge", "ack"));
  if (a.latched && !a.active && a.state !== "normal") b.push(btn("reset", "reset"));
  if (a.state === "shelved") b.push(btn("unshelve", "unshelve"));
  b.push(`<button type="button" data-more="${a.id}">${esc(t("more"))}</button>`);
  return b.join("");
}
function nextEscalation(a) {
  return a.next_escalation_at
    ? `<span class="clock" data-until="${esc(a.next_escalation_at)}"></span> → ${esc(t("lvl_" + (a.next_level || "league")))}` : "";
}
function drawAlerts() {
  const f = alertFilters();
  let items = S.alerts;   // in the server's order
  if (f.q) items = items.filter(a => [a.equipment_code, a.message, a.rule_key, a.assignee, divName(a.division_code)]
    .some(v => String(v ?? "").toLowerCase().includes(f.q)));
  // Rows that were not there at the previous draw are highlighted for a while (not on the first draw).
  const before = S.drawnAlerts;
  S.drawnAlerts = new Set(S.alerts.map(a => a.id));
  const isNew = a => before && !before.has(a.id);
  const head = `<thead><tr><th>${esc(t("severity"))}</th><th>${esc(t("since_open"))}</th><th>${esc(t("equipment"))}</th>
    <th>${esc(t("division"))}</th><th>${esc(t("message"))}</th><th>${esc(t("state"))}</th><th>${esc(t("level"))}</th>
    <th>${esc(t("next_escalation"))}</th><th>${esc(t("actions"))}</th></tr></thead>`;
  const rows = items.map(a => `<tr class="alert-row sev-row-${a.severity} ${a.state.endsWith("unack") ? "unack" : ""} ${a.closed_at ? "closed" : ""} ${isNew(a) ? "new" : ""}" data-alert="${a.id}" data-severity="${a.severity}">
    <td class="sev sev-${a.severity}">${esc(t(a.severity))}</td>
    <td class="clock" ${a.closed_at ? "" : `data-since="${esc(a.opened_at)}"`} title="${esc(fmtTime(a.opened_at))}">${a.closed_at ? esc(fmtTime(a.opened_at)) : ""}</td>
    <td><a href="#/equipment/${encodeURIComponent(a.equipment_code)}">${esc(a.equipment_code)}</a></td>
    <td>${esc(divName(a.division_code))}</td>
    <td>${esc(a.message)}${a.chattering ? ` <span class="badge esc">${esc(t("chattering"))}</span>` : ""}</td>
    <td class="state" data-state="${a.state}">${esc(t("st_" + a.state))}${a.shelved_until && a.state === "shelved"
      ? `<div class="note">${esc(t("until"))} ${esc(fmtTime(a.shelved_until))}</div>` : ""}${a.assignee
      ? `<div class="note" data-assignee="${esc(a.assignee)}">${esc(t("assignee"))}: ${esc(a.assignee)}</div>` : ""}</td>
    <td>${esc(t("lvl_" + a.level))}</td><td>${nextEscalation(a)}</td>
    <td class="actions">${actionsFor(a)}</td></tr>
    ${S.expanded.has(a.id) ? `<tr class="detail" data-detail="${a.id}"><td colspan="9"></td></tr>` : ""}`).join("");
  // Live refreshes must not wipe what someone is typing: the open detail panels move over as they are,
  // and the field being typed in keeps the focus (moving an element drops it, and with it the next keys).
  const kept = {};
  document.querySelectorAll("#alert-table tr[data-detail] > td > .detail-grid").forEach(el => {
    kept[el.closest("tr").dataset.detail] = el;
  });
  const focus = typingIn("#alert-table .detail-grid");
  $("#alert-table").innerHTML = head + `<tbody>${rows || `<tr><td colspan="9" class="note">${esc(t("no_alerts"))}</td></tr>`}</tbody>`;
  drawCriticalBoard();
  if (S.alertsPage) {
    $("#alert-totals").innerHTML = totalsBar(S.alertsPage, S.alerts.length) + (f.q ? ` <span class="note">${esc(t("search_loaded"))}</span>` : "");
    const more = $("#alert-more");
    more.disabled = !S.alertsCursor; more.classList.toggle("hidden", !S.alertsCursor);
  }
  for (const [id, el] of Object.entries(kept)) $(`tr[data-detail="${id}"] > td`)?.append(el);
  focus?.restore();
  S.expanded.forEach(id => { if (S.details?.[id]) fillDetail(id, S.details[id]); });
  tick();
}
// The focused field inside `within`, to give the focus back (caret and selection too) after a redraw;
// `restore(el)` moves it to a replacement of that field.
function typingIn(within) {
  const el = document.activeElement;
  if (!el?.form || !el.closest(within)) return null;
  const [start, end] = [el.selectionStart, el.selectionEnd];
  return {
    el,
    restore(to = el) {
      if (!to.isConnected) return;
      to.focus();
      if (typeof start === "number" && to.setSelectionRange) to.setSelectionRange(start, end);
    },
  };
}
async function loadAlertDetail(id) {
  const seq = (S.detailSeq ||= {})[id] = (S.detailSeq[id] || 0) + 1;
  const d = await api(`/api/v1/alerts/${id}`);
  if (seq !== S.detailSeq[id]) return;   // a newer load of this alert is under way
  (S.details ||= {})[id] = d;
  fillDetail(id, d);
}
function fillDetail(id, d) {
  const cell = $(`tr[data-detail="${id}"] td`);
  if (!cell) return;
  const history = d.transitions.map(x => ({ at: x.at, who: x.actor, what: `${x.from_state ? t("st_" + x.from_state) : ""} → ${t("st_" + x.to_state)}`, why: x.reason }))
    .concat((d.comments || []).map(c => ({ at: c.at, who: c.author, what: t(c.kind === "assign" ? "assign" : "comment"), why: c.text, note: true })))
    .sort((p, q) => Date.parse(p.at) - Date.parse(q.at));
  const rows = history.map(h => `<tr ${h.note ? 'data-note="1"' : ""}><td>${esc(fmtTime(h.at))}</td><td>${esc(h.who)}</td><td>${esc(h.what)}</td><td>${esc(h.why)}</td></tr>`);
  const grid = cell.querySelector(".detail-grid");
  const formsKey = `${d.state}|${S.lang}`;
  if (grid && grid.dataset.forms === formsKey) {   // keep the forms (and what is typed in them)
    grid.querySelector(".history tbody").innerHTML = rows.join("");
    return;
  }
  const forms = [];
  if (d.state !== "normal") {
    forms.push(`<form data-form="assign" data-id="${id}"><input name="assignee" required size="14" placeholder="${esc(t("assignee"))}"
      value="${esc(d.assignee || "")}"> <button type="submit">${esc(t("assign"))}</button></form>`);
  }
  forms.push(`<form data-form="comment" data-id="${id}"><input name="text" required size="26" placeholder="${esc(t("comment"))}">
    <button type="submit">${esc(t("comment"))}</button></form>`);
  if (canShelve(d)) {
    forms.push(`<form data-form="shelve" data-id="${id}"><select name="minutes">${[15, 60, 240, 480, 1440].map(m =>
      `<option value="${m}" ${m === 60 ? "selected" : ""}>${m} ${esc(t("minutes"))}</option>`).join("")}</select>
      <input name="reason" size="16" placeholder="${esc(t("reason"))}"> <button type="submit">${esc(t("shelve"))}</button></form>`);
  }
  // The alert changed state (its forms differ): carry over whatever was typed into fields that remain.
  const field = el => `form[data-form="${el.form.dataset.form}"] [name="${el.name}"]`;
  const typed = [...(grid?.querySelectorAll("form [name]") || [])].filter(el => el.value !== el.defaultValue)
    .map(el => [field(el), el.value]);
  const focus = typingIn(`tr[data-detail="${id}"]`);
  cell.innerHTML = `<div class="detail-grid" data-forms="${esc(formsKey)}"><div class="history"><strong>${esc(t("history"))}</strong>
    <table><thead><tr><th>${esc(t("at"))}</th><th>${esc(t("actor"))}</th><th>${esc(t("from_to"))}</th><th>${esc(t("reason"))}</th></tr></thead>
    <tbody>${rows.join("")}</tbody></table></div><div class="forms">${forms.join("")}<p class="bad" data-error></p></div></div>`;
  for (const [sel, value] of typed) { const el = cell.querySelector(sel); if (el) el.value = value; }
  const again = focus && cell.querySelector(field(focus.el));
  if (again) focus.restore(again);
}
async function act(id, action, body = {}) {
  try { await post(`/api/v1/alerts/${id}/${action}`, body); return true; }
  catch (err) {
    const p = $(`tr[data-detail="${id}"] [data-error]`);
    if (p) p.textContent = t("action_failed") + ": " + err.message; else alert(t("action_failed") + ": " + err.message);
    return false;
  }
}
$("#alert-more").addEventListener("click", () => renderAlerts(true));
$("#alert-table").addEventListener("click", async e => {
  const more = e.target.closest("[data-more]");
  if (more) {
    const id = +more.dataset.more;
    S.expanded.has(id) ? S.expanded.delete(id) : S.expanded.add(id);
    drawAlerts(); if (S.expanded.has(id)) await loadAlertDetail(id);
    return;
  }
  const b = e.target.closest("[data-act]");
  if (!b) return;
  b.disabled = true;
  if (await act(b.dataset.id, b.dataset.act)) await renderAlerts(); else b.disabled = false;
});
$("#alert-table").addEventListener("submit", async e => {
  e.preventDefault();
  const form = e.target, id = form.dataset.id, kind = form.dataset.form;
  const body = Object.fromEntries(new FormData(form));
  if (kind === "shelve") body.minutes = +body.minutes;
  if (await act(id, kind === "comment" ? "comments" : kind, body)) {
    if (kind === "comment") form.reset();
    await renderAlerts(); await loadAlertDetail(+id);
  }
});

// ---------- equipment ----------
$("#eq-search").addEventListener("submit", e => {
  e.preventDefault();
  const code = e.target.elements.code.value.trim();
  if (code) location.hash = "#/equipment/" + encodeURIComponent(code); else { S.eqCursor = null; renderEquipment(); }
});
async function renderEquipment() {
  if (S.arg) { $("#eq-list").innerHTML = ""; return renderEquipmentDetail(S.arg); }
  $("#eq-detail").innerHTML = "";
  await loadEquipmentPage(false);
}
async function loadEquipmentPage(append) {
  // As with alerts, loads overlap (a live refresh, a new filter): only the latest started may draw,
  // or an older unfiltered answer could replace the filtered list.
  const seq = S.eqSeq = (S.eqSeq || 0) + 1;
  const f = $("#eq-search").elements;
  const division = f.division.value;
  const qs = new URLSearchParams({ limit: "100" });
  if (division) qs.set("division", division);
  if (f.category.value) qs.set("category", f.category.value);
  if (append && S.eqCursor) qs.set("cursor", S.eqCursor);
  const page = await api("/api/v1/equipment?" + qs);
  if (seq !== S.eqSeq) return;
  S.eqCursor = page.next_cursor;
  const today = new Date().toISOString().slice(0, 10);
  const rows = page.items.map(e => `<tr data-eq="${esc(e.code)}"><td><a href="#/equipment/${encodeURIComponent(e.code)}">${esc(e.code)}</a></td>
    <td>${esc(t("cat_" + e.category))}</td><td>${esc(divName(e.banner_code))}</td><td>${esc(e.unit_name)}</td>
    <td class="${e.online ? "good" : "bad"}">${esc(e.online ? t("online") : t("offline"))}</td>
    <td class="${e.next_inspection_on && e.next_inspection_on < today ? "bad" : ""}">${esc(e.next_inspection_on)}</td></tr>`).join("");
  const body = $("#eq-list tbody");
  if (append && body) body.insertAdjacentHTML("beforeend", rows);
  else $("#eq-list").innerHTML = `<table><thead><tr><th>${esc(t("code"))}</th><th>${esc(t("category"))}</th>
    <th>${esc(t("division"))}</th><th>${esc(t("unit"))}</th><th>${esc(t("status"))}</th><th>${esc(t("next_inspection"))}</th></tr></thead>
    <tbody>${rows}</tbody></table><p><button type="button" id="eq-more" ${S.eqCursor ? "" : "disabled"}>${esc(t("load_more"))}</button></p>`;
  const more = $("#eq-more"); if (more) more.disabled = !S.eqCursor;
  $("#eq-list").dataset.division = division;   // what the list shows (tests wait on it)
}
$("#eq-list").addEventListener("click", e => { if (e.target.id === "eq-more") loadEquipmentPage(true); });

const RANGES = ["hour", "day", "week"];
async function loadSeries(code, range) {
  // The telemetry API picks raw readings, 1-minute or 1-hour rollups from the span.
  return api(`/api/v1/telemetry/${encodeURIComponent(code)}?window=${range}`);
}
function lineChart(points, { w = 420, h = 120 } = {}) {
  // points: [[ms, avg, min, max]]: a band for min–max and a line for the mean.
  if (points.length < 2) return `<p class="note">${esc(t("no_chart"))}</p>`;
  const xs = points.map(p => p[0]), lo = Math.min(...points.map(p => p[2])), hi = Math.max(...points.map(p => p[3]));
  const x0 = Math.min(...xs), x1 = Math.max(...xs), pad = 34, span = hi - lo || 1;
  const X = v => (pad + (v - x0) / (x1 - x0 || 1) * (w - pad - 4)).toFixed(1);
  const Y = v => (4 + (hi - v) / span * (h - 20)).toFixed(1);
  const line = points.map((p, i) => `${i ? "L" : "M"}${X(p[0])},${Y(p[1])}`).join("");
  const band = points.map((p, i) => `${i ? "L" : "M"}${X(p[0])},${Y(p[3])}`).join("") +
    [...points].reverse().map(p => `L${X(p[0])},${Y(p[2])}`).join("") + "Z";
  const fmt = ms => new Date(ms).toLocaleString(S.lang === "en" ? "en-GB" : "zh-CN", { hour12: false, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  return `<svg viewBox="0 0 ${w} ${h}"><path class="band" d="${band}"/><path class="line" d="${line}"/>
    <text x="0" y="12">${+hi.toPrecision(4)}</text><text x="0" y="${h - 18}">${+lo.toPrecision(4)}</text>
    <text x="${pad}" y="${h - 3}">${esc(fmt(x0))}</text><text x="${w - 4}" y="${h - 3}" text-anchor="end">${esc(fmt(x1))}</text></svg>`;
}
function seriesToCharts(chart) {
  if (!chart.series.length) return `<p class="note">${esc(t("no_chart"))}</p>`;
  const name = key => (S.lang === "zh" && S.metricNames?.[key]) || key;
  return `<p class="note">${esc(t("resolution"))}: ${esc(chart.resolution)}</p>` + chart.series.map(s =>
    `<div class="chart" data-chart="${esc(s.metric)}"><div class="note">${esc(name(s.metric))} (${esc(s.unit)})</div>${
      lineChart(s.points.map(([time, avg, min, max]) => [Date.parse(time), avg, min, max]))}</div>`).join("");
}
async function renderEquipmentDetail(code) {
  const enc = encodeURIComponent(code);
  let e;
  try { e = await api(`/api/v1/equipment/${enc}`); }
  catch (err) { $("#eq-detail").innerHTML = `<div class="panel bad">${esc(t("not_found"))}: ${esc(code)} — ${esc(err.message)}</div>`; return; }
  const [live, hist, series] = await Promise.all([api(`/api/v1/dashboard/equipment/${enc}/live`),
    api(`/api/v1/alerts?equipment=${enc}&limit=100`), loadSeries(code, S.chartRange)]);
  const today = new Date(); today.setHours(0, 0, 0, 0);
  const dueDays = e.next_inspection_on ? Math.round((Date.parse(e.next_inspection_on) - today) / 86400e3) : null;
  const rated = Object.entries(e.rated || {}).map(([k, v]) => `${esc(k)} = ${esc(v)}`).join("<br>");
  S.metricNames = Object.fromEntries(live.values.map(v => [v.metric, v.name_zh]));
  const values = live.values.map(v => `<div class="value" data-metric="${esc(v.metric)}"><div class="m">${esc(S.lang === "zh" && v.name_zh ? v.name_zh : v.metric)}</div>
    <div class="x">${+v.value.toPrecision(5)} <small>${esc(v.unit)}</small></div><div class="note">${esc(fmtTime(v.time))}</div></div>`).join("");
  const hrows = hist.items.map(a => `<tr data-alert="${a.id}"><td class="sev sev-${a.severity}">${esc(t(a.severity))}</td>
    <td>${esc(fmtTime(a.opened_at))}</td><td>${esc(a.message)}</td><td>${esc(t("st_" + a.state))}</td>
    <td>${esc(fmtTime(a.closed_at))}</td></tr>`).join("");
  const erows = live.events.map(v => `<tr><td>${esc(fmtTime(v.time))}</td><td>${esc(v.type)}</td><td>${v.active ? "●" : "○"}</td></tr>`).join("");
  $("#eq-detail").innerHTML = `<div class="eq-grid">
    <div class="panel" id="eq-registry"><h3>${esc(t("registry"))} · ${esc(e.code)}</h3><dl class="kv">
      <dt>${esc(t("category"))}</dt><dd>${esc(t("cat_" + e.category))} (${esc(e.variety)})</dd>
      <dt>${esc(t("registration_no"))}</dt><dd>${esc(e.registration_no)}</dd>
      <dt>${esc(t("unit"))}</dt><dd>${esc(e.unit_name)}</dd>
      <dt>${esc(t("division"))}</dt><dd>${esc(divName(e.league_code))} · ${esc(divName(e.banner_code))}</dd>
      <dt>${esc(t("address"))}</dt><dd>${esc(e.address)}</dd>
      <dt>${esc(t("gateway"))}</dt><dd>${esc(e.gateway_id)} <span class="${e.online ? "good" : "bad"}">${esc(e.online ? t("online") : t("offline"))}</span></dd>
      <dt>${esc(t("status"))}</dt><dd>${esc(t("eq_" + e.status))}</dd>
      <dt>${esc(t("rated"))}</dt><dd>${rated}</dd></dl></div>
    <div class="panel" id="eq-inspections"><h3>${esc(t("inspections"))}</h3><dl class="kv">
      <dt>${esc(t("last_inspection"))}</dt><dd>${esc(e.last_inspection_on)}</dd>
      <dt>${esc(t("next_inspection"))}</dt><dd>${esc(e.next_inspection_on)}
        ${dueDays === null ? "" : dueDays < 0 ? `<span class="bad">${esc(t("overdue_by"))} ${-dueDays} ${esc(t("days"))}</span>`
                                               : `<span class="note">${esc(t("due_in"))} ${dueDays} ${esc(t("days"))}</span>`}</dd></dl>
      <h3 style="margin-top:.8rem">${esc(t("live_values"))}</h3>
      <div class="values" id="eq-values">${values || `<p class="note">${esc(t("no_values"))}</p>`}</div></div>
    <div class="panel" id="eq-charts"><h3>${esc(t("charts"))}</h3><div class="tabs">${RANGES.map(r =>
      `<button type="button" data-range="${r}" class="${r === S.chartRange ? "active" : ""}">${esc(t("last_" + r))}</button>`).join(" ")}</div>
      <div id="eq-chart-body">${seriesToCharts(series)}</div></div>
    <div class="panel" id="eq-alerts"><h3>${esc(t("alert_history"))} <span class="note showing" data-shown="${hist.items.length}" data-total="${hist.total}">${esc(
      t("showing").replace("{n}", hist.items.length.toLocaleString()).replace("{m}", hist.total.toLocaleString()))}</span></h3><table><thead><tr><th>${esc(t("severity"))}</th>
      <th>${esc(t("opened"))}</th><th>${esc(t("message"))}</th><th>${esc(t("state"))}</th><th>${esc(t("st_normal"))}</th></tr></thead>
      <tbody>${hrows || `<tr><td colspan="5" class="note">${esc(t("no_alerts"))}</td></tr>`}</tbody></table>
      ${erows ? `<h3 style="margin-top:.8rem">${esc(t("events"))}</h3><table><tbody>${erows}</tbody></table>` : ""}</div></div>`;
}
$("#eq-detail").addEventListener("click", async e => {
  const r = e.target.dataset.range;
  if (!r || !S.arg) return;
  S.chartRange = r;
  document.querySelectorAll("#eq-charts [data-range]").forEach(b => b.classList.toggle("active", b.dataset.range === r));
  $("#eq-chart-body").innerHTML = seriesToCharts(await loadSeries(S.arg, r));
});
// Live values have no event of their own: refresh them while the page is open.
setInterval(() => { if (S.me && S.page === "equipment" && S.arg) refreshSoon(); }, 15000);

// ---------- emergency console ----------
// Paged like the feed: trapped passengers, then most severe, unacknowledged, longest waiting; the totals say
// how many the whole console holds and "load more" fetches the next page.
async function renderEmergency(more = false) {
  const seq = S.emSeq = (S.emSeq || 0) + 1;
  const qs = new URLSearchParams({ limit: String(more ? FEED_PAGE : Math.min(1000, S.emShown || FEED_PAGE)) });
  if (more && S.emCursor) qs.set("cursor", S.emCursor);
  const [page, contacts] = await Promise.all([api("/api/v1/dashboard/emergency?" + qs), api("/api/v1/contacts?on_duty=true")]);
  if (seq !== S.emSeq) return;
  S.emItems = more ? (S.emItems || []).concat(page.items) : page.items;
  S.emShown = Math.max(FEED_PAGE, S.emItems.length);
  S.emCursor = page.next_cursor;
  const items = S.emItems;
  $("#emergency-totals").innerHTML = totalsBar(page, items.length) +
    ` <span class="total-chip ${page.trapped ? "critical" : "zero"}" data-total="trapped">${esc(t("trapped"))} <b>${page.trapped}</b></span>`;
  const moreBtn = $("#emergency-more");
  moreBtn.disabled = !S.emCursor; moreBtn.classList.toggle("hidden", !S.emCursor);
  const byDivision = {};
  for (const c of contacts) (byDivision[c.division_code] ||= []).push(c);
  const cards = items.map(a => {
    // Whoever is on duty where the alert stands, then up the tiers it has reached.
    const tiers = [a.division_code, a.league_code, "150000"].slice(0, { banner: 1, league: 2, region: 3 }[a.level] || 1);
    const people = tiers.flatMap(code => (byDivision[code] || []).map(c => `<div class="contact" data-contact="${c.id}">
      ${esc(divName(code))} · ${esc(t("kind_" + c.kind))} · <strong>${esc(c.name)}</strong>${(c.channels || []).map(ch =>
        ` · ${esc(ch.channel)} ${esc(ch.address)}`).join("")}</div>`)).join("");
    return `<div class="card ${a.trapped ? "trapped" : ""} ${a.severity} ${a.state.endsWith("unack") ? "unack" : ""}" data-emergency="${a.id}" data-trapped="${a.trapped ? 1 : 0}">
      <h4><span>${a.trapped ? `<span class="badge">${esc(t("trapped"))}</span>` : ""}${a.level !== "banner" ? `<span class="badge esc">${esc(t("escalated"))} · ${esc(t("lvl_" + a.level))}</span>` : ""}
        <span class="sev sev-${a.severity}">${esc(t(a.severity))}</span> <span class="note">${esc(t("st_" + a.state))}</span></span><span class="note">#${a.id}</span></h4>
      <div>${esc(a.message)}</div>
      <div class="note"><a href="#/equipment/${encodeURIComponent(a.equipment_code)}">${esc(a.equipment_code)}</a> · ${esc(S.lang === "en" && a.division_name_en ? a.division_name_en : a.division_name)} · ${esc(a.address)}</div>
      <div class="clocks"><div><div class="note">${esc(t("response_clock"))}</div><div class="big clock" data-since="${esc(a.opened_at)}"></div></div>
        ${a.arrival_deadline_at ? `<div><div class="note">${esc(t("arrival_deadline"))} · ${esc(fmtTime(a.arrival_deadline_at))}</div>
          <div class="big clock" data-arrival data-until="${esc(a.arrival_deadline_at)}"></div></div>` : ""}
        ${a.next_escalation_at ? `<div><div class="note">${esc(t("next_escalation"))} → ${esc(t("lvl_" + (a.next_level || "league")))}</div>
          <div class="big clock" data-until="${esc(a.next_escalation_at)}"></div></div>` : ""}</div>
      <div><strong>${esc(t("contacts"))}</strong>
        <div>${esc(t("unit_contact"))}: ${esc(a.unit_name)} · ${esc(t("safety_manager"))}: ${esc(a.safety_manager)} · <a href="tel:${esc(a.unit_phone)}">${esc(a.unit_phone)}</a></div>${people}</div>
      <div class="actions" style="margin-top:.4rem">${actionsFor(a).replace(/<button type="button" data-more[^>]*>.*?<\/button>/, "")}</div></div>`;
  });
  $("#emergency-cards").innerHTML = cards.join("") || `<div class="panel note">${esc(t("no_emergency"))}</div>`;
}
$("#emergency-more").addEventListener("click", () => renderEmergency(true));
$("#emergency-cards").addEventListener("click", async e => {
  const b = e.target.closest("[data-act]");
  if (!b) return;
  b.disabled = true;
  await act(b.dataset.id, b.dataset.act);
  renderEmergency();
});

// ---------- supervision worklist ----------
// Overdue inspections and registrations: paperwork with due dates, kept apart from the hazards (they never
// reach the feed or the emergency console, and escalate on their own slow policy).
const SUPERVISION_RULES = ["inspection.overdue", "registration.expired"];
$("#sup-filters").addEventListener("change", () => renderSupervision());
async function renderSupervision(more = false) {
  const seq = S.supSeq = (S.supSeq || 0) + 1;
  const f = $("#sup-filters").elements;
  const qs = new URLSearchParams({ limit: String(more ? FEED_PAGE : Math.min(1000, S.supShown || FEED_PAGE)) });
  if (f.division.value) qs.set("division", f.division.value);
  if (f.rule.value) qs.set("rule", f.rule.value);
  if (more && S.supCursor) qs.set("cursor", S.supCursor);
  const page = await api("/api/v1/alerts/supervision?" + qs);
  if (seq !== S.supSeq) return;
  S.supItems = more ? (S.supItems || []).concat(page.items) : page.items;
  S.supShown = Math.max(FEED_PAGE, S.supItems.length);
  S.supCursor = page.next_cursor;
  const rows = S.supItems.map(a => `<tr class="alert-row ${a.state.endsWith("unack") ? "unack-quiet" : ""}" data-supervision="${a.id}">
    <td class="clock">${esc(a.due_on || "")}</td>
    <td class="num ${a.days_overdue > 0 ? "bad" : ""}">${a.days_overdue ?? ""}</td>
    <td>${esc(t("rule_" + a.rule_key))}</td>
    <td><a href="#/equipment/${encodeURIComponent(a.equipment_code)}">${esc(a.equipment_code)}</a></td>
    <td>${esc(divName(a.division_code))}</td><td>${esc(a.unit_name)} ${a.unit_phone ? `<a href="tel:${esc(a.unit_phone)}">${esc(a.unit_phone)}</a>` : ""}</td>
    <td class="state" data-state="${a.state}">${esc(t("st_" + a.state))}</td><td>${esc(t("lvl_" + a.level))}</td>
    <td class="actions">${actionsFor(a).replace(/<button type="button" data-more[^>]*>.*?<\/button>/, "")}</td></tr>`).join("");
  $("#sup-table").innerHTML = `<thead><tr><th>${esc(t("due_on"))}</th><th class="num">${esc(t("days_overdue"))}</th>
    <th>${esc(t("rule"))}</th><th>${esc(t("equipment"))}</th><th>${esc(t("division"))}</th><th>${esc(t("unit"))}</th>
    <th>${esc(t("state"))}</th><th>${esc(t("level"))}</th><th>${esc(t("actions"))}</th></tr></thead>
    <tbody>${rows || `<tr><td colspan="9" class="note">${esc(t("no_supervision"))}</td></tr>`}</tbody>`;
  const shown = S.supItems.length;
  $("#sup-totals").innerHTML = `<span class="showing" data-shown="${shown}" data-total="${page.total}">${esc(
    t("showing").replace("{n}", shown.toLocaleString()).replace("{m}", page.total.toLocaleString()))}</span>`;
  const moreBtn = $("#sup-more");
  moreBtn.disabled = !S.supCursor; moreBtn.classList.toggle("hidden", !S.supCursor);
  $("#sup-divisions").innerHTML = `<thead><tr><th>${esc(t("division"))}</th><th class="num">${esc(t("open_matters"))}</th>
    <th class="num">${esc(t("unacknowledged"))}</th><th>${esc(t("oldest_due"))}</th></tr></thead><tbody>${page.by_division.map(d =>
    `<tr data-sup-division="${esc(d.division_code)}"><td>${esc(divName(d.division_code))}</td><td class="num">${d.open}</td>
     <td class="num">${d.unacknowledged}</td><td>${esc(d.oldest_due_on || "")}</td></tr>`).join("")}</tbody>`;
}
$("#sup-more").addEventListener("click", () => renderSupervision(true));
$("#sup-table").addEventListener("click", async e => {
  const b = e.target.closest("[data-act]");
  if (!b) return;
  b.disabled = true;
  await act(b.dataset.id, b.dataset.act);
  renderSupervision();
});

// ---------- KPIs ----------
$("#kpi-form").addEventListener("change", () => renderKpis());
async function renderKpis() {
  const f = $("#kpi-form").elements;
  const qs = new URLSearchParams({ hours: f.hours.value });
  if (f.division.value) qs.set("division", f.division.value);
  const k = await api("/api/v1/kpis?" + qs);
  const num = (v, digits = 0) => (v ?? 0).toLocaleString(undefined, { maximumFractionDigits: digits });
  const rows = k.divisions.map(d => `<tr data-kpi="${esc(d.division_code)}"><td>${esc(divName(d.division_code))}</td>
    <td class="num">${num(d.alerts)}</td><td class="num ${d.alerts_per_hour > 6 ? "bad" : ""}">${num(d.alerts_per_hour, 2)}</td>
    <td class="num">${num(d.peak_10min)}</td><td class="num ${d.floods ? "bad" : ""}">${num(d.floods)} <span class="note">(${num(d.flood_minutes, 1)} ${esc(t("minutes"))})</span></td>
    <td class="num ${d.chattering ? "bad" : ""}">${num(d.chattering)}</td><td class="num">${num(d.standing)}</td>
    <td class="num">${num(d.stale)}</td><td class="num">${num(d.shelved)}</td>
    <td>${d.top_rules.slice(0, 3).map(r => `${esc(r.rule_key)} <span class="note">×${r.count}</span>`).join("<br>")}</td></tr>`).join("");
  const top = k.top_rules.map(r => `<tr><td>${esc(r.rule_key)}</td><td class="num">${r.count}</td><td class="num">${r.equipment}</td></tr>`).join("");
  $("#kpi-body").innerHTML = `<p class="note">${esc(fmtTime(k.since))} – ${esc(fmtTime(k.until))} · ${esc(t("kpi_note"))}</p>
    <table id="kpi-table"><thead><tr><th>${esc(t("division"))}</th><th class="num">${esc(t("alerts"))}</th>
    <th class="num">${esc(t("alerts_per_hour"))}</th><th class="num">${esc(t("peak_10min"))}</th><th class="num">${esc(t("floods"))}</th>
    <th class="num">${esc(t("chattering"))}</th><th class="num">${esc(t("standing"))}</th><th class="num">${esc(t("stale"))}</th>
    <th class="num">${esc(t("st_shelved"))}</th><th>${esc(t("top_rules"))}</th></tr></thead>
    <tbody>${rows || `<tr><td colspan="10" class="note">${esc(t("no_alerts"))}</td></tr>`}</tbody></table>
    <h3 style="margin-top:1rem">${esc(t("top_rules"))}</h3><table><thead><tr><th>${esc(t("rule"))}</th>
    <th class="num">${esc(t("count"))}</th><th class="num">${esc(t("equipment"))}</th></tr></thead><tbody>${top}</tbody></table>`;
}

// ---------- start ----------
async function start() {
  const divisions = loadDivisions().catch(() => {});   // in parallel with who-am-I: the overview is the first page
  try { S.me = await api("/api/v1/me"); } catch { return; }
  $("#login").classList.add("hidden");
  ["#app", "#nav", "#logout", "#live"].forEach(s => $(s).classList.remove("hidden"));
  setLive(false);
  await divisions;
  if (!S.overview) await loadDivisions();
  applyI18n(); fillSelects();
  connectLive();
  refreshSystemAlerts();
  route();
}
applyI18n();
if (S.token) start(); else $("#login").classList.remove("hidden");
