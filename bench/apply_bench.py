"""Benchmark `ferry apply` of many small migrations on PostgreSQL, next to `psql -1`.

What is measured, for each count N (default 1,000 and 10,000):

* Ferry: a temporary project with N files ``V{i}__create_table_{i}.sql``, each holding one
  ``CREATE TABLE``, is applied to a fresh database by ``commands.apply(project, "bench")`` in
  a child Python process (the same code path as ``ferry apply``, without the CLI output).

  - "wall s" is measured here around the child process, so it includes Python start-up,
    importing Ferry, parsing the project file and discovering the N files.
  - "apply s" is measured by the child itself around the ``commands.apply`` call only
    (discovery, planning, locking, running the N migrations, writing history).
  - "peak RSS" is the child's own ``ru_maxrss``; "RSS ready" is the same figure just before
    ``apply`` starts (interpreter plus imports), so the difference is what applying costs.
    Memory is flat when the peak barely moves from 1,000 to 10,000 migrations.

  Afterwards the history table ``schema_migrations`` must hold N successful rows.

* Baselines: the same N statements concatenated into one file and run by
  ``psql -1 -q -X -v ON_ERROR_STOP=1 -f file`` (one session, one transaction) on another fresh
  database, and once more without ``-1`` (one session, each statement committed on its own,
  which is closer to Ferry's one transaction per migration). Ferry does more (a history row per
  migration, a lock, checksums), so the ratios show the price of that bookkeeping.

  With PostgreSQL's default ``max_locks_per_transaction = 64``, one transaction cannot create
  10,000 tables with primary keys ("out of shared memory"): the ``psql -1`` cell then reads
  "no locks" and the error is printed below the table; the server is not reconfigured.

Target: 10,000 migrations applied in under 20 s of wall time.

Run it from the repository root with the project's virtual environment active::

    python bench/apply_bench.py
    python bench/apply_bench.py --counts 100,1000 --keep
    python bench/apply_bench.py --counts 10000 --profile   # cProfile the Ferry child

It needs a PostgreSQL server (default ``postgresql://postgres@127.0.0.1:5432``, a role allowed to
create databases) and ``psql`` on PATH. Every database it creates is named
``ferry_bench_<pid>_<N>_{ferry,psql1,psql}`` and dropped at the end unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

TARGET = "bench"
HISTORY_TABLE = "schema_migrations"
RESULT_MARK = "@@APPLY_BENCH_RESULT@@ "
DEFAULT_URL_BASE = "postgresql://postgres@127.0.0.1:5432"
TARGET_SECONDS = 20.0
TARGET_COUNT = 10_000


class BenchError(Exception):
    """A problem that ends the benchmark with a plain message instead of a traceback."""


# --- the child: runs inside a fresh interpreter, prints one JSON line ---


def _maxrss_kib() -> int:
    """Peak resident set size of this process in KiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def run_child(project_file: Path, profile_out: Path | None) -> int:
    started = time.perf_counter()
    from ferry.config.project import parse_project
    from ferry.schema import commands

    import_s = time.perf_counter() - started
    project = parse_project(project_file.read_text(), root=project_file.parent, path=project_file)
    rss_ready = _maxrss_kib()

    profiler = None
    if profile_out is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    report = commands.apply(project, TARGET)
    apply_s = time.perf_counter() - t0
    if profiler is not None and profile_out is not None:
        profiler.disable()
        profiler.dump_stats(profile_out)

    statuses: dict[str, int] = {}
    for result in report.results:
        statuses[result.status] = statuses.get(result.status, 0) + 1
    payload = {
        "import_s": import_s,
        "apply_s": apply_s,
        "results": len(report.results),
        "statuses": statuses,
        "rss_ready_kib": rss_ready,
        "rss_peak_kib": _maxrss_kib(),
    }
    print(RESULT_MARK + json.dumps(payload), flush=True)
    return 0


# --- the parent ---


