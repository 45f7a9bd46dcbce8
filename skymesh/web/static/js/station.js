// @ts-check
// A station's page: state and health, live telemetry (az/el, frequency and Doppler, camera; 1 Hz summaries from the
// server's Watch, with the last five minutes of az/el drawn by uPlot), the current job with its progress, the next
// jobs (operators may cancel), recent jobs and observations. Everything changes in place from live events.

import { api, esc, flash, fmtTime, get, qs } from "./api.js";
import { onEvent, watchTelemetry } from "./live.js";

/** @type {any} */ const UPlot = /** @type {any} */ (window).uPlot;
const PLOT_POINTS = 300;  // five minutes at 1 Hz

/** @param {Record<string, number>} v @param {string[]} names */
function first(v, names) {
  for (const n of names) if (typeof v[n] === "number") return v[n];
  return undefined;
}

/** The telemetry panel: readouts and the az/el plot, fed with summaries. @param {HTMLElement} el */
function telemetryPanel(el) {
  el.innerHTML = `<h3>Live telemetry <span class="muted" id="tm-at">waiting for telemetry…</span></h3>
    <div class="readouts">
      <div><span class="muted">Azimuth / elevation</span><b id="tm-azel">—</b></div>
      <div><span class="muted">Frequency</span><b id="tm-freq">—</b></div>
      <div><span class="muted">Doppler · SNR</span><b id="tm-doppler">—</b></div>
      <div><span class="muted">Camera</span><b id="tm-camera">—</b></div>
    </div><div id="tm-plot"></div>`;
  const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (el.querySelector(id));
  /** @type {[number[], (number|null)[], (number|null)[]]} */
  const data = [[], [], []];
  const plotEl = $("#tm-plot");
  const plot = new UPlot({
    width: Math.max(260, Math.min(900, el.clientWidth - 24)), height: 170, class: "telemetry",
    scales: { x: { time: true }, y: { range: [-10, 370] } },
    axes: [{ stroke: "#8b9bb0", grid: { stroke: "#263445" } }, { stroke: "#8b9bb0", grid: { stroke: "#263445" }, label: "deg" }],
    series: [{}, { label: "az", stroke: "#4aa3ff", width: 1.5 }, { label: "el", stroke: "#2ecc71", width: 1.5 }],
  }, data, plotEl);
  let count = 0;

  /** @param {{at: string, values: Record<string, number>}[]} samples */
  function update(samples) {
    for (const s of samples) {
      const t = Date.parse(s.at) / 1000;
      if (data[0].length && t <= data[0][data[0].length - 1]) continue;  // already drawn
      data[0].push(t);
      data[1].push(first(s.values, ["rotator.azimuth_deg", "mount.azimuth_deg"]) ?? null);
      data[2].push(first(s.values, ["rotator.elevation_deg", "mount.altitude_deg"]) ?? null);
      count++;
    }
    for (const a of data) a.splice(0, Math.max(0, a.length - PLOT_POINTS));
    plot.setData(data);
    plotEl.dataset.samples = String(count);
    const last = samples[samples.length - 1];
    if (!last) return;
    const v = last.values;
    $("#tm-at").textContent = `at ${last.at.slice(11, 19)}Z`;
    const az = first(v, ["rotator.azimuth_deg", "mount.azimuth_deg"]);
    const elv = first(v, ["rotator.elevation_deg", "mount.altitude_deg"]);
    $("#tm-azel").textContent = az === undefined && elv === undefined ? "—" : `${az?.toFixed(1) ?? "—"}° / ${elv?.toFixed(1) ?? "—"}°`;
    const f = v["radio.frequency_hz"];
    $("#tm-freq").textContent = f === undefined ? "—" : `${(f / 1e6).toFixed(4)} MHz`;
    const d = v["radio.doppler_hz"], snr = v["radio.snr_db"];
    $("#tm-doppler").textContent = d === undefined && snr === undefined ? "—"
      : `${d === undefined ? "—" : `${d >= 0 ? "+" : ""}${(d / 1e3).toFixed(2)} kHz`} · ${snr === undefined ? "—" : `${snr.toFixed(1)} dB`}`;
    const cam = v["camera.connected"], temp = v["camera.temperature_c"];
    $("#tm-camera").textContent = cam === undefined && temp === undefined ? "—"
      : `${cam === 0 ? "disconnected" : "connected"}${temp === undefined ? "" : `, ${temp.toFixed(1)} °C`}`;
  }
  return { update, destroy: () => plot.destroy() };
}

const ACTIVE = ["scheduled", "dispatched", "received", "running"];

/** @param {any} j @param {boolean} canCancel */
export function jobRow(j, canCancel) {
  const cancel = canCancel && ACTIVE.includes(j.state)
    ? `<button type="button" class="danger cancel-job" data-job="${esc(j.job_id)}">${j.state === "running" ? "Abort" : "Cancel"}</button>` : "";
  return `<tr data-job="${esc(j.job_id)}"><td>${fmtTime(j.start)}</td><td class="hide-narrow">${fmtTime(j.end)}</td>
    <td><a href="#/observations/${encodeURIComponent(j.target_id)}">${esc(j.target_id)}</a></td>
    <td><span class="badge job-state job-${esc(j.state)}">${esc(j.state)}</span></td><td class="muted hide-narrow">${esc(j.detail)}</td><td>${cancel}</td></tr>`;
}

/** Cancel buttons inside `root` (event delegation). @param {HTMLElement} root */
export function wireCancel(root) {
  root.addEventListener("click", async (ev) => {
    const btn = /** @type {HTMLElement} */ (ev.target).closest(".cancel-job");
    if (!btn) return;
    const jobId = btn.getAttribute("data-job") ?? "";
    try {
      const job = await api("POST", `/jobs/${encodeURIComponent(jobId)}/cancel`, { reason: "cancelled from the dashboard" });
      flash(job.state === "running" ? `abort sent for ${jobId}` : `job ${jobId} ${job.state}`);
      setJobState(root, jobId, job.state);
    } catch (err) {
      flash(`cannot cancel: ${/** @type {any} */ (err).message}`, true);
    }
  });
}

