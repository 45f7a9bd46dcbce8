// @ts-check
// The signed-in person: who and which role, and personal API tokens for scripts (shown once, never again).

import { api, esc, showFormError } from "./api.js";

/** @type {import("./app.js").View} */
export async function render(view, _params, me) {
  view.innerHTML = `<div class="panel"><h2>${esc(me.user_id)} <span class="badge">${esc(me.role)}</span></h2>
    <p class="muted">Scripts use a personal token: <code>curl -H "Authorization: Bearer smu_…" ${esc(location.origin)}/api/v1/sites</code>.
    It acts with your role until an admin revokes it.</p>
    <form id="token-form"><div class="form">
      <label for="token-label">Label</label><input id="token-label" name="label" maxlength="100" placeholder="what the token is for">
      <span></span><button type="submit">New API token</button><p class="form-error error full"></p></div></form>
    <p id="token-out" hidden>Your token (shown once): <code id="token-value"></code></p></div>`;
  const form = /** @type {HTMLFormElement} */ (view.querySelector("#token-form"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const t = await api("POST", "/tokens", { label: String(new FormData(form).get("label") ?? "") });
      /** @type {HTMLElement} */ (view.querySelector("#token-value")).textContent = t.token;
      /** @type {HTMLElement} */ (view.querySelector("#token-out")).hidden = false;
    } catch (err) {
      showFormError(form, err);
    }
  });
}
