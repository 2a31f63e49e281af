#!/usr/bin/env bash
# Install what bench/copy_bench.py needs beyond the project itself:
#   * pgloader (Debian package), the baseline of `copy_bench.py --plain`;
#   * the PostgreSQL and MariaDB command-line clients (psql, mariadb), used for the
#     CSV + COPY "physical limit" baseline, when they are not there already.
# Run as root (or with sudo) from anywhere: bash bench/setup.sh
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

need=()
command -v pgloader >/dev/null 2>&1 || need+=(pgloader)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)

if [ ${#need[@]} -eq 0 ]; then
    echo "bench/setup.sh: pgloader, psql and mariadb are already installed"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Try from the current package lists first; refresh them only when that fails.
if ! $SUDO apt-get install -y --no-install-recommends "${need[@]}"; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends "${need[@]}"
fi
echo "bench/setup.sh: installed ${need[*]}"
pgloader --version