/** @param {ParentNode} root @param {string} jobId @param {string} state */
export function setJobState(root, jobId, state) {
  root.querySelectorAll(`[data-job="${CSS.escape(jobId)}"] .job-state`).forEach((el) => {
    el.className = `badge job-state job-${state}`;
    el.textContent = state;
  });
  if (!ACTIVE.includes(state)) root.querySelectorAll(`button[data-job="${CSS.escape(jobId)}"]`).forEach((b) => b.remove());
}

/** @type {import("./app.js").View} */
export async function render(view, [siteId], me) {
  const canCancel = me.role === "operator" || me.role === "admin";
  const site = await get(`/sites/${encodeURIComponent(siteId)}`);
  view.innerHTML = `
    <div class="panel"><h2>${esc(site.name)} <span class="muted">${esc(site.site_id)}</span>
      <span id="site-state" class="badge state-${esc(site.state)}">${esc(site.state)}</span></h2>
      <p class="muted">${esc(site.kind.replace("_", " "))} · ${site.latitude_deg.toFixed(3)}°, ${site.longitude_deg.toFixed(3)}° ·
      ${site.altitude_m} m · weather ${esc(site.weather)} · last seen ${fmtTime(site.last_seen)} · clock offset ${site.clock_offset_s.toFixed(3)} s ·
      ${site.bands.length ? "bands " + esc(site.bands.join(", ")) : ""} ${site.filters.length ? "filters " + esc(site.filters.join(", ")) : ""}</p>
      <div id="current" class="muted"></div></div>
    <div class="panel" id="telemetry"></div>
    <div class="grid2">
      <div class="panel"><h3>Jobs (last and next 24 h)</h3><table><thead><tr><th>Start</th><th class="hide-narrow">End</th><th>Target</th><th>State</th>
        <th class="hide-narrow">Detail</th><th></th></tr></thead><tbody id="jobs"></tbody></table></div>
      <div class="panel"><h3>Recent observations</h3><table><thead><tr><th>Start</th><th>Target</th><th>Flags</th></tr></thead>
        <tbody id="obs"></tbody></table></div>
    </div>`;
  const jobsEl = /** @type {HTMLElement} */ (view.querySelector("#jobs"));
  const obsEl = /** @type {HTMLElement} */ (view.querySelector("#obs"));
  const current = /** @type {HTMLElement} */ (view.querySelector("#current"));
  wireCancel(jobsEl);

  async function loadJobs() {
    const { jobs } = await get(`/jobs${qs({ site_id: siteId })}`);
    jobsEl.innerHTML = jobs.map((/** @type {any} */ j) => jobRow(j, canCancel)).join("") || `<tr><td colspan="6" class="muted">no jobs</td></tr>`;
    const run = jobs.find((/** @type {any} */ j) => j.state === "running");
    const next = jobs.find((/** @type {any} */ j) => ["scheduled", "dispatched", "received"].includes(j.state));
    if (run) {
      const t0 = Date.parse(run.start), t1 = Date.parse(run.end);
      const pct = Math.max(0, Math.min(100, (100 * (Date.now() - t0)) / Math.max(1, t1 - t0)));
      current.innerHTML = `Now: <b>${esc(run.target_id)}</b> <progress max="100" value="${pct.toFixed(0)}"></progress> ${pct.toFixed(0)}%`;
    } else {
      current.innerHTML = next ? `Next: <b>${esc(next.target_id)}</b> at ${fmtTime(next.start)}` : "Idle: nothing scheduled.";
    }
  }
  async function loadObs() {
    const { observations } = await get(`/observations${qs({ site_id: siteId, page_size: 10 })}`);
    obsEl.innerHTML = observations.map((/** @type {any} */ o) => `<tr><td><a href="#/observation/${encodeURIComponent(o.target_id)}/${encodeURIComponent(o.observation_id)}">${fmtTime(o.start)}</a></td>
      <td>${esc(o.target_id)}</td><td>${o.quality_flags.map((/** @type {string} */ f) => `<span class="badge">${esc(f)}</span>`).join(" ")}</td></tr>`).join("")
      || `<tr><td colspan="3" class="muted">none yet</td></tr>`;
  }
  await Promise.all([loadJobs(), loadObs()]);
  const telemetry = telemetryPanel(/** @type {HTMLElement} */ (view.querySelector("#telemetry")));
  watchTelemetry([siteId]);

  const off = onEvent((kind, data) => {
    if (data.site_id !== siteId && kind !== "plan") return;
    if (kind === "telemetry") {
      telemetry.update(data.samples);
    } else if (kind === "station_state") {
      const el = /** @type {HTMLElement} */ (view.querySelector("#site-state"));
      el.className = `badge state-${data.new_state}`;
      el.textContent = data.new_state;
    } else if (kind === "job") {
      if (jobsEl.querySelector(`[data-job="${CSS.escape(data.job_id)}"]`)) {
        setJobState(jobsEl, data.job_id, data.new_state);
        if (data.new_state === "running" || ACTIVE.includes(data.old_state)) loadJobs().catch(() => undefined);
      } else {
        loadJobs().catch(() => undefined);
      }
    } else if (kind === "observation") {
      loadObs().catch(() => undefined);
    } else if (kind === "plan" && data.changed_site_ids.includes(siteId)) {
      loadJobs().catch(() => undefined);
    }
  });
  return () => { off(); watchTelemetry([]); telemetry.destroy(); };
}
