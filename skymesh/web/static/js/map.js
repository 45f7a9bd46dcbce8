// @ts-check
// The network map: the world outline shipped with the page (world-atlas via topojson-client, no tile server),
// stations coloured by state (a blue ring when busy), satellites with ground tracks (±1 orbit) and visibility
// footprints, and the night side shaded from the sub-solar point. Station states change in place from live events;
// satellite positions are recomputed every 30 s.

import { esc, get, getAll } from "./api.js";
import { onEvent } from "./live.js";

/* global L, topojson */
/** @type {any} */ const Lf = /** @type {any} */ (window).L;
/** @type {any} */ const topo = /** @type {any} */ (window).topojson;

// One colour per meaning, used by both the markers and the legend (so the legend cannot drift from the map):
// station states green / yellow / orange / grey, a busy station's blue ring, satellites violet.
const COLORS = { online: "#2ecc71", stale: "#f1c40f", disconnected: "#e67e22", offline: "#7f8c8d" };
const BUSY = "#4aa3ff";
const SAT = "#c77dff";
/** @type {any} */
let worldCache = null;

/** Night polygon from the sub-solar point (the terminator is where the Sun's altitude is 0).
 * @param {number} sunLat @param {number} sunLon @returns {[number, number][]} */
export function nightPolygon(sunLat, sunLon) {
  const rad = Math.PI / 180;
  const dec = Math.abs(sunLat) < 0.01 ? 0.01 : sunLat;
  /** @type {[number, number][]} */
  const pts = [];
  for (let lon = -180; lon <= 180; lon += 2) {
    const lat = Math.atan(-Math.cos((lon - sunLon) * rad) / Math.tan(dec * rad)) / rad;
    pts.push([lat, lon]);
  }
  const pole = dec > 0 ? -90 : 90;
  return [[pole, -180], ...pts, [pole, 180]];
}

/** Split a track where it crosses the antimeridian. @param {number[][]} track */
function splitTrack(track) {
  /** @type {number[][][]} */
  const parts = [[]];
  for (let i = 0; i < track.length; i++) {
    if (i > 0 && Math.abs(track[i][1] - track[i - 1][1]) > 180) parts.push([]);
    parts[parts.length - 1].push(track[i]);
  }
  return parts;
}

