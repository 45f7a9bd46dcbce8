#!/usr/bin/env bash
# `make observe`: the demo (server, scheduler, simulated stations) plus a real Prometheus scraping every process with
# SkyMesh's recording and alert rules loaded; prints Prometheus's URL. Ctrl-C stops everything.
# Needs the Debian 'prometheus' package (apt-get install prometheus). Extra arguments go to `skymesh demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v prometheus >/dev/null || { echo "observe: no 'prometheus' binary; apt-get install prometheus" >&2; exit 1; }
PY="${VENV:-.venv}/bin/python"
exec "$PY" -m skymesh demo --observe --data-dir var/observe --max-duration-s "${OBSERVE_DURATION_S:-3600}" \
  --linger-s "${OBSERVE_DURATION_S:-3600}" --prometheus-port "${PROMETHEUS_PORT:-9090}" "$@"