@dataclass
class Server:
    """Where the databases are created, split out for psycopg and psql."""

    base: str
    host: str
    port: int
    user: str
    password: str | None

    @classmethod
    def parse(cls, base: str) -> Server:
        parts = urlsplit(base.rstrip("/"))
        if parts.scheme not in ("postgresql", "postgres"):
            raise BenchError(f"--pg-url-base must be a postgresql:// URL, got {base!r}")
        if parts.path not in ("", "/"):
            raise BenchError(f"--pg-url-base must not name a database, got {base!r}")
        return cls(
            base=f"postgresql://{parts.netloc}",
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username) if parts.username else "postgres",
            password=unquote(parts.password) if parts.password else None,
        )

    def url(self, database: str) -> str:
        return f"{self.base}/{database}"

    def connect(
        self, database: str = "postgres", *, autocommit: bool = False
    ) -> psycopg.Connection:
        return psycopg.connect(self.url(database), autocommit=autocommit, connect_timeout=5)

    def psql_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env


@dataclass
class Row:
    count: int
    wall_s: float
    import_s: float
    apply_s: float
    rss_ready_mib: float
    rss_peak_mib: float
    psql1_s: float | None  # None: psql -1 failed (see psql1_error)
    psql_s: float
    psql1_error: str = ""

    @property
    def per_second(self) -> float:
        return self.count / self.apply_s if self.apply_s else float("inf")

    @property
    def ratio1(self) -> float | None:
        return self.wall_s / self.psql1_s if self.psql1_s else None

    @property
    def ratio(self) -> float:
        return self.wall_s / self.psql_s if self.psql_s else float("inf")


def check_server(server: Server) -> str:
    """The server version, or a BenchError saying why PostgreSQL cannot be used."""
    try:
        with server.connect(autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            can_create = conn.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise BenchError(
            f"cannot connect to PostgreSQL at {server.url('postgres')}: "
            f"{str(exc).strip()}\nstart the server or pass --pg-url-base"
        ) from exc
    if not can_create or not can_create[0]:
        raise BenchError(f"role {server.user!r} may not create databases")
    if shutil.which("psql") is None:
        raise BenchError("psql is not on PATH; it is needed for the baseline")
    return str(version[0]) if version else "?"


def create_database(server: Server, name: str) -> None:
    with server.connect(autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(server: Server, name: str) -> None:
    with server.connect(autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def statement(i: int) -> str:
    return f"CREATE TABLE bench_{i} (id integer PRIMARY KEY, note varchar(50));\n"


def write_project(folder: Path, count: int, url: str) -> Path:
    migrations = folder / "migrations"
    migrations.mkdir(parents=True)
    for i in range(1, count + 1):
        (migrations / f"V{i}__create_table_{i}.sql").write_text(statement(i))
    project_file = folder / "ferry.toml"
    project_file.write_text(
        f'[migrations]\nfolders = ["migrations"]\n\n[targets.{TARGET}]\nurl = "{url}"\n'
    )
    return project_file


def run_ferry(
    project_file: Path, count: int, profile_out: Path | None
) -> tuple[float, dict[str, Any]]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(project_file)]
    if profile_out is not None:
        command += ["--profile-out", str(profile_out)]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall_s = time.perf_counter() - t0
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        raise BenchError(
            f"ferry apply of {count} migrations failed (exit {done.returncode}):\n"
            f"{done.stdout[-4000:]}{done.stderr[-4000:]}"
        )
    payload = json.loads(lines[-1][len(RESULT_MARK) :])
    if payload["results"] != count or payload["statuses"] != {"applied": count}:
        raise BenchError(
            f"ferry applied {payload['results']} of {count} migrations: {payload['statuses']}"
        )
    return wall_s, payload


def verify_history(server: Server, database: str, count: int) -> None:
    with server.connect(database) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*), count(*) FILTER (WHERE success) FROM {}").format(
                sql.Identifier(HISTORY_TABLE)
            )
        ).fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables"
            " WHERE schemaname = 'public' AND tablename LIKE 'bench!_%' ESCAPE '!'"
        ).fetchone()
    total, succeeded = row if row else (0, 0)
    if total != count or succeeded != count:
        raise BenchError(
            f"{database}.{HISTORY_TABLE} has {total} rows, {succeeded} successful; expected {count}"
        )
    if not tables or tables[0] != count:
        raise BenchError(f"{database} has {tables[0] if tables else 0} bench tables, not {count}")