/** @type {import("./app.js").View} */
export async function render(view) {
  view.innerHTML = `
    <div class="grid2">
      <div><div id="map"></div>
        <p class="legend muted" id="legend">${Object.entries(COLORS).map(([state, color]) =>
          `<span data-legend="${state}"><i class="swatch" style="background:${color}"></i>${state}</span>`).join("")}
        <span data-legend="busy"><i class="swatch ring" style="border-color:${BUSY}"></i>busy (running a job)</span>
        <span data-legend="satellite"><i class="swatch small" style="background:${SAT}"></i>satellite, track and footprint</span></p></div>
      <div class="panel"><h3>Stations</h3><table><thead><tr><th>Station</th><th>Kind</th><th>State</th></tr></thead>
        <tbody id="station-rows"></tbody></table><p id="sky-note" class="muted"></p></div>
    </div>`;
  // No zoom animations: a view left mid-animation would leave Leaflet a timer on a removed map.
  const map = Lf.map("map", { worldCopyJump: false, minZoom: 1, maxZoom: 8, zoomSnap: 0.5, zoomAnimation: false,
    fadeAnimation: false, markerZoomAnimation: false }).setView([20, 0], 1.5);
  let removed = false;
  /** @type {any} */ (window).skymeshMap = map;
  map.getContainer().style.background = "#0b1d2e";
  if (!worldCache) worldCache = await (await fetch("/static/vendor/world-atlas/countries-110m.json")).json();
  const land = topo.feature(worldCache, worldCache.objects.countries);
  Lf.geoJSON(land, { style: { color: "#3b5068", weight: 0.7, fillColor: "#1d2b3a", fillOpacity: 1 }, interactive: false }).addTo(map);
  const night = Lf.polygon([], { color: "#000", weight: 0, fillOpacity: 0.35, interactive: false }).addTo(map);
  const satLayer = Lf.layerGroup().addTo(map);
  const stationLayer = Lf.layerGroup().addTo(map);

  const [sites, running] = await Promise.all([getAll("/sites", "sites"), getAll("/jobs", "jobs", { state: "running" })]);
  /** @type {Set<string>} */
  const busy = new Set(running.map((/** @type {any} */ j) => j.site_id));
  /** @type {Map<string, {marker: any, row: HTMLElement, state: string}>} */
  const stations = new Map();
  const rows = /** @type {HTMLElement} */ (view.querySelector("#station-rows"));

  /** @param {string} id */
  function paint(id) {
    const s = stations.get(id);
    if (!s) return;
    const isBusy = busy.has(id);
    s.marker.setStyle({ fillColor: COLORS[/** @type {keyof COLORS} */ (s.state)] ?? "#999", color: isBusy ? BUSY : "#0b121a", weight: isBusy ? 4 : 1.5 });
    s.marker.getElement()?.setAttribute("data-state", s.state);
    const badge = s.row.querySelector(".badge");
    if (badge) {
      badge.className = `badge state-${s.state}`;
      badge.textContent = s.state + (isBusy ? " · busy" : "");
    }
  }

  for (const site of sites) {
    const marker = Lf.circleMarker([site.latitude_deg, site.longitude_deg], { radius: 7, fillOpacity: 0.95, className: `station station-${site.site_id}` })
      .bindTooltip(`${esc(site.name)} (${esc(site.site_id)})`)
      .on("click", () => (location.hash = `#/site/${encodeURIComponent(site.site_id)}`))
      .addTo(stationLayer);
    rows.insertAdjacentHTML("beforeend", `<tr data-site="${esc(site.site_id)}"><td><a href="#/site/${encodeURIComponent(site.site_id)}">${esc(site.name)}</a></td>
      <td class="muted">${esc(site.kind.replace("_", " "))}</td><td><span class="badge"></span></td></tr>`);
    const row = /** @type {HTMLElement} */ (rows.lastElementChild);
    stations.set(site.site_id, { marker, row, state: site.state });
    paint(site.site_id);
  }
  map.fitBounds([[-58, -170], [75, 170]], { animate: false });

  async function drawSky() {
    const sky = await get("/sky");
    if (removed) return;
    night.setLatLngs(nightPolygon(sky.sun.lat_deg, sky.sun.lon_deg));
    satLayer.clearLayers();
    for (const sat of sky.satellites) {
      for (const part of splitTrack(sat.track)) Lf.polyline(part, { color: SAT, weight: 0.8, opacity: 0.22, interactive: false }).addTo(satLayer);
      Lf.circle([sat.lat_deg, sat.lon_deg], { radius: sat.footprint_radius_km * 1000, color: SAT, weight: 0.5, opacity: 0.35, fillOpacity: 0.03, interactive: false }).addTo(satLayer);
      Lf.circleMarker([sat.lat_deg, sat.lon_deg], { radius: 3.5, color: SAT, fillColor: SAT, fillOpacity: 1, className: "satellite" })
        .bindTooltip(`${esc(sat.name)} · ${sat.alt_km} km · ${sat.period_min} min`).addTo(satLayer);
    }
    const note = view.querySelector("#sky-note");
    if (note) note.textContent = `${sky.satellites.length} satellites · night shade at ${sky.at.slice(11, 16)}Z`;
  }
  await drawSky();
  const timer = setInterval(() => drawSky().catch(() => undefined), 30000);

  const off = onEvent((kind, data) => {
    if (kind === "station_state") {
      const s = stations.get(data.site_id);
      if (s) { s.state = data.new_state; paint(data.site_id); }
    } else if (kind === "job") {
      if (data.new_state === "running") busy.add(data.site_id);
      else if (["succeeded", "failed", "aborted", "cancelled", "expired", "rejected"].includes(data.new_state)) busy.delete(data.site_id);
      paint(data.site_id);
    }
  });
  return () => { removed = true; off(); clearInterval(timer); map.remove(); };
}
