// @ts-check
// One EventSource per page on /api/v1/events (Server-Sent Events). The browser resumes with Last-Event-ID after a
// drop; a `resync` event (cursor too old, server restarted) makes the current view reload its data.

/** @typedef {(kind: string, data: any) => void} Listener */

/** @type {Set<Listener>} */
const listeners = new Set();
/** @type {EventSource | null} */
let source = null;

const KINDS = ["station_state", "job", "observation", "plan", "resync"];

export function startLive() {
  if (source) return;
  source = new EventSource("/api/v1/events");
  const dot = document.getElementById("live");
  source.onopen = () => dot?.classList.add("on");
  source.onerror = () => dot?.classList.remove("on");
  for (const kind of KINDS) {
    source.addEventListener(kind, (ev) => {
      const data = JSON.parse(/** @type {MessageEvent} */ (ev).data);
      for (const fn of listeners) fn(kind, data);
    });
  }
}

export function stopLive() {
  source?.close();
  source = null;
  document.getElementById("live")?.classList.remove("on");
}

/** @param {Listener} fn @returns {() => void} unsubscribe */
export function onEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
