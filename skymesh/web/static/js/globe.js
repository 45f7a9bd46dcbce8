// @ts-check
// The opt-in 3D view (TALOS), a page of its own at /globe: the gateway's CZML document (/api/v1/czml: satellites as
// sampled SGP4 positions with their paths, stations coloured by state) drawn by CesiumJS, vendored from npm and served
// by the gateway. No Ion token, no network: the globe is the Natural Earth II imagery Cesium ships, the terrain the
// plain ellipsoid. A CesiumWidget rather than a Viewer (whose widgets need knockout, and so 'unsafe-eval'). Its own
// document because Cesium compiles WebAssembly ('wasm-unsafe-eval' in this page's CSP only): the dashboard's pages
// keep the strict policy, and never load Cesium's 6 MB.

import { esc, qs } from "./api.js";

const Cesium = /** @type {any} */ (window).Cesium;
const note = /** @type {HTMLElement} */ (document.getElementById("globe-note"));
const container = /** @type {HTMLElement} */ (document.getElementById("globe"));
const hoursInput = /** @type {HTMLInputElement} */ (document.getElementById("globe-hours"));

/** @returns {any} the widget, or null when this browser cannot draw WebGL */
function createWidget() {
  try {
    return new Cesium.CesiumWidget(container, {
      baseLayer: Cesium.ImageryLayer.fromProviderAsync(
        Cesium.TileMapServiceImageryProvider.fromUrl(Cesium.buildModuleUrl("Assets/Textures/NaturalEarthII")),
      ),
      terrainProvider: new Cesium.EllipsoidTerrainProvider(),
      skyBox: false,
      shouldAnimate: true,
    });
  } catch (err) {
    container.innerHTML = `<p class="error">This browser cannot draw the 3D view (WebGL): ${esc(/** @type {any} */ (err)?.message ?? err)}</p>`;
    return null;
  }
}

const widget = createWidget();
/** @type {any} */ (window).skymeshGlobe = widget;
/** @type {any} */
let source = null;

async function load() {
  const hours = Number(hoursInput.value) || 3;
  const resp = await fetch(`/api/v1/czml${qs({ hours })}`, { credentials: "same-origin", headers: { accept: "application/json" } });
  if (resp.status === 401) {
    note.innerHTML = `<a href="/">sign in</a> first`;
    return;
  }
  if (!resp.ok) throw new Error((await resp.json()).message ?? resp.statusText);
  const next = await Cesium.CzmlDataSource.load(await resp.json());
  if (source) widget.dataSources.remove(source, true);
  source = next;
  await widget.dataSources.add(source);
  const ids = source.entities.values.map((/** @type {any} */ e) => String(e.id));
  const sats = ids.filter((id) => id.startsWith("satellite/")).length;
  const stations = ids.filter((id) => id.startsWith("station/")).length;
  container.dataset.entities = String(ids.length);
  note.textContent = `${stations} stations · ${sats} satellites · next ${hours} h at 60× time`;
}

if (widget) {
  document.getElementById("globe-form")?.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load().catch((err) => (note.textContent = err.message));
  });
  load().catch((err) => (note.textContent = err.message));
}
