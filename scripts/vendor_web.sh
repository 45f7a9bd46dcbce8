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
for pkg in leaflet uplot world-atlas topojson-client; do
  node -e "const p=require('./$src/$pkg/package.json'); console.log(p.name + ' ' + p.version)"
done > "$dst/VERSIONS"
echo "vendored into $dst:"; cat "$dst/VERSIONS"
