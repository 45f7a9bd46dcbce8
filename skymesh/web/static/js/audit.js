// @ts-check
// The audit log (admins): who changed what and when, newest first, with paging.
import { esc, fmtTime, get, qs } from "./api.js";

/** @type {import("./app.js").View} */
export async function render(view) {
  view.innerHTML = `<div class="panel"><h2>Audit log</h2><table><thead><tr><th>When</th><th>Who</th><th>What</th>
    <th>Subject</th><th class="hide-narrow">Detail</th></tr></thead><tbody id="audit-rows"></tbody></table>
    <button id="audit-more" type="button" hidden>Older</button></div>`;
  const rows = /** @type {HTMLElement} */ (view.querySelector("#audit-rows"));
  const more = /** @type {HTMLButtonElement} */ (view.querySelector("#audit-more"));
  let token = "";
  async function load() {
    const page = await get(`/audit${qs({ page_size: 50, page_token: token })}`);
    for (const e of page.entries) {
      rows.insertAdjacentHTML("beforeend", `<tr><td>${fmtTime(e.at)}</td><td>${esc(e.actor)}</td><td>${esc(e.action)}</td>
        <td>${esc(e.subject)}</td><td class="hide-narrow muted">${esc(JSON.stringify(e.detail))}</td></tr>`);
    }
    token = page.next_page_token;
    more.hidden = !token;
  }
  more.addEventListener("click", load);
  await load();
}