def run_psql(server: Server, database: str, sql_file: Path, *, single: bool) -> float:
    """Seconds `psql` takes to run the file, in one transaction if `single`.

    Raises:
        BenchError: psql failed; the message is psql's last error lines.
    """
    command = [
        "psql", *(["-1"] if single else []), "-q", "-X", "-v", "ON_ERROR_STOP=1",
        "-h", server.host, "-p", str(server.port), "-U", server.user, "-d", database,
        "-f", str(sql_file),
    ]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env=server.psql_env()
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise BenchError(
            f"{shlex.join(command[: 2 if single else 1])} failed (exit {done.returncode}): "
            + " / ".join(done.stderr.strip().splitlines()[-2:])
        )
    return elapsed


def bench_one(server: Server, count: int, work: Path, created: list[str], profile: bool) -> Row:
    prefix = f"ferry_bench_{os.getpid()}_{count}"
    ferry_db, psql1_db, psql_db = f"{prefix}_ferry", f"{prefix}_psql1", f"{prefix}_psql"
    folder = work / f"n{count}"
    project_file = write_project(folder, count, server.url(ferry_db))
    sql_file = folder / "all.sql"
    with sql_file.open("w") as out:
        for i in range(1, count + 1):
            out.write(statement(i))

    created.append(ferry_db)
    create_database(server, ferry_db)
    profile_out = folder / "apply.prof" if profile else None
    wall_s, payload = run_ferry(project_file, count, profile_out)
    verify_history(server, ferry_db, count)

    created.append(psql1_db)
    create_database(server, psql1_db)
    psql1_s: float | None = None
    psql1_error = ""
    try:
        psql1_s = run_psql(server, psql1_db, sql_file, single=True)
    except BenchError as exc:
        psql1_error = str(exc)

    created.append(psql_db)
    create_database(server, psql_db)
    psql_s = run_psql(server, psql_db, sql_file, single=False)

    if profile_out is not None:
        print_profile(profile_out, count)
    return Row(
        count=count,
        wall_s=wall_s,
        import_s=payload["import_s"],
        apply_s=payload["apply_s"],
        rss_ready_mib=payload["rss_ready_kib"] / 1024,
        rss_peak_mib=payload["rss_peak_kib"] / 1024,
        psql1_s=psql1_s,
        psql_s=psql_s,
        psql1_error=psql1_error,
    )


def print_profile(profile_out: Path, count: int) -> None:
    import pstats

    print(f"\n--- cProfile of commands.apply, {count} migrations (top 30 by cumulative time) ---")
    stats = pstats.Stats(str(profile_out), stream=sys.stdout)
    stats.strip_dirs().sort_stats("cumulative").print_stats(30)
    print(f"--- full profile: {profile_out} (kept only with --keep)\n")


def print_table(rows: list[Row]) -> None:
    headers = (
        "count", "ferry wall s", "ferry apply s", "migrations/s",
        "RSS ready MiB", "peak RSS MiB", "psql -1 s", "wall/psql -1",
        "psql s", "wall/psql",
    )  # fmt: skip
    cells = [
        (
            f"{r.count:,}",
            f"{r.wall_s:.2f}",
            f"{r.apply_s:.2f}",
            f"{r.per_second:,.0f}",
            f"{r.rss_ready_mib:.1f}",
            f"{r.rss_peak_mib:.1f}",
            f"{r.psql1_s:.2f}" if r.psql1_s is not None else "failed*",
            f"{r.ratio1:.1f}x" if r.ratio1 is not None else "-",
            f"{r.psql_s:.2f}",
            f"{r.ratio:.1f}x",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))


