#!/usr/bin/env bash
# Source me: makes sure a local PostgreSQL server runs and sets SIYU_TEST_POSTGRES_URL.
# Installs Debian's `postgresql` package when no server is installed (needs root and apt).
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  echo "installing PostgreSQL from Debian packages…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
fi
PG_VERSION=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h 2>/dev/null | grep -q "^$PG_VERSION main"; then
  pg_createcluster "$PG_VERSION" main >/dev/null
fi
if ! pg_lsclusters -h | grep -q "^$PG_VERSION main .* online"; then
  pg_ctlcluster "$PG_VERSION" main start
fi
PG_PORT=$(pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main" {print $3}')
su postgres -c "psql -q -p $PG_PORT -tc \"SELECT 1 FROM pg_roles WHERE rolname='siyu'\" | grep -q 1 || psql -q -p $PG_PORT -c \"CREATE ROLE siyu LOGIN SUPERUSER PASSWORD 'siyu'\""
su postgres -c "psql -q -p $PG_PORT -tc \"SELECT 1 FROM pg_database WHERE datname='siyu_test'\" | grep -q 1 || createdb -p $PG_PORT -O siyu siyu_test"
SIYU_TEST_POSTGRES_URL="postgresql://siyu:siyu@127.0.0.1:$PG_PORT/siyu_test"
