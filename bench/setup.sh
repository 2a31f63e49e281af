#!/usr/bin/env bash
# Install what bench/copy_bench.py needs beyond the project itself:
#   * pgloader (Debian package), the baseline of `copy_bench.py --plain`;
#   * the PostgreSQL and MariaDB command-line clients (psql, mariadb), used for the
#     CSV + COPY "physical limit" baseline, when they are not there already;
#   * a separate virtual environment bench/.venv-dlt with dlt, for `copy_bench.py --plain --dlt`
#     (bench/dlt_peer.py): dlt's sql_database source with the ConnectorX backend and pyarrow,
#     its PostgreSQL destination, and the ADBC PostgreSQL driver, which dlt uses to load parquet
#     files into PostgreSQL. Pinned versions; dlt is no dependency of Ferry itself.
# Run as root (or with sudo, for apt) from anywhere: bash bench/setup.sh
# Idempotent: what is already there (at the pinned versions) is left alone.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# --- Debian packages ---
need=()
command -v pgloader >/dev/null 2>&1 || need+=(pgloader)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)

if [ ${#need[@]} -eq 0 ]; then
    echo "bench/setup.sh: pgloader, psql and mariadb are already installed"
else
    export DEBIAN_FRONTEND=noninteractive
    # Try from the current package lists first; refresh them only when that fails.
    if ! $SUDO apt-get install -y --no-install-recommends "${need[@]}"; then
        $SUDO apt-get update
        $SUDO apt-get install -y --no-install-recommends "${need[@]}"
    fi
    echo "bench/setup.sh: installed ${need[*]}"
fi
pgloader --version

# --- dlt, in its own virtual environment ---
venv="$here/.venv-dlt"
dlt_requirements=(
    "dlt[sql_database,postgres,parquet]==1.31.0"
    "connectorx==0.4.6"
    "pyarrow==26.0.1"
    "adbc-driver-manager==1.13.0"
    "adbc-driver-postgresql==1.13.0"
    "pymysql==1.2.4"
    "sqlalchemy==2.1.9"
    "psycopg2-binary==2.9.13"
)
stamp="$venv/.ferry-bench-requirements"
wanted="$(printf '%s\n' "${dlt_requirements[@]}")"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] \
    && "$venv/bin/python" -c "import dlt, connectorx, pyarrow, adbc_driver_postgresql, pymysql" \
        >/dev/null 2>&1; then
    echo "bench/setup.sh: $venv already holds the pinned dlt set"
else
    python="${PYTHON:-python3}"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${dlt_requirements[@]}"
    printf '%s\n' "$wanted" >"$stamp"
    echo "bench/setup.sh: installed the dlt set into $venv"
fi
"$venv/bin/python" -c "import dlt, connectorx, pyarrow, adbc_driver_postgresql as a; \
print(f'dlt {dlt.__version__}, connectorx {connectorx.__version__}, pyarrow {pyarrow.__version__}, \
adbc-driver-postgresql {a.__version__}')"
