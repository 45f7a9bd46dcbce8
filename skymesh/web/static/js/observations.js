// @ts-check
// Observations: the list (optionally for one target, with its light curve), and one observation's page (metadata,
// quality flags, photometry, artifacts, and the target's light curve: magnitude vs time with error bars, one
// series per filter (from GetLightCurve per filter), drawn by uPlot; CSV download).

import { esc, fmtTime, get, qs } from "./api.js";
import { onEvent } from "./live.js";

/** @type {any} */ const UPlot = /** @type {any} */ (window).uPlot;
const FILTER_COLORS = ["#4aa3ff", "#2ecc71", "#e74c3c", "#f1c40f", "#9b59b6", "#1abc9c"];

/** Draw the light curve of `targetId` into `el`: one series per filter (the filters its photometry used).
 * @param {HTMLElement} el @param {string} targetId */
export async function lightCurve(el, targetId) {
  const { observations } = await get(`/observations${qs({ target_id: targetId, page_size: 500 })}`);
  const filters = [...new Set(observations.filter((/** @type {any} */ o) => o.photometry).map((/** @type {any} */ o) => o.photometry.filter))].sort();
  const curves = await Promise.all((filters.length ? filters : [""]).map((f) => get(`/lightcurve/${encodeURIComponent(targetId)}${qs({ filter: f })}`)));
  /** @type {{filter: string, at: string, magnitude: number, magnitude_error: number}[]} */
  const points = curves.flatMap((c) => c.points.map((/** @type {any} */ p) => ({ ...p, filter: c.filter || "all" })));
  el.innerHTML = `<h3>Light curve <a class="muted" href="/api/v1/lightcurve/${encodeURIComponent(targetId)}?format=csv">CSV</a></h3>`;
  if (!points.length) { el.insertAdjacentHTML("beforeend", `<p class="muted">no photometry yet</p>`); return null; }
  const times = [...new Set(points.map((p) => Date.parse(p.at) / 1000))].sort((a, b) => a - b);
  /** @type {Map<string, {mag: (number|null)[], err: (number|null)[]}>} */
  const series = new Map();
  for (const p of points) {
    const key = p.filter;
    if (!series.has(key)) series.set(key, { mag: times.map(() => null), err: times.map(() => null) });
    const i = times.indexOf(Date.parse(p.at) / 1000);
    const s = /** @type {{mag: (number|null)[], err: (number|null)[]}} */ (series.get(key));
    s.mag[i] = p.magnitude;
    s.err[i] = p.magnitude_error;
  }
  const names = [...series.keys()];
  const errs = names.map((n) => series.get(n)?.err ?? []);
  const width = Math.max(280, Math.min(900, el.clientWidth - 20));
  const plot = new UPlot({
    width, height: 260, class: "lightcurve",
    scales: { y: { dir: -1 } },  // magnitudes: brighter is up
    axes: [{ stroke: "#8b9bb0", grid: { stroke: "#263445" } }, { stroke: "#8b9bb0", grid: { stroke: "#263445" }, label: "mag" }],
    series: [{}, ...names.map((n, i) => ({ label: n, stroke: FILTER_COLORS[i % FILTER_COLORS.length], width: 0,
      points: { show: true, size: 6, fill: FILTER_COLORS[i % FILTER_COLORS.length] } }))],
    hooks: { draw: [(/** @type {any} */ u) => {  // error bars
      const ctx = u.ctx;
      ctx.save();
      names.forEach((_n, si) => {
        ctx.strokeStyle = FILTER_COLORS[si % FILTER_COLORS.length];
        u.data[si + 1].forEach((/** @type {number|null} */ m, i) => {
          const e = errs[si][i];
          if (m === null || e === null || e === undefined) return;
          const x = u.valToPos(u.data[0][i], "x", true);
          ctx.beginPath();
          ctx.moveTo(x, u.valToPos(m - e, "y", true));
          ctx.lineTo(x, u.valToPos(m + e, "y", true));
          ctx.stroke();
        });
      });
      ctx.restore();
    }] },
  }, [times, ...names.map((n) => series.get(n)?.mag ?? [])], el);
  el.dataset.points = String(points.length);
  el.dataset.filters = names.join(",");
  return plot;
}

