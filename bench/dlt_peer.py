"""The dlt peer of `copy_bench.py --plain --dlt`: copy every table of a MySQL/MariaDB database
into a PostgreSQL database with dlt, tuned the way dlt's documentation advises.

Run by the interpreter of the virtual environment that `bash bench/setup.sh` makes (dlt is not
a dependency of Ferry)::

    bench/.venv-dlt/bin/python bench/dlt_peer.py \\
        --source mysql+pymysql://root@127.0.0.1:3306/ferry_bench_src \\
        --target postgresql://postgres@127.0.0.1:5432/some_fresh_db --workers 2

The set-up ("dlt tuned" of issue 3):

* ``sql_database(backend="connectorx")``: each table read by ConnectorX (Rust) straight into
  Arrow, streamed (``return_type="arrow_stream"``) in batches of ``--chunk-size`` rows;
  ``reflection_level="full"`` (column types from the source's catalog, no precision hints);
* ``loader_file_format="parquet"``: the Arrow batches are written to parquet files, which the
  PostgreSQL destination loads through ADBC (``adbc_ingest``, i.e. binary COPY) when
  ``adbc-driver-postgresql`` is installed -- this script refuses to run without it;
* ``write_disposition="replace"``;
* parallelism from ``--workers``: the resources are parallelized (``source.parallelize()``) and
  extracted by that many threads, normalized by that many processes and loaded by that many
  threads; files are rotated every ``--file-max-items`` rows (``data_writer.file_max_items``)
  so that the big table gives the normalize and load stages several files to share.

dlt creates the tables itself (column types and NOT NULL from the source's catalog) with no
primary keys, no secondary indexes and no foreign keys: the source's primary keys become only
``primary_key`` hints in dlt's schema, which its PostgreSQL destination does not turn into
constraints (it emits UNIQUE only for columns hinted ``unique``). Only its own bookkeeping
table ``_dlt_pipeline_state`` gets a unique index.

Prints a human summary, then one line ``@@DLT_PEER_RESULT@@ {json}`` with the wall seconds of
the pipeline (extract, normalize, load, each) and the rows loaded per table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

RESULT_MARK = "@@DLT_PEER_RESULT@@ "


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="mysql+pymysql://user@host:port/db")
    parser.add_argument("--target", required=True, help="postgresql://user@host:port/db")
    parser.add_argument("--dataset", default="public", help="PostgreSQL schema to load into")
    parser.add_argument("--workers", type=int, default=2, help="extract/normalize/load workers")
    parser.add_argument("--chunk-size", type=int, default=100_000, help="rows per Arrow batch")
    parser.add_argument(
        "--file-max-items", type=int, default=500_000, help="rows per intermediate parquet file"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    workdir = Path(tempfile.mkdtemp(prefix="dlt_peer_"))
    try:
        return copy(args, workdir)
    finally:
        os.chdir("/")
        shutil.rmtree(workdir, ignore_errors=True)  # dlt's pipeline folder: the parquet files


def copy(args: argparse.Namespace, workdir: Path) -> int:
    # dlt reads its configuration from the environment; set before importing it.
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ["RUNTIME__LOG_LEVEL"] = "ERROR"  # one arrow/dlt hint warning per batch
    os.environ.setdefault("DESTINATION__POSTGRES__CREDENTIALS__PASSWORD", "")
    os.environ["DATA_WRITER__FILE_MAX_ITEMS"] = str(args.file_max_items)
    os.environ["DATA_WRITER__BUFFER_MAX_ITEMS"] = str(args.chunk_size)
    os.chdir(workdir)  # no .dlt project folder of the caller's is picked up

    import adbc_driver_postgresql  # noqa: F401  (fail early: without it dlt falls back)
    import dlt
    from dlt.sources.sql_database import sql_database

    started = time.perf_counter()
    source = sql_database(
        credentials=args.source,
        backend="connectorx",
        chunk_size=args.chunk_size,
        reflection_level="full",
        backend_kwargs={"return_type": "arrow_stream", "batch_size": args.chunk_size},
    )
    for resource in source.resources.values():
        # ConnectorX's Arrow stream ends with an empty batch; when it lands in a fresh file (the
        # last one was rotated at exactly file_max_items rows) dlt writes a parquet file without
        # batches and its ADBC load job fails on it ("Must pass schema, or at least one
        # RecordBatch"). Drop empty batches.
        resource.add_filter(lambda batch: batch.num_rows > 0)
    source.parallelize()
    pipeline = dlt.pipeline(
        pipeline_name="ferry_bench_dlt_peer",
        pipelines_dir=str(workdir / "pipelines"),
        destination=dlt.destinations.postgres(credentials=args.target),
        dataset_name=args.dataset,
    )
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    pipeline.extract(
        source,
        write_disposition="replace",
        loader_file_format="parquet",
        workers=args.workers,
    )
    timings["extract"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    normalized = pipeline.normalize(workers=args.workers)
    timings["normalize"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    loaded = pipeline.load(workers=args.workers, raise_on_failed_jobs=True)
    timings["load"] = time.perf_counter() - t0
    seconds = time.perf_counter() - started

    counts = {
        table: int(rows)
        for table, rows in normalized.row_counts.items()
        if not table.startswith("_dlt_")
    }
    jobs = [
        job.job_file_info.file_format
        for package in loaded.load_packages
        for job in package.jobs["completed_jobs"]
        if not job.job_file_info.table_name.startswith("_dlt_")
    ]
    formats = {fmt: jobs.count(fmt) for fmt in sorted(set(jobs))}
    print(
        f"dlt {dlt.__version__}: {sum(counts.values()):,} rows in {seconds:.2f} s "
        f"(extract {timings['extract']:.2f}, normalize {timings['normalize']:.2f}, "
        f"load {timings['load']:.2f}); load jobs by file format: {formats}"
    )
    for table, rows in sorted(counts.items()):
        print(f"  {table:<15} {rows:>10,}")
    payload = {
        "seconds": seconds,
        "stages": timings,
        "counts": counts,
        "load_formats": formats,
        "dlt": dlt.__version__,
        "workers": args.workers,
    }
    print(RESULT_MARK + json.dumps(payload), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
