// @ts-check
// The gateway's JSON API from the page: same-origin fetch with the session cookie, the CSRF header on changes, and
// errors as {status, code, message, field} so forms can point at the field the server named.

/** @typedef {{status: number, code: string, message: string, field: string | null}} ApiError */

/** @returns {string} */
function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)skymesh_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

/**
 * @param {string} method
 * @param {string} path  below /api/v1
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { accept: "application/json" };
  if (method !== "GET") headers["x-csrf-token"] = csrfToken();
  if (body !== undefined) headers["content-type"] = "application/json";
  const resp = await fetch(`/api/v1${path}`, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = resp.headers.get("content-type")?.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    /** @type {ApiError} */
    const err = { status: resp.status, code: data?.code ?? "ERROR", message: data?.message ?? String(data), field: data?.field ?? null };
    throw err;
  }
  return data;
}

export const get = (/** @type {string} */ path) => api("GET", path);
export const post = (/** @type {string} */ path, /** @type {unknown} */ body) => api("POST", path, body);

/** @param {Record<string, string | number | undefined | null>} params */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** Every item of a list endpoint: pages of 1000 followed through next_page_token (the server's keyset tokens, so
 * nothing is repeated or skipped while the list changes), at most `maxPages` of them.
 * @param {string} path  below /api/v1, without a query
 * @param {string} field  the list's name in the answer ("sites", "jobs"...)
 * @param {Record<string, string | number | undefined | null>} [params]
 * @param {number} [maxPages]
 * @returns {Promise<any[]>} */
export async function getAll(path, field, params = {}, maxPages = 50) {
  /** @type {any[]} */
  const items = [];
  let token = "";
  for (let i = 0; i < maxPages; i++) {
    const page = await get(`${path}${qs({ ...params, page_size: 1000, page_token: token })}`);
    items.push(...page[field]);
    token = page.next_page_token;
    if (!token) break;
  }
  return items;
}

/** Escape text for innerHTML. @param {unknown} v */
export function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);
}

/** @param {string | null | undefined} iso */
export function fmtTime(iso) {
  if (!iso) return "—";
  return new Date(iso).toISOString().replace("T", " ").slice(0, 16) + "Z";
}

/** @param {string} text @param {boolean} [isError] */
export function flash(text, isError = false) {
  const box = document.getElementById("flash");
  if (!box) return;
  const div = document.createElement("div");
  div.textContent = text;
  if (isError) div.className = "error";
  box.appendChild(div);
  setTimeout(() => div.remove(), 6000);
}

/** Show an API error on a form: mark the named field, and say what was wrong.
 * @param {HTMLFormElement} form @param {any} err */
export function showFormError(form, err) {
  form.querySelectorAll(".field-error").forEach((el) => el.classList.remove("field-error"));
  const out = form.querySelector(".form-error");
  const field = err?.field ? String(err.field).split(".")[0] : "";
  const input = field ? form.querySelector(`[name="${CSS.escape(field)}"]`) : null;
  if (input) input.classList.add("field-error");
  const text = `${err?.field ? err.field + ": " : ""}${err?.message ?? err}`;
  if (out) out.textContent = text;
}