def print_notes(rows: list[Row]) -> None:
    print()
    print("ferry wall s  = child process wall time: Python start-up, imports, project parse,")
    print("                discovery and apply. ferry apply s = commands.apply() alone, timed")
    print("                in the child. migrations/s uses apply s.")
    print("peak RSS      = the child's ru_maxrss; RSS ready = ru_maxrss just before apply.")
    print(
        "psql -1 s     = psql -1 -q -X -v ON_ERROR_STOP=1 -f all.sql: one session, one transaction"
    )
    print("psql s        = the same without -1: one session, every statement its own transaction")
    print("wall/psql(-1) = ferry wall s divided by the psql time")
    for r in rows:
        if r.psql1_error:
            print(f"* {r.count:,}: {r.psql1_error}")
    for r in rows:
        grew = r.rss_peak_mib - r.rss_ready_mib
        print(f"  {r.count:>7,}: imports {r.import_s:.2f} s, apply grew RSS by {grew:.1f} MiB")
    if len(rows) >= 2:
        small, large = min(rows, key=lambda r: r.count), max(rows, key=lambda r: r.count)
        grown = large.rss_peak_mib - small.rss_peak_mib
        per = grown * 1024 / (large.count - small.count)
        print(
            f"peak RSS {small.count:,} -> {large.count:,} migrations: {grown:+.1f} MiB "
            f"({per:.2f} KiB per extra migration)"
        )
    for r in rows:
        if r.count == TARGET_COUNT:
            verdict = "met" if r.wall_s < TARGET_SECONDS else "MISSED"
            print(
                f"target: {TARGET_COUNT:,} migrations in < {TARGET_SECONDS:.0f} s wall: {verdict} "
                f"({r.wall_s:.2f} s)"
            )


def parse_counts(text: str) -> list[int]:
    try:
        counts = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text}") from exc
    if not counts or any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError("counts must be positive integers")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time `ferry apply` of N small migrations on PostgreSQL next to `psql -1`."
    )
    parser.add_argument(
        "--counts",
        type=parse_counts,
        default=[1000, 10000],
        help="comma-separated migration counts (default: 1000,10000)",
    )
    parser.add_argument(
        "--pg-url-base",
        default=DEFAULT_URL_BASE,
        help=f"server URL without a database (default: {DEFAULT_URL_BASE})",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the databases and the temporary files for inspection",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the Ferry child under cProfile and print the hot spots",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        return run_child(args.child, args.profile_out)

    try:
        server = Server.parse(args.pg_url_base)
        version = check_server(server)
    except BenchError as exc:
        print(f"apply_bench: {exc}", file=sys.stderr)
        return 2

    import ferry

    print(
        f"ferry {getattr(ferry, '__version__', '?')}, Python {platform.python_version()}, "
        f"psycopg {psycopg.__version__}, PostgreSQL {version} at {server.host}:{server.port}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(f"command: python {shlex.join(sys.argv if argv is None else [__file__, *argv])}")
    print()

    work = Path(tempfile.mkdtemp(prefix="ferry_apply_bench_"))
    created: list[str] = []
    rows: list[Row] = []
    status = 0
    try:
        for count in args.counts:
            print(f"running {count:,} migrations ...", file=sys.stderr, flush=True)
            rows.append(bench_one(server, count, work, created, args.profile))
    except BenchError as exc:
        print(f"apply_bench: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("apply_bench: interrupted", file=sys.stderr)
        status = 130
    finally:
        if args.keep:
            print(f"kept databases: {', '.join(created) or '(none)'}", file=sys.stderr)
            print(f"kept files:     {work}", file=sys.stderr)
        else:
            for name in created:
                try:
                    drop_database(server, name)
                except psycopg.Error as exc:
                    print(f"apply_bench: could not drop {name}: {exc}", file=sys.stderr)
            shutil.rmtree(work, ignore_errors=True)

    if rows:
        print_table(rows)
        print_notes(rows)
    return status


if __name__ == "__main__":
    sys.exit(main())
