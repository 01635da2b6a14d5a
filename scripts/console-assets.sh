#!/usr/bin/env bash
# Install the console's browser libraries (htmx, Alpine.js, Apache ECharts) from the npm registry with
# the lock file, and copy their dist files to where `siyu serve` serves them (/console/static/vendor).
# Nothing is ever loaded from a CDN (docs/console.md).
set -euo pipefail
cd "$(dirname "$0")/../src/siyu/console"
npm ci --no-audit --no-fund --silent
mkdir -p static/vendor
cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
cp node_modules/alpinejs/dist/cdn.min.js static/vendor/alpine.min.js
cp node_modules/echarts/dist/echarts.min.js static/vendor/echarts.min.js
