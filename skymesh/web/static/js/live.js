// @ts-check
// One EventSource per page on /api/v1/events (Server-Sent Events). The browser resumes with Last-Event-ID after a
// drop; a `resync` event (cursor too old, server restarted) makes the current view reload its data. A view that
// wants a station's 1 Hz telemetry calls `watchTelemetry([id])`: the stream is reopened from the last cursor seen
// with `telemetry=` added, and the old one is closed only once the new one is open, so no event is missed in the
// switch (one seen on both is delivered once).

/** @typedef {(kind: string, data: any) => void} Listener */

/** @type {Set<Listener>} */
const listeners = new Set();
/** @type {EventSource | null} */
let source = null;
let lastCursor = "";
/** @type {string[]} */
let telemetrySites = [];

/** Cursors of the numbered events delivered lately (telemetry shares its cursor with the event before it). */
const delivered = new Set();

const KINDS = ["station_state", "job", "observation", "plan", "telemetry", "resync"];

/** @param {EventSource | null} previous  closed once the new stream is open */
function open(previous = null) {
  const q = new URLSearchParams();
  if (lastCursor) q.set("cursor", lastCursor);
  for (const id of telemetrySites) q.append("telemetry", id);
  const query = q.toString();
  const es = new EventSource(`/api/v1/events${query ? `?${query}` : ""}`);
  source = es;
  const dot = document.getElementById("live");
  es.onopen = () => { dot?.classList.add("on"); previous?.close(); previous = null; };
  es.onerror = () => { if (source === es) dot?.classList.remove("on"); };
  for (const kind of KINDS) {
    es.addEventListener(kind, (ev) => {
      const msg = /** @type {MessageEvent} */ (ev);
      if (kind !== "telemetry" && kind !== "resync" && msg.lastEventId) {
        if (delivered.has(msg.lastEventId)) return;
        delivered.add(msg.lastEventId);
        if (delivered.size > 2000) delivered.delete(delivered.values().next().value);
      }
      if (msg.lastEventId && source === es) lastCursor = msg.lastEventId;
      if (kind === "telemetry" && source !== es) return;  // the old stream's telemetry is no longer wanted
      const data = JSON.parse(msg.data);
      for (const fn of listeners) fn(kind, data);
    });
  }
}

export function startLive() {
  if (!source) open();
}

export function stopLive() {
  source?.close();
  source = null;
  lastCursor = "";
  delivered.clear();
  document.getElementById("live")?.classList.remove("on");
}

/** Ask for these stations' telemetry summaries (an empty list: none). @param {string[]} siteIds */
export function watchTelemetry(siteIds) {
  if (siteIds.join("\n") === telemetrySites.join("\n")) return;
  telemetrySites = [...siteIds];
  if (source) open(source);
}

/** @param {Listener} fn @returns {() => void} unsubscribe */
export function onEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
