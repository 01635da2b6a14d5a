#!/usr/bin/env bash
# Install a headless Java 17 runtime for Spark (SIYU_ENGINE=pyspark and its parity tests) from Debian
# packages when `java` is missing. Idempotent: a no-op when Java is installed. pyspark itself comes from
# PyPI with the dev extra; nothing is downloaded at run time (no Maven, no spark.jars.packages).
set -euo pipefail
if command -v java >/dev/null 2>&1; then
  exit 0
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
fi
apt_get() { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }
echo "installing a Java runtime for Spark from Debian packages…" >&2
if ! apt_get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null; then
  apt_get update -qq >/dev/null
  apt_get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
fi
