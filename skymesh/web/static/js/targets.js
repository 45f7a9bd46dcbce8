// @ts-check
// Targets: the list (priority, kind, campaign) and a create form for a satellite (paste a TLE) or a celestial
// object (RA/Dec). Errors point at the field the gateway or server named.

import { api, esc, flash, getAll, showFormError } from "./api.js";

/** @type {import("./app.js").View} */
export async function render(view, _params, me) {
  const canEdit = me.role === "operator" || me.role === "admin";
  const [targets, campaigns] = await Promise.all([getAll("/targets", "targets"), getAll("/campaigns", "campaigns")]);
  const options = campaigns.map((/** @type {any} */ c) => `<option value="${esc(c.campaign_id)}">${esc(c.name)}</option>`).join("");
  view.innerHTML = `
    <div class="grid2">
      <div class="panel"><h2>Targets</h2><table><thead><tr><th>Target</th><th>Kind</th><th>Priority</th><th class="hide-narrow">Details</th>
        <th class="hide-narrow">Campaign</th></tr></thead><tbody id="target-rows"></tbody></table></div>
      ${canEdit ? `<form class="panel" id="target-form"><h3>New target</h3><div class="form">
        <label for="t-id">Id</label><input id="t-id" name="target_id" placeholder="lowercase-with-hyphens" required>
        <label for="t-name">Name</label><input id="t-name" name="name">
        <label for="t-kind">Kind</label><select id="t-kind" name="kind"><option value="satellite">satellite (TLE)</option><option value="celestial">celestial (RA/Dec)</option></select>
        <label for="t-prio">Priority</label><input id="t-prio" name="priority" type="number" min="1" max="10" value="5">
        <label for="t-camp">Campaign</label><select id="t-camp" name="campaign_id"><option value="">—</option>${options}</select>
        <label for="t-tle" data-kind="satellite">TLE</label><textarea id="t-tle" name="tle" rows="3" cols="70" data-kind="satellite" placeholder="name line (optional), then lines 1 and 2"></textarea>
        <label for="t-ra" data-kind="celestial">RA (deg)</label><input id="t-ra" name="ra_deg" type="number" step="any" data-kind="celestial">
        <label for="t-dec" data-kind="celestial">Dec (deg)</label><input id="t-dec" name="dec_deg" type="number" step="any" data-kind="celestial">
        <label for="t-mag" data-kind="celestial">Magnitude</label><input id="t-mag" name="magnitude" type="number" step="any" data-kind="celestial">
        <label for="t-filters" data-kind="celestial">Filters</label><input id="t-filters" name="filters" placeholder="V, R" data-kind="celestial">
        <label for="t-exp" data-kind="celestial">Exposure (s)</label><input id="t-exp" name="exposure_s" type="number" step="any" value="60" data-kind="celestial">
        <span></span><button type="submit">Create</button><p class="form-error error full"></p></div></form>` : ""}
    </div>`;
  const rows = /** @type {HTMLElement} */ (view.querySelector("#target-rows"));
  /** @param {any} t */
  const row = (t) => `<tr data-target="${esc(t.target_id)}"><td><a href="#/observations/${encodeURIComponent(t.target_id)}">${esc(t.name)}</a>
    <div class="muted">${esc(t.target_id)}</div></td><td>${esc(t.kind)}</td><td>${t.priority}</td>
    <td class="hide-narrow muted">${t.kind === "satellite" ? `NORAD ${t.norad_id}` : `RA ${t.ra_deg.toFixed(3)}° Dec ${t.dec_deg.toFixed(3)}°`}</td>
    <td class="hide-narrow">${t.campaign_id ? `<a href="#/campaign/${encodeURIComponent(t.campaign_id)}">${esc(t.campaign_id)}</a>` : ""}</td></tr>`;
  rows.innerHTML = targets.map(row).join("") || `<tr><td colspan="5" class="muted">no targets</td></tr>`;

  const form = /** @type {HTMLFormElement | null} */ (view.querySelector("#target-form"));
  if (!form) return;
  const kindSel = /** @type {HTMLSelectElement} */ (form.querySelector("[name=kind]"));
  const showKind = () => form.querySelectorAll("[data-kind]").forEach((el) => ((/** @type {HTMLElement} */ (el)).hidden = el.getAttribute("data-kind") !== kindSel.value));
  kindSel.addEventListener("change", showKind);
  showKind();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const s = (/** @type {string} */ k) => String(f.get(k) ?? "").trim();
    const num = (/** @type {string} */ k) => (s(k) === "" ? undefined : Number(s(k)));
    /** @type {Record<string, unknown>} */
    const body = { target_id: s("target_id"), name: s("name"), kind: s("kind"), priority: num("priority") ?? 5, campaign_id: s("campaign_id") };
    if (body.kind === "satellite") body.tle = s("tle");
    else Object.assign(body, { ra_deg: num("ra_deg"), dec_deg: num("dec_deg"), magnitude: num("magnitude") ?? 0,
      filters: s("filters") ? s("filters").split(/[\s,]+/) : [], exposure_s: num("exposure_s") ?? 0 });
    try {
      const t = await api("POST", "/targets", body);
      rows.insertAdjacentHTML("afterbegin", row(t));
      form.reset();
      showKind();
      showFormError(form, { message: "" });
      flash(`target ${t.target_id} created`);
    } catch (err) {
      showFormError(form, err);
    }
  });
}
