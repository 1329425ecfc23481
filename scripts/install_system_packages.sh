#!/usr/bin/env bash
# System packages the tests need and pip cannot install: a PostgreSQL server for the PostgreSQL audit
# store's tests (tests/pg_server.py starts a throwaway one). Installs only what is missing.
set -euo pipefail

have_postgres() {
    command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1
}

if ! have_postgres; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends postgresql
fi
