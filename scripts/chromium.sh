#!/usr/bin/env bash
# Install headless Chromium (and a small Chinese font) for the HTML report's browser test.
# Idempotent: a no-op when both are installed. The test renders the report in a real browser to
# prove every plotly chart draws offline; without a CJK font the screenshot shows boxes for Chinese.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
FONT_PACKAGE=fonts-wqy-microhei
packages=()
[ -x "$CHROMIUM" ] || packages+=(chromium)
dpkg-query -W -f='${Status}' "$FONT_PACKAGE" 2>/dev/null | grep -q "install ok installed" || packages+=("$FONT_PACKAGE")
if [ "${#packages[@]}" -gt 0 ]; then
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
  fi
  apt_get() { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }
  if ! apt_get install -y --no-install-recommends "${packages[@]}"; then
    apt_get update
    apt_get install -y --no-install-recommends "${packages[@]}"
  fi
fi
echo "$CHROMIUM"
