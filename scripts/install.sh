#!/usr/bin/env bash
# Create .venv and install siyu with its test tools (idempotent; fast when already installed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.siyu-installed
# The console's browser libraries, from the npm registry (before pip: package data includes them).
if [ ! -f src/siyu/console/static/vendor/echarts.min.js ] || [ src/siyu/console/package-lock.json -nt src/siyu/console/static/vendor/echarts.min.js ]; then
  bash scripts/console-assets.sh
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  touch "$stamp"
fi
