#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on 127.0.0.1 for the store tests and
# prints its URL. Installs Debian's postgresql package if no server is found.
# Usage: eval "$(.ci/postgres.sh)"   (exports SLUICE_TEST_POSTGRES_URL)
set -euo pipefail

port="${SLUICE_TEST_POSTGRES_PORT:-55432}"
dir="${SLUICE_TEST_POSTGRES_DIR:-/tmp/sluice-pg-$port}"

find_bin() {
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [ -n "$found" ] && [ -x "$found/postgres" ] && echo "$found"
}

if [ "${1:-}" = stop ]; then
    bin="$(find_bin)"
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$dir" -m fast stop
    else
        "$bin/pg_ctl" -D "$dir" -m fast stop
    fi
    exit 0
fi

bin="$(find_bin || true)"
if [ -z "$bin" ]; then
    echo "installing postgresql from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql >&2
    bin="$(find_bin)"
fi

# PostgreSQL refuses to run as root: run it as the package's user.
run_as=()
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql postgres
    run_as=(runuser -u postgres --)
fi

if ! "${run_as[@]}" "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    "${run_as[@]}" "$bin/initdb" -D "$dir" -U sluice --auth=trust -E UTF8 --locale=C.UTF-8 >&2
    "${run_as[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
        -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=300" start >&2
fi
echo "export SLUICE_TEST_POSTGRES_URL=postgres://sluice@127.0.0.1:$port/postgres"
