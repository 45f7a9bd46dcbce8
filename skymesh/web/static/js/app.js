// @ts-check
// The dashboard shell: who is logged in, the hash router (#/map, #/site/ID, #/timeline, #/targets, #/campaigns,
// #/campaign/ID, #/observations, #/observation/TARGET/ID, #/audit, #/me), and the live event stream. Each view module
// exports `render(view, params, me)` returning a cleanup function; views update in place from live events.

import { api, esc, flash } from "./api.js";
import { onEvent, startLive, stopLive } from "./live.js";

/** @typedef {{user_id: string, role: string}} Me */
/** @typedef {(view: HTMLElement, params: string[], me: Me) => Promise<(() => void) | void>} View */

/** @type {Record<string, () => Promise<{render: View}>>} */
const ROUTES = {
  map: () => import("./map.js"),
  site: () => import("./station.js"),
  timeline: () => import("./timeline.js"),
  targets: () => import("./targets.js"),
  campaigns: () => import("./campaigns.js"),
  campaign: () => import("./campaigns.js").then((m) => ({ render: m.renderOne })),
  observations: () => import("./observations.js"),
  observation: () => import("./observations.js").then((m) => ({ render: m.renderOne })),
  audit: () => import("./audit.js"),
  me: () => import("./me.js"),
};

/** @type {Me | null} */
let me = null;
/** @type {(() => void) | void} */
let cleanup;
// Bumped on every navigation: a view whose module or data arrives after the user moved on must not draw.
let generation = 0;

const view = /** @type {HTMLElement} */ (document.getElementById("view"));

async function whoami() {
  try {
    me = await api("GET", "/me");
  } catch (err) {
    me = null;
  }
  const nav = /** @type {HTMLElement} */ (document.getElementById("nav"));
  const who = /** @type {HTMLElement} */ (document.getElementById("who"));
  const logout = /** @type {HTMLElement} */ (document.getElementById("logout"));
  nav.hidden = !me;
  logout.hidden = !me;
  who.innerHTML = me ? `<a href="#/me">${esc(me.user_id)}</a> (${esc(me.role)})` : "";
  document.querySelectorAll("[data-role=admin]").forEach((el) => ((/** @type {HTMLElement} */ (el)).hidden = me?.role !== "admin"));
  document.body.dataset.role = me?.role ?? "";
}

function showLogin() {
  stopLive();
  view.innerHTML = `
    <form class="panel login" id="login-form">
      <h2>Sign in</h2>
      <div class="form">
        <label for="username">User</label><input id="username" name="username" autocomplete="username" required>
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required>
        <span></span><button type="submit">Sign in</button>
        <p class="form-error error full"></p>
      </div>
    </form>`;
  const form = /** @type {HTMLFormElement} */ (document.getElementById("login-form"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    try {
      await api("POST", "/login", { username: data.get("username"), password: data.get("password") });
      await whoami();
      if (location.hash.startsWith("#/login") || !location.hash) location.hash = "#/map";
      else route();
    } catch (err) {
      const out = form.querySelector(".form-error");
      if (out) out.textContent = /** @type {any} */ (err).message;
    }
  });
}

async function route() {
  const mine = ++generation;
  if (typeof cleanup === "function") cleanup();
  cleanup = undefined;
  if (!me) {
    showLogin();
    return;
  }
  startLive();
  const [name, ...params] = (location.hash.replace(/^#\/?/, "") || "map").split("/").map(decodeURIComponent);
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("data-nav") === name));
  const load = ROUTES[name] ?? ROUTES.map;
  try {
    const mod = await load();
    if (mine !== generation) return;
    view.innerHTML = "";
    const done = await mod.render(view, params, me);
    if (mine !== generation) {
      if (typeof done === "function") done();  // the user moved on while this view loaded
      return;
    }
    cleanup = done;
  } catch (err) {
    if (mine !== generation) return;
    const e = /** @type {any} */ (err);
    if (e?.status === 401) {
      me = null;
      await whoami();
      showLogin();
      return;
    }
    view.innerHTML = `<p class="error">${esc(e?.message ?? e)}</p>`;
  }
}

document.getElementById("logout")?.addEventListener("click", async () => {
  try {
    await api("POST", "/logout");
  } catch (err) {
    flash(/** @type {any} */ (err).message, true);
  }
  me = null;
  await whoami();
  showLogin();
});

window.addEventListener("hashchange", route);
// The server could not resume our cursor (restart, or we were away too long): reload the view's data.
onEvent((kind) => { if (kind === "resync") route(); });
// Marks this page load: tests check that live updates happen without a reload.
/** @type {any} */ (window).skymeshLoadedAt = Date.now();
whoami().then(route);
