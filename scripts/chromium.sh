#!/usr/bin/env bash
# Install headless Chromium for the HTML report's browser test (idempotent; a no-op when installed).
# The test renders the report in a real browser to prove every plotly chart draws offline.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ ! -x "$CHROMIUM" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
  fi
fi
echo "$CHROMIUM"
