"""Benchmark `ferry verify`: full row-by-row validation of a copied table.

The source is copy_bench's synthetic camera-counting MariaDB database (`ferry_bench_src`,
5,000,000 analytics rows by default; generated on first use). The analytics table is copied
into a fresh PostgreSQL database with Ferry, then:

1. verify of unchanged data (rows/s), by in-database checksums on key ranges (`checksum`)
   and by reading every row of both sides into Arrow (`rows`);
2. 10 rows changed, deleted or added in the target: verify must name exactly those keys
   (checksums bisect the differing ranges), and the time each method takes is printed.

3. backup of the table (pg_dump, custom format) and its restore (pg_restore, then every
   checksum compared with the manifest), timed.

Run: `python bench/verify_bench.py [--rows N] [--batch-size N]`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import copy_bench

from ferry.data.copy import copy_data
from ferry.data.spec import parse_job
from ferry.db.target import open_url
from ferry.rollback import create_backup, restore_backup
from ferry.validate.data import Method, verify_job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="analytics rows")
    parser.add_argument("--batch-size", type=int, default=200_000, help="rows per key range")
    args = parser.parse_args(argv)
    servers = copy_bench.Servers("127.0.0.1", 3306, "root", "127.0.0.1", 5432, "postgres")
    copy_bench.ensure_source(servers, copy_bench.CAMERA_COUNTS, args.rows, regenerate=False)
    target_db = f"ferry_verify_bench_{uuid.uuid4().hex[:8]}"
    with servers.pg() as conn:
        conn.execute(f'CREATE DATABASE "{target_db}"')
    workdir = Path(f"/tmp/{target_db}")
    workdir.mkdir()
    job = workdir / "job.yaml"
    job.write_text(
        f"name: verify_bench\nsource: {servers.mysql_url()}\ntarget: {servers.pg_url(target_db)}\n"
        f"include: [analytics]\nload: {{batch_size: {args.batch_size}}}\n"
    )
    try:
        started = time.perf_counter()
        copy_data(parse_job(job.read_text(), path=job), spec_path=job)
        print(f"copy of analytics: {time.perf_counter() - started:.2f} s")

        for method in Method.CHECKSUM, Method.ROWS:
            started = time.perf_counter()
            report = verify_job(parse_job(job.read_text(), path=job), spec_path=job, method=method)
            seconds = time.perf_counter() - started
            details = report.categories["data"].details["analytics"]
            rows = details["compared"]
            print(
                f"verify by {method.value}, unchanged: {report.status}, {rows:,} rows compared in "
                f"{seconds:.2f} s = {rows / seconds:,.0f} rows/s "
                f"({details['ranges_checksummed']} ranges checksummed, "
                f"{details['rows_read']:,} rows read)"
            )

        with servers.pg(target_db) as conn:
            conn.execute(
                "UPDATE analytics SET count = count + 1 WHERE id IN (11, 222, 3333, 44444)"
            )
            conn.execute("DELETE FROM analytics WHERE id IN (555555, 1666666, 2777777)")
            conn.execute(
                "INSERT INTO analytics (id, camera_id, count, timestamp) VALUES "
                "(900000001, 1, 1, now()), (900000002, 2, 2, now()), "
                "(900000003, 3, 3, now())"
            )
        for method in Method.CHECKSUM, Method.ROWS:
            started = time.perf_counter()
            report = verify_job(parse_job(job.read_text(), path=job), spec_path=job, method=method)
            seconds = time.perf_counter() - started
            details = report.categories["data"].details["analytics"]
            print(
                f"verify by {method.value}, 10 rows changed: {report.status} in {seconds:.2f} s "
                f"({details['rows_read']:,} rows read); missing "
                f"{[k['id'] for k in details['missing_keys']]}, extra "
                f"{[k['id'] for k in details['extra_keys']]}, different "
                f"{[(d['key']['id'], d['columns']) for d in details['different_keys']]}"
            )
        target = open_url("bench", servers.pg_url(target_db))
        started = time.perf_counter()
        made = create_backup(target, workdir / "backups", tables=["analytics"])
        backup_s = time.perf_counter() - started
        started = time.perf_counter()
        restore_backup(open_url("bench", servers.pg_url(target_db)), workdir / "backups", made.id)
        restore_s = time.perf_counter() - started
        target.dispose()
        rows = made.tables["analytics"]["rows"]
        print(
            f"backup of analytics ({rows:,} rows, pg_dump -Fc + checksums): {backup_s:.2f} s; "
            f"restore (pg_restore + checksum proof): {restore_s:.2f} s"
        )
        print("command: python bench/verify_bench.py " + " ".join(argv or sys.argv[1:]))
    finally:
        with servers.pg() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{target_db}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
