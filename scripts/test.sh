#!/usr/bin/env bash
# Run the whole test suite from nothing: Python deps in .venv, PostgreSQL and headless Chromium
# (for the HTML report's browser test) from Debian packages.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh

# A real PostgreSQL for the store tests (installed from Debian packages when missing).
if [ -z "${SIYU_TEST_POSTGRES_URL:-}" ]; then
  source scripts/postgres.sh
  export SIYU_TEST_POSTGRES_URL
fi

# A real browser draws the HTML report in the tests.
bash scripts/chromium.sh >/dev/null

# Java for Spark: the parity tests run siyu's compute on PySpark in local mode (docs/engines.md).
bash scripts/java.sh

# Test files run in parallel (pytest-xdist), whole files per worker so module-scoped fixtures are
# built once. Three workers on two cores: many tests wait on PostgreSQL, fsync or a subprocess.
exec .venv/bin/python -m pytest -n "${SIYU_TEST_WORKERS:-3}" --dist loadfile "$@"
