#!/usr/bin/env bash
# System packages the tests need and pip cannot install, from Debian's archive:
#   postgresql     the PostgreSQL audit store's tests (tests/pg_server.py starts a throwaway server)
#   redis-server   shared rate limits and the conversation vault across replicas (tests/redis_server.py)
#   chromium       the review console's browser tests (Playwright drives it through executable_path)
#   tesseract-ocr  text inside images (the `ocr` option of image parts)
# Installs only what is missing, in one apt-get run.
set -euo pipefail

missing=()
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    missing+=(postgresql)
fi
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v tesseract >/dev/null 2>&1 || missing+=(tesseract-ocr)

if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
