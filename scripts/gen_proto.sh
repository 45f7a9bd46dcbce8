#!/usr/bin/env bash
# Regenerates the committed Python code for proto/ into skymesh/api/ (messages, gRPC stubs, mypy stubs).
# CI runs this and fails if the result differs from what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
out=skymesh/api
find "$out" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
mapfile -t protos < <(cd proto && find skymesh -name '*.proto' | sort)
tmp=$(mktemp -d)
(cd proto && "$OLDPWD/$PY" -m grpc_tools.protoc -I. --python_out="$tmp" --grpc_python_out="$tmp" \
  --mypy_out="$tmp" --mypy_grpc_out="$tmp" --plugin=protoc-gen-mypy="$OLDPWD/.venv/bin/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$OLDPWD/.venv/bin/protoc-gen-mypy_grpc" "${protos[@]}")
cp -r "$tmp/skymesh/api/." "$out/"
rm -rf "$tmp"
# Packages for the generated tree.
find "$out" -mindepth 1 -type d -exec sh -c 'touch "$1/__init__.py"' _ {} \;
echo "generated $(find "$out" -name '*_pb2.py' | wc -l) modules into $out"