/** @param {any} o */
function obsRow(o) {
  return `<tr><td><a href="#/observation/${encodeURIComponent(o.target_id)}/${encodeURIComponent(o.observation_id)}">${fmtTime(o.start)}</a></td>
    <td><a href="#/site/${encodeURIComponent(o.site_id)}">${esc(o.site_id)}</a></td><td>${esc(o.target_id)}</td>
    <td>${o.photometry ? `${o.photometry.magnitude.toFixed(3)} ± ${o.photometry.magnitude_error.toFixed(3)} ${esc(o.photometry.filter)}` : "—"}</td>
    <td>${o.quality_flags.map((/** @type {string} */ f) => `<span class="badge">${esc(f)}</span>`).join(" ")}</td></tr>`;
}

/** @type {import("./app.js").View} */
export async function render(view, [targetId]) {
  view.innerHTML = `${targetId ? `<div class="panel" id="curve"></div>` : ""}<div class="panel"><h2>Observations${targetId ? ` of ${esc(targetId)}` : ""}</h2>
    <table><thead><tr><th>Start</th><th>Station</th><th>Target</th><th>Photometry</th><th>Flags</th></tr></thead><tbody id="obs-rows"></tbody></table>
    <button type="button" id="obs-more" hidden>More</button></div>`;
  const rows = /** @type {HTMLElement} */ (view.querySelector("#obs-rows"));
  const more = /** @type {HTMLButtonElement} */ (view.querySelector("#obs-more"));
  let token = "";
  async function load() {
    const page = await get(`/observations${qs({ target_id: targetId, page_size: 50, page_token: token })}`);
    rows.insertAdjacentHTML("beforeend", page.observations.map(obsRow).join(""));
    token = page.next_page_token;
    more.hidden = !token;
  }
  more.addEventListener("click", load);
  await load();
  const curveEl = /** @type {HTMLElement | null} */ (view.querySelector("#curve"));
  if (curveEl && targetId) await lightCurve(curveEl, targetId);
  return onEvent((kind, data) => {
    if (kind === "observation" && (!targetId || data.target_id === targetId)) {
      token = "";
      rows.innerHTML = "";
      load().catch(() => undefined);
      if (curveEl && targetId) lightCurve(curveEl, targetId).catch(() => undefined);
    }
  });
}

