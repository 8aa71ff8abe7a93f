"""The dashboard page: one self-contained HTML document (vanilla JS, inline SVG, no external resources).

Open ``http://host:port/`` (or ``/#token=<read token>`` when the API needs a
token). It polls the JSON API every 5 s.
"""

DASHBOARD_HTML = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Traffic controller</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
 header{background:#1d3557;color:#fff;padding:10px 16px;font-size:18px}
 main{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:12px;padding:12px}
 section{background:#fff;border-radius:6px;padding:10px 14px;box-shadow:0 1px 2px #0002}
 h2{font-size:15px;margin:0 0 8px} table{border-collapse:collapse;width:100%} td,th{padding:3px 6px;text-align:left;border-bottom:1px solid #eee}
 .bad{color:#c1121f;font-weight:600} .ok{color:#2a9d8f;font-weight:600} .muted{color:#888}
 svg text{font-size:11px;fill:#444} .legend span{display:inline-block;margin-right:10px}
 .bar{height:14px;display:inline-block;vertical-align:middle}
</style></head><body>
<header>Traffic controller <span id="ver" class="muted"></span></header>
<main>
 <section id="flows-panel" style="grid-column:1/-1"><h2>Flows per camera (veh/h per interval)</h2><div id="flows">loading...</div></section>
 <section><h2>Node health</h2><div id="nodes">loading...</div></section>
 <section><h2>Signal plans</h2><div id="plans">loading...</div></section>
 <section><h2>Street lighting</h2><div id="lighting">loading...</div></section>
 <section><h2>Service recommendations</h2><div id="recs">loading...</div></section>
 <section style="grid-column:1/-1"><h2>Alerts</h2><div id="alerts">loading...</div></section>
</main>
<script>
"use strict";
const TOKEN = new URLSearchParams(location.hash.slice(1)).get("token");
const COLORS = ["#e63946","#457b9d","#2a9d8f","#f4a261","#6a4c93","#1d3557","#ff006e","#8ac926"];
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
async function api(path) {
  const r = await fetch(path, {headers: TOKEN ? {Authorization: "Bearer " + TOKEN} : {}});
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}
function fmtTime(t) { return t ? new Date(t * 1000).toISOString().slice(11, 19) : "-"; }
function chart(series, w, h) {
  const pts = Object.values(series).flat();
  if (!pts.length) return '<p class="muted">no data</p>';
  const x0 = Math.min(...pts.map(p => p[0])), x1 = Math.max(...pts.map(p => p[0])) || x0 + 1;
  const y1 = Math.max(10, ...pts.map(p => p[1])) * 1.1;
  const L = 44, B = 20, X = t => L + (w - L - 8) * (x1 > x0 ? (t - x0) / (x1 - x0) : 0.5), Y = v => (h - B) - (h - B - 6) * v / y1;
  let s = `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img">`;
  for (let i = 0; i <= 4; i++) { const v = y1 * i / 4, y = Y(v);
    s += `<line x1="${L}" x2="${w - 8}" y1="${y}" y2="${y}" stroke="#eee"/><text x="2" y="${y + 4}">${v.toFixed(0)}</text>`; }
  s += `<text x="${L}" y="${h - 4}">${fmtTime(x0)}</text><text x="${w - 64}" y="${h - 4}">${fmtTime(x1)}</text>`;
  let legend = "", i = 0;
  for (const [name, p] of Object.entries(series)) {
    const c = COLORS[i++ % COLORS.length];
    s += `<polyline class="series" data-name="${esc(name)}" fill="none" stroke="${c}" stroke-width="2" points="${p.map(q => X(q[0]).toFixed(1) + "," + Y(q[1]).toFixed(1)).join(" ")}"/>`;
    s += p.map(q => `<circle cx="${X(q[0]).toFixed(1)}" cy="${Y(q[1]).toFixed(1)}" r="2.5" fill="${c}"/>`).join("");
    legend += `<span style="color:${c}">&#9632; ${esc(name)}</span>`;
  }
  return s + `</svg><div class="legend">${legend}</div>`;
}
function table(head, rows) {
  return `<table><tr>${head.map(h => `<th>${esc(h)}</th>`).join("")}</tr>${rows.map(r => `<tr>${r.map(c => `<td>${c}</td>`).join("")}</tr>`).join("")}</table>`;
}
async function refresh() {
  try {
    const [st, nodes, flows, plans, light, recs, alerts] = await Promise.all(
      ["/api/status", "/api/nodes", "/api/flows?minutes=1440", "/api/plans", "/api/lighting", "/api/recommendations", "/api/alerts?limit=20"].map(api));
    document.getElementById("ver").textContent = `v${st.version} · stored ${st.ingest.stored || 0} · refused ${st.ingest.refused || 0} · rounds ${st.rounds}`;
    const cams = {};
    for (const f of flows) { (cams[f.camera_id] ??= {})[`${f.line_id} ${f.direction}`] = f.points; }
    document.getElementById("flows").innerHTML = Object.keys(cams).length ? Object.entries(cams).map(([c, s]) =>
      `<div class="camera-chart" data-camera="${esc(c)}"><b>${esc(c)}</b><br>${chart(s, 900, 200)}</div>`).join("") : '<p class="muted">no statistics yet</p>';
    document.getElementById("nodes").innerHTML = table(["camera", "state", "last statistics", "messages", "seq gaps"], nodes.map(n =>
      [esc(n.camera_id), n.silent ? `<span class="bad">silent: ${esc(n.silent)}</span>` : '<span class="ok">ok</span>', fmtTime(n.last_stats_at), n.messages, n.seq_gaps]));
    document.getElementById("plans").innerHTML = Object.values(plans).map(p =>
      `<div class="plan"><b>${esc(p.intersection)}</b>: cycle ${p.cycle_s} s${p.oversaturated ? ' <span class="bad">over-saturated</span>' : ""}<br>` +
      p.phases.map((ph, i) => `<span class="bar" style="width:${(ph.green_s * 3).toFixed(0)}px;background:${COLORS[i % 8]}"></span> ${esc(ph.id)} ${ph.green_s} s`).join("<br>") +
      `<br><span class="muted">valid until ${esc(p.valid_until)}</span></div>`).join("") || '<p class="muted">no plan yet</p>';
    document.getElementById("lighting").innerHTML = table(["segment", "level", "flow veh/h", "saved kWh"], Object.values(light).map(l =>
      [esc(l.segment), `<span class="bar" style="width:${(l.level * 80).toFixed(0)}px;background:#f4a261"></span> ${(l.level * 100).toFixed(0)} %`, l.flow_veh_h ?? "-", l.energy.saved_kwh]));
    document.getElementById("recs").innerHTML = Object.values(recs).map(r => `<b>${esc(r.area)}</b>` +
      table(["#", "option", "probability", "travel min", "occupancy"], r.options.map(o => [o.rank, esc(o.name || o.id), (o.probability * 100).toFixed(1) + " %", o.travel_time_min, o.occupancy]))).join("") || '<p class="muted">none</p>';
    document.getElementById("alerts").innerHTML = alerts.length ? table(["time", "kind", "message"], alerts.map(a => [fmtTime(a.created_at), esc(a.kind), esc(a.message)])) : '<p class="muted">no alerts</p>';
    document.body.dataset.loaded = "yes";
  } catch (e) {
    document.getElementById("flows").innerHTML = `<p class="bad">${esc(e.message)}</p>`;
    document.body.dataset.loaded = "error";
  }
}
refresh(); setInterval(refresh, 5000);
</script></body></html>
"""
