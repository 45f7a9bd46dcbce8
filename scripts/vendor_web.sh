#!/usr/bin/env bash
# Copies the dashboard's browser libraries from web/node_modules (npm, pinned in web/package.json) into
# skymesh/web/static/vendor/, which is committed: the gateway serves them itself (no CDN, works air-gapped) and
# neither CI nor an install needs npm. Run after changing web/package.json:  (cd web && npm ci) && scripts/vendor_web.sh
set -euo pipefail
cd "$(dirname "$0")/.."
src=web/node_modules
dst=skymesh/web/static/vendor
rm -rf "$dst"
mkdir -p "$dst/leaflet/images" "$dst/uplot" "$dst/world-atlas" "$dst/topojson-client"
cp "$src/leaflet/dist/leaflet.js" "$src/leaflet/dist/leaflet.css" "$src/leaflet/LICENSE" "$dst/leaflet/"
cp "$src/leaflet/dist/images/"*.png "$dst/leaflet/images/"
cp "$src/uplot/dist/uPlot.iife.min.js" "$src/uplot/dist/uPlot.min.css" "$src/uplot/LICENSE" "$dst/uplot/"
cp "$src/world-atlas/countries-110m.json" "$src/world-atlas/LICENSE" "$dst/world-atlas/"
cp "$src/topojson-client/dist/topojson-client.min.js" "$src/topojson-client/LICENSE" "$dst/topojson-client/"
# CesiumJS for the opt-in 3D view, only what a CesiumWidget showing CZML needs offline: the minified build, its
# workers, the Natural Earth II imagery and the Earth-orientation data it ships, the widget's own CSS. Left out: the
# unminified build, Viewer widgets (knockout, which needs 'unsafe-eval'), sky box, lens flare, icons, and the glTF
# decoders in ThirdParty (no models are drawn). About 10 MB on disk, loaded only when the 3D page is opened.
c=$src/cesium/Build/Cesium
mkdir -p "$dst/cesium/Assets/Textures" "$dst/cesium/Widgets"
cp "$c/Cesium.js" "$src/cesium/LICENSE.md" "$dst/cesium/"
# The knockout bundled in Cesium.js finds the global object with `(0,eval)("this")` when it runs, which a CSP without
# 'unsafe-eval' refuses (so Cesium.js would not load at all); globalThis is the same object. Checked: exactly one hit.
test "$(grep -o 'this||(0,eval)("this")' "$dst/cesium/Cesium.js" | wc -l)" = 1
sed -i 's/this||(0,eval)("this")/this||globalThis/' "$dst/cesium/Cesium.js"
cp -r "$c/Workers" "$dst/cesium/"
cp -r "$c/Assets/IAU2006_XYS" "$c/Assets/approximateTerrainHeights.json" "$c/Assets/Images" "$dst/cesium/Assets/"
cp -r "$c/Assets/Textures/NaturalEarthII" "$c/Assets/Textures/moonSmall.jpg" "$dst/cesium/Assets/Textures/"
cp -r "$c/Widgets/CesiumWidget" "$dst/cesium/Widgets/"
for pkg in leaflet uplot world-atlas topojson-client cesium; do
  node -e "const p=require('./$src/$pkg/package.json'); console.log(p.name + ' ' + p.version)"
done > "$dst/VERSIONS"
echo "vendored into $dst:"; cat "$dst/VERSIONS"
