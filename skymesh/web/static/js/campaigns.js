// @ts-check
// Campaigns: the list, a create form, and one campaign's targets with their progress (jobs planned/succeeded).

import { api, esc, flash, fmtTime, get, getAll, showFormError } from "./api.js";

/** @type {import("./app.js").View} */
export async function render(view, _params, me) {
  const canEdit = me.role === "operator" || me.role === "admin";
  const campaigns = await getAll("/campaigns", "campaigns");
  /** @param {any} c */
  const row = (c) => `<tr><td><a href="#/campaign/${encodeURIComponent(c.campaign_id)}">${esc(c.name)}</a><div class="muted">${esc(c.campaign_id)}</div></td>
    <td>${c.priority_boost}</td><td class="hide-narrow">${fmtTime(c.start)} → ${fmtTime(c.end)}</td><td class="hide-narrow muted">${esc(c.description)}</td></tr>`;
  view.innerHTML = `<div class="grid2"><div class="panel"><h2>Campaigns</h2><table><thead><tr><th>Campaign</th><th>Boost</th>
    <th class="hide-narrow">Window</th><th class="hide-narrow">Description</th></tr></thead><tbody id="campaign-rows">${campaigns.map(row).join("")}</tbody></table></div>
    ${canEdit ? `<form class="panel" id="campaign-form"><h3>New campaign</h3><div class="form">
      <label for="c-id">Id</label><input id="c-id" name="campaign_id" required>
      <label for="c-name">Name</label><input id="c-name" name="name">
      <label for="c-boost">Priority boost</label><input id="c-boost" name="priority_boost" type="number" step="any" value="0">
      <label for="c-start">Start (UTC)</label><input id="c-start" name="start" type="datetime-local">
      <label for="c-end">End (UTC)</label><input id="c-end" name="end" type="datetime-local">
      <label for="c-desc">Description</label><textarea id="c-desc" name="description" rows="2"></textarea>
      <span></span><button type="submit">Create</button><p class="form-error error full"></p></div></form>` : ""}</div>`;
  const form = /** @type {HTMLFormElement | null} */ (view.querySelector("#campaign-form"));
  form?.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const s = (/** @type {string} */ k) => String(f.get(k) ?? "").trim();
    const when = (/** @type {string} */ k) => (s(k) ? `${s(k)}:00Z` : undefined);
    try {
      const c = await api("POST", "/campaigns", { campaign_id: s("campaign_id"), name: s("name"), description: s("description"),
        priority_boost: Number(s("priority_boost") || 0), start: when("start"), end: when("end") });
      view.querySelector("#campaign-rows")?.insertAdjacentHTML("afterbegin", row(c));
      form.reset();
      showFormError(form, { message: "" });
      flash(`campaign ${c.campaign_id} created`);
    } catch (err) {
      showFormError(form, err);
    }
  });
}

/** @type {import("./app.js").View} */
export async function renderOne(view, [campaignId]) {
  const c = await get(`/campaigns/${encodeURIComponent(campaignId)}`);
  const pct = (c.progress.fraction * 100).toFixed(0);
  view.innerHTML = `<div class="panel"><h2>${esc(c.name)} <span class="muted">${esc(c.campaign_id)}</span></h2>
    <p class="muted">${esc(c.description)} · boost ${c.priority_boost} · ${fmtTime(c.start)} → ${fmtTime(c.end)}</p>
    <p>Progress: <progress max="100" value="${pct}"></progress> ${c.progress.jobs_succeeded} of ${c.progress.jobs_planned} jobs succeeded</p>
    <table><thead><tr><th>Target</th><th>Priority</th><th>Planned</th><th>Succeeded</th><th>Failed</th></tr></thead><tbody>
    ${c.targets.map((/** @type {any} */ t) => `<tr><td><a href="#/observations/${encodeURIComponent(t.target_id)}">${esc(t.name)}</a></td><td>${t.priority}</td>
      <td>${t.progress.planned}</td><td>${t.progress.succeeded}</td><td>${t.progress.failed}</td></tr>`).join("")}</tbody></table></div>`;
}
