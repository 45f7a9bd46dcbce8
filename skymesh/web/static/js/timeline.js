// @ts-check
// The timeline: a Gantt of every station's jobs around now (±24 h by default; zoom to ±3 h or ±6 h), coloured by
// state, with the job's target, window, state and detail on hover; below it, the latest plan's unscheduled targets
// with the scheduler's reasons. Jobs change colour in place from live events; a new plan redraws.

import { api, esc, flash, fmtTime, get, getAll } from "./api.js";
import { onEvent } from "./live.js";

/** @type {import("./app.js").View} */
export async function render(view, _params, me) {
  let spanH = 24;
  const canPlan = me.role === "operator" || me.role === "admin";
  view.innerHTML = `
    <div class="panel"><h2>Timeline</h2>
      <p>Zoom: <button type="button" data-span="3">±3 h</button> <button type="button" data-span="6">±6 h</button>
      <button type="button" data-span="24">±24 h</button>
      ${canPlan ? `<button type="button" id="replan">Replan now</button>` : ""} <span id="tl-note" class="muted"></span></p>
      <div class="gantt" id="gantt"></div></div>
    <div class="panel"><h3>Not scheduled</h3><p id="plan-note" class="muted"></p>
      <table><thead><tr><th>Target</th><th>Why</th></tr></thead><tbody id="unscheduled"></tbody></table></div>
    <div id="tip" hidden></div>`;
  const gantt = /** @type {HTMLElement} */ (view.querySelector("#gantt"));
  const tip = /** @type {HTMLElement} */ (view.querySelector("#tip"));
  /** @type {Map<string, any>} */
  const jobsById = new Map();

  async function draw() {
    const now = Date.now();
    const t0 = now - spanH * 3600e3, t1 = now + spanH * 3600e3;
    const [sites, jobs] = await Promise.all([
      getAll("/sites", "sites"),
      getAll("/jobs", "jobs", { after: new Date(t0).toISOString(), before: new Date(t1).toISOString() }),
    ]);
    jobsById.clear();
    /** @type {Map<string, any[]>} */
    const bySite = new Map(sites.map((/** @type {any} */ s) => [s.site_id, []]));
    for (const j of jobs) { jobsById.set(j.job_id, j); bySite.get(j.site_id)?.push(j); }
    const pct = (/** @type {number} */ t) => ((Math.max(t0, Math.min(t1, t)) - t0) / (t1 - t0)) * 100;
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<span>${new Date(t0 + f * (t1 - t0)).toISOString().slice(5, 16).replace("T", " ")}</span>`);
    let html = `<div class="gantt-axis">${ticks.join("")}</div>`;
    for (const site of sites) {
      const bars = (bySite.get(site.site_id) ?? []).map((j) => {
        const left = pct(Date.parse(j.start)), width = Math.max(0.2, pct(Date.parse(j.end)) - left);
        return `<div class="gantt-job job-state job-${esc(j.state)}" data-job="${esc(j.job_id)}" style="left:${left}%;width:${width}%"></div>`;
      }).join("");
      html += `<div class="gantt-row" data-site="${esc(site.site_id)}"><div class="gantt-label"><a href="#/site/${encodeURIComponent(site.site_id)}">${esc(site.name)}</a></div>
        <div class="gantt-lane">${bars}<div class="gantt-now" style="left:${pct(now)}%"></div></div></div>`;
    }
    gantt.innerHTML = html;
    const note = view.querySelector("#tl-note");
    if (note) note.textContent = `${jobs.length} jobs on ${sites.length} stations`;
  }

  async function drawPlan() {
    const plan = await get("/plan");
    const note = /** @type {HTMLElement} */ (view.querySelector("#plan-note"));
    note.textContent = plan.planned_at ? `plan of ${fmtTime(plan.planned_at)} (${plan.reason}): ${plan.assignments} jobs` : "no plan since the server started";
    const body = /** @type {HTMLElement} */ (view.querySelector("#unscheduled"));
    body.innerHTML = plan.unscheduled.map((/** @type {any} */ e) => `<tr><td><a href="#/observations/${encodeURIComponent(e.target_id)}">${esc(e.target_id)}</a></td>
      <td>${e.reasons.map((/** @type {any} */ r) => `<div><span class="badge">${esc(r.code.replaceAll("_", " "))}</span> ${esc(r.detail)}
      ${r.site_id ? `<span class="muted">at ${esc(r.site_id)}</span>` : ""}${r.winner_target_id ? ` <span class="muted">lost to ${esc(r.winner_target_id)}</span>` : ""}</div>`).join("")}</td></tr>`).join("")
      || `<tr><td colspan="2" class="muted">everything was scheduled</td></tr>`;
  }

  gantt.addEventListener("mousemove", (ev) => {
    const bar = /** @type {HTMLElement} */ (ev.target).closest(".gantt-job");
    const j = bar ? jobsById.get(bar.getAttribute("data-job") ?? "") : null;
    if (!j) { tip.hidden = true; return; }
    tip.hidden = false;
    tip.textContent = `${j.target_id} at ${j.site_id}\n${fmtTime(j.start)} → ${fmtTime(j.end)}\nstate ${j.state}${j.detail ? "\n" + j.detail : ""}`;
    tip.style.left = `${ev.clientX + 12}px`;
    tip.style.top = `${ev.clientY + 12}px`;
  });
  gantt.addEventListener("mouseleave", () => (tip.hidden = true));
  view.querySelectorAll("[data-span]").forEach((b) => b.addEventListener("click", () => { spanH = Number(b.getAttribute("data-span")); draw(); }));
  view.querySelector("#replan")?.addEventListener("click", async () => {
    try {
      const r = await api("POST", "/replan");
      flash(`replanned: ${r.assignments} jobs, ${r.unscheduled} targets not scheduled`);
    } catch (err) {
      flash(`replan failed: ${/** @type {any} */ (err).message}`, true);
    }
  });
  await Promise.all([draw(), drawPlan()]);

  return onEvent((kind, data) => {
    if (kind === "job") {
      const j = jobsById.get(data.job_id);
      if (!j) return;
      j.state = data.new_state;
      gantt.querySelectorAll(`[data-job="${CSS.escape(data.job_id)}"]`).forEach((el) => (el.className = `gantt-job job-state job-${data.new_state}`));
    } else if (kind === "plan") {
      draw().catch(() => undefined);
      drawPlan().catch(() => undefined);
    }
  });
}
