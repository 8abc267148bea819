#!/usr/bin/env bash
# The reference deployment (deploy/) without a container engine: PostgreSQL,
# three `sluice serve` replicas and Debian's nginx with deploy/'s proxy
# settings, all on 127.0.0.1, checked by tests/python/replicas.py (issue 26).
# Usage: .ci/replicas.sh BIN [--bench]
# Needs SLUICE_TEST_POSTGRES_URL (from .ci/postgres.sh); installs nginx from
# Debian's packages when it is missing. Bounded: the driver's alarm ends it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "$1")"
shift

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "installing nginx from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends nginx-light >&2 \
        || apt-get install -y --no-install-recommends nginx >&2
fi
export NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

: "${SLUICE_TEST_POSTGRES_URL:?run .ci/postgres.sh first}"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
export PSQL="$pg_bin/psql"
# The server .ci/postgres.sh started (for the benchmark's CPU accounting).
port="${SLUICE_TEST_POSTGRES_URL##*:}"
port="${port%%/*}"
export PG_DATA_DIR="${SLUICE_TEST_POSTGRES_DIR:-/tmp/sluice-pg-$port}"

# A fresh database: the replicas migrate it at once, racing.
db=sluice_replicas
"$PSQL" "$SLUICE_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $db"
"$PSQL" "$SLUICE_TEST_POSTGRES_URL" -qc "CREATE DATABASE $db"
url="${SLUICE_TEST_POSTGRES_URL%/*}/$db"

exec timeout 480 python3 tests/python/replicas.py "$bin" "$url" "$@"