/** @type {import("./app.js").View} */
export async function renderOne(view, [targetId, observationId]) {
  const { observations } = await get(`/observations${qs({ target_id: targetId, page_size: 500 })}`);
  const o = observations.find((/** @type {any} */ x) => x.observation_id === observationId);
  if (!o) { view.innerHTML = `<p class="error">no observation ${esc(observationId)} of ${esc(targetId)}</p>`; return; }
  const headers = Object.entries(o.headers).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join("");
  view.innerHTML = `<div class="grid2"><div class="panel" id="curve"></div>
    <div class="panel"><h2>Observation</h2><table class="meta">
      <tr><th>Id</th><td>${esc(o.observation_id)}</td></tr>
      <tr><th>Target</th><td><a href="#/observations/${encodeURIComponent(o.target_id)}">${esc(o.target_id)}</a></td></tr>
      <tr><th>Station</th><td><a href="#/site/${encodeURIComponent(o.site_id)}">${esc(o.site_id)}</a></td></tr>
      <tr><th>Window</th><td>${fmtTime(o.start)} → ${fmtTime(o.end)} (${o.exposure_s} s)</td></tr>
      <tr><th>Airmass / seeing</th><td>${o.airmass || "—"} / ${o.seeing_arcsec ? o.seeing_arcsec + '"' : "—"}</td></tr>
      <tr><th>Photometry</th><td>${o.photometry ? `${o.photometry.magnitude.toFixed(3)} ± ${o.photometry.magnitude_error.toFixed(3)} (${esc(o.photometry.filter)}, ${o.photometry.comparison_stars} comparison stars)` : "—"}</td></tr>
      <tr><th>Astrometry</th><td>${o.astrometry ? `RA ${o.astrometry.ra_deg.toFixed(5)}° Dec ${o.astrometry.dec_deg.toFixed(5)}° (rms ${o.astrometry.rms_arcsec}")` : "—"}</td></tr>
      <tr><th>Quality flags</th><td id="flags">${o.quality_flags.map((/** @type {string} */ f) => `<span class="badge">${esc(f)}</span>`).join(" ") || "none"}</td></tr>
      ${reductionRows(o.reduction)}
      <tr><th>Artifacts</th><td id="artifacts">${o.artifacts.map((/** @type {any} */ a) => artifactItem(o, a, o.reduction?.waterfall_artifact_id)).join("") || "none"}</td></tr>
      <tr><th>Received</th><td>${fmtTime(o.received_at)}</td></tr></table>
      ${headers ? `<h3>Headers</h3><table>${headers}</table>` : ""}</div></div>
    ${o.reduction?.waterfall_url ? `<div class="panel" id="pass-waterfall"><h3>Pass waterfall
      <a class="muted" href="${esc(o.reduction.waterfall_url)}" download>PNG</a></h3>
      <img class="waterfall" id="waterfall-img" alt="waterfall of the pass" src="${esc(o.reduction.waterfall_url)}"></div>` : ""}`;
  // A waterfall exists once the server has reduced the recording: show it, or drop the link if there is none yet.
  view.querySelectorAll("img.waterfall").forEach((img) => img.addEventListener("error", () => {
    img.closest(".artifact")?.querySelector(".waterfall-link")?.remove();
    img.remove();
  }));
  await lightCurve(/** @type {HTMLElement} */ (view.querySelector("#curve")), targetId);
}

const IQ_KINDS = ["sigmf"];
const REDUCTION_CLASS = { good: "ok", bad: "warn", error: "error" };

/** The server's reduction: state, why uploads could not be reduced (its own words), the measurements.
 * @param {any} r */
function reductionRows(r) {
  if (!r) return `<tr><th>Reduction</th><td id="reduction-state" class="muted">not reduced</td></tr>`;
  const cls = /** @type {Record<string, string>} */ (REDUCTION_CLASS)[r.state] ?? "";
  const pass = r.pass_quality_score || r.peak_snr_db
    ? `pass quality ${Number(r.pass_quality_score).toFixed(2)}, Doppler ${Number(r.doppler_offset_hz).toFixed(1)} Hz, peak SNR ${Number(r.peak_snr_db).toFixed(1)} dB`
    : "";
  const frame = r.magnitude ? `${Number(r.magnitude).toFixed(3)} ± ${Number(r.magnitude_error).toFixed(3)} ${esc(r.filter)}` : "";
  return `<tr><th>Reduction</th><td><span id="reduction-state" class="badge ${cls}">${esc(r.state)}</span>
      ${esc([frame, pass].filter(Boolean).join(" · "))}
      ${r.quality_flags.map((/** @type {string} */ f) => `<span class="badge">${esc(f)}</span>`).join(" ")}</td></tr>
    ${r.error ? `<tr><th>Reduction error</th><td id="reduction-error" class="error">${esc(r.error)}</td></tr>` : ""}`;
}

/** One artifact: a download link (through the gateway, from the server), and for an IQ recording its waterfall
 * (inline unless it is the pass waterfall, which has its own panel).
 * @param {any} o @param {any} a @param {string | null | undefined} shown */
function artifactItem(o, a, shown) {
  const url = `/api/v1/observations/${encodeURIComponent(o.observation_id)}/artifacts/${encodeURIComponent(a.artifact_id)}`;
  const iq = IQ_KINDS.includes(String(a.kind).toLowerCase());
  const size = a.size_bytes >= 1048576 ? `${(a.size_bytes / 1048576).toFixed(1)} MiB` : `${(a.size_bytes / 1024).toFixed(1)} KiB`;
  return `<div class="artifact" data-artifact="${esc(a.artifact_id)}"><a class="download" href="${url}" download>${esc(a.kind || "file")} · ${size}</a>
    <span class="muted">${esc(String(a.sha256).slice(0, 12))}</span>
    ${iq ? ` · <a class="waterfall-link" href="${url}?product=waterfall" download>waterfall PNG</a>
      ${a.artifact_id === shown ? "" : `<br><img class="waterfall" alt="waterfall of ${esc(a.artifact_id)}" src="${url}?product=waterfall">`}` : ""}</div>`;
}
