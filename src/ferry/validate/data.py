"""`ferry verify JOB.yaml`: the target holds exactly the source's rows as the job transforms
them — counted per table and compared row by row on key ranges, so a difference is named by
its key: missing, extra, or different (with the differing columns).

Each key range is read from both sides (connectorx into Arrow), the source side through the
job's own transforms, and compared in Arrow; memory stays bounded by the range size. Rows the
target refused at load are in `ferry_rejects` and are not counted missing, while the reject
records the source's row as it is (a hand-written or stale reject excuses nothing).
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import and_, inspect, select, text
from sqlalchemy import exc as sa_exc

from ferry.config.project import Project
from ferry.data.chunks import KeyRange, chunk_rows, range_predicate
from ferry.data.delta import source_rows
from ferry.data.endpoints import ensure_reachable, open_endpoint
from ferry.data.extract import read_chunk, read_select, source_ranges
from ferry.data.spec import JobSpec, Mode
from ferry.data.state import reject_row, source_key_text
from ferry.data.state import rejects as rejects_table
from ferry.data.tables import TablePlan, plan_tables
from ferry.data.transform import ROW, Transformer, python_rows
from ferry.db.target import Target
from ferry.errors import ConfigError
from ferry.runs import attach_to_run, finish_run, start_run
from ferry.validate.checksums import Side, keeps_values, locate, sides
from ferry.validate.compare import Canon, Diff, canonical_key_strings, compare, key_strings
from ferry.validate.constraints import check_constraints
from ferry.validate.methods import Method as Method  # re-exported: its old home
from ferry.validate.report import ValidationReport


@dataclass
class TableCheck:
    table: str
    target: str
    expected: int = 0
    found: int = 0
    diff: Diff | None = None
    method: str = "rows"  # "checksum": ranges proven by in-database checksums
    ranges: int = 0  # ranges summarised inside the databases
    leaves: int = 0  # ranges read and compared row by row
    fetched: int = 0  # rows read for the row-by-row comparison, both sides
    refused: list[Any] = field(default_factory=list)  # missing keys the target refused
    refused_count: int = 0
    stale_rejects: int = 0  # load rejects whose row is not the source's: not excused


def _checksum_sides(
    source: Target,
    target: Target,
    plan: TablePlan,
    transformer: Transformer,
    canon: Canon,
    method: Method,
) -> tuple[Side, Side] | None:
    if method is Method.ROWS:
        return None
    if keeps_values(transformer):
        pair = sides(source, target, plan, canon)
        reason = "one of the databases cannot compute the checksums (SQLite)"
    else:
        pair = None
        reason = (
            "the job changes its values in Arrow (value maps, nulls, validation, derive, dedupe)"
        )
    if pair is None and method is Method.CHECKSUM:
        raise ConfigError(
            f"`{plan.name}` cannot be verified by in-database checksums: {reason}",
            key=f"tables.{plan.name}",
            hint="run `ferry verify --method rows` (or auto) to compare it row by row",
        )
    return pair


def verify_job(
    spec: JobSpec,
    *,
    spec_path: Path,
    project: Project | None = None,
    canon: Canon | None = None,
    max_keys: int = 20,
    method: Method = Method.AUTO,
    run_id: str | None = None,
) -> ValidationReport:
    """Compare the job's target with its source as transformed by the job. The report is
    stored with run `run_id` (the copy it proves), or as a run of its own.

    Raises:
        ConfigError: a target table does not exist yet (nothing was copied).
    """
    canon = canon or Canon()
    source = open_endpoint(spec.source, key="source", spec_path=spec_path, project=project)
    target = open_endpoint(spec.target, key="target", spec_path=spec_path, project=project)
    report = ValidationReport()
    data = report.category("data")
    try:
        ensure_reachable(source, target)
        plans = plan_tables(spec, source.engine, target.engine, file=spec_path)
        missing = [p.target_name for p in plans if not p.target_exists]
        if missing:
            raise ConfigError(
                f"the target has no table {', '.join(missing)}",
                file=spec_path,
                hint="run `ferry copy` first",
            )
        job = spec.name or spec_path.stem
        for plan in plans:
            if plan.spec.mode is Mode.SAMPLE:
                data.warnings.append(f"`{plan.name}` is a sample: not compared row by row")
                continue
            check = _check_table(source, target, plan, spec, job, canon, max_keys, method)
            _report_table(data, check, max_keys)
        check_constraints(target, [p.target for p in plans], report.category("constraint"))
        _store(target, report, run_id, job)
        return report
    finally:
        source.dispose()
        target.dispose()


def _store(target: Target, report: ValidationReport, run_id: str | None, job: str) -> None:
    """Keep the report with its run in the target; a target that takes no writes (a read
    replica) still gets its report, with a warning that it was not stored."""
    found = report.as_dict()
    try:
        with target.connect() as conn:
            if run_id is not None and attach_to_run(conn, run_id, "validation", found):
                return
            record = run_id or str(uuid.uuid4())
            start_run(conn, record, "validation", f"verify {job}")
            status = "completed" if report.status == "passed" else "failed"
            finish_run(conn, record, status, {"validation": found})
    except sa_exc.DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        report.category("data").warnings.append(
            f"the report was not stored in the target's ferry_runs: {reason}"
        )


def _target_key(plan: TablePlan) -> list[str]:
    return [plan.mapping[k] for k in plan.key]


def _check_table(
    source: Target,
    target: Target,
    plan: TablePlan,
    spec: JobSpec,
    job: str,
    canon: Canon,
    max_keys: int,
    method: Method,
) -> TableCheck:
    check = TableCheck(plan.name, plan.target_name)
    key = _target_key(plan)
    if not plan.key or any(k not in plan.mapping for k in plan.key):
        raise ConfigError(
            f"`{plan.name}` has no key that reaches the target, so its rows cannot be matched",
            key=f"tables.{plan.name}.key",
            hint="set `key:` to columns the job copies",
        )
    transformer = Transformer(plan)
    refused, stale = _refused_keys(source, target, job, plan, canon)
    with source.connect() as conn:
        where = text(f"({plan.spec.where})").self_group() if plan.spec.where else None
        rows = chunk_rows(
            source.adapter, conn, plan.source.name, spec.load.batch_size, spec.load.workers
        )
        ranges = source_ranges(source, conn, plan, rows_per_chunk=rows, where=where)

    def one(chunk: KeyRange) -> tuple[int, int, Diff]:
        batch = read_chunk(source, plan, chunk, descending=transformer.descending)
        expected = transformer.apply(batch).table.drop_columns([ROW])
        actual = _target_rows(target, plan, key, chunk, list(expected.column_names))
        return (
            expected.num_rows,
            actual.num_rows,
            compare(expected, actual, key, canon=canon, max_keys=max_keys),
        )

    ordered = list(reversed(ranges)) if transformer.descending else ranges
    total = Diff()
    pair = _checksum_sides(source, target, plan, transformer, canon, method)
    if pair is not None:
        # Ranges whose in-database checksums agree are proven; the rest narrow to leaves.
        with ThreadPoolExecutor(max_workers=max(2, spec.load.workers)) as pool:
            located = locate(pair, ordered, lambda f, jobs: list(pool.map(f, jobs)))
        check.method = "checksum"
        check.ranges = located.ranges
        check.expected += located.equal_rows
        check.found += located.equal_rows
        total.compared += located.equal_rows
        ordered = located.leaves
    check.leaves = len(ordered)
    if transformer.deduper is not None:
        # "first" is defined in key order: de-duplicating tables go range by range.
        results = [one(chunk) for chunk in ordered]
    else:
        with ThreadPoolExecutor(max_workers=spec.load.workers) as pool:
            results = list(pool.map(one, ordered))
    missing_rows: list[pa.Table] = []
    extra_rows: list[pa.Table] = []
    for expected_rows, found_rows, diff in results:
        check.fetched += expected_rows + found_rows
        check.expected += expected_rows
        check.found += found_rows
        total.compared += diff.compared
        total.different_count += diff.different_count
        total.different = (total.different + diff.different)[:max_keys]
        if diff.missing_rows is not None and diff.missing_rows.num_rows:
            missing_rows.append(diff.missing_rows)
        if diff.extra_rows is not None and diff.extra_rows.num_rows:
            extra_rows.append(diff.extra_rows)
    if missing_rows or extra_rows:
        _settle(total, missing_rows, extra_rows, key, refused, canon, max_keys, check)
        if total.extra_count and transformer.deduper is None:
            # (a de-duplicating job cannot judge one row alone, so it is not asked)
            check.found -= _drop_double_reads(total, source, plan, key, max_keys)
    check.diff = total
    check.stale_rejects = stale
    return check


def _target_rows(
    target: Target, plan: TablePlan, key: list[str], chunk: KeyRange, columns: list[str]
) -> pa.Table:
    table = plan.target
    query = select(*[table.c[c] for c in columns]).select_from(table)
    predicate = range_predicate(table, key, chunk)
    if predicate is not None:
        query = query.where(predicate)
    # Key order on both sides lets compare() skip matching rows up when they line up.
    return read_select(target, query.order_by(*[table.c[k] for k in key]))


def _refused_keys(
    source: Target, target: Target, job: str, plan: TablePlan, canon: Canon
) -> tuple[pa.Array | None, int]:
    """Keys (as `compare` renders them) of rows the target refused at load, and how many
    load rejects do not hold the source's row as it is (stale, or not written by a copy):
    those excuse nothing. A reject excuses its row only while its recorded row is the
    source's, rendered as the copy rendered it."""
    with target.connect() as conn:
        if not inspect(conn).has_table(rejects_table.name):
            return None, 0
        rows = conn.execute(
            select(rejects_table.c.source_key, rejects_table.c.row_data).where(
                and_(
                    rejects_table.c.job == job,
                    rejects_table.c.table_name == plan.name,
                    rejects_table.c.rule == "load",
                )
            )
        ).all()
    recorded: dict[str, Any] = {}
    for raw, data in rows:
        values = json.loads(raw) if raw else None
        if isinstance(values, list) and len(values) == len(plan.key):
            recorded[source_key_text(values)] = (values, json.loads(data) if data else None)
    if not recorded:
        return None, 0
    found: list[pa.Table] = []
    entries = list(recorded.values())
    for start in range(0, len(entries), 1000):
        wanted = [
            dict(zip(plan.key, values, strict=True)) for values, _ in entries[start : start + 1000]
        ]
        found.append(source_rows(source, plan, wanted))
    present = pa.concat_tables(found, promote_options="permissive")
    genuine = []
    for position, row in enumerate(python_rows(present)):
        entry = recorded.get(source_key_text([row.get(k) for k in plan.key]))
        if entry is not None and _same_json(row, entry[1]):
            genuine.append(position)
    stale = len(recorded) - len(genuine)
    if not genuine:
        return None, stale
    refused = present.take(pa.array(genuine, pa.int64()))
    keys = Transformer(plan).apply(refused).table.select(_target_key(plan))
    return canonical_key_strings(keys, _target_key(plan), canon), stale


def _same_json(row: dict[str, Any], recorded: Any) -> bool:
    """A row read now is the row a reject recorded (as JSON, like `write_rejects`); texts
    compared, so a NaN equals itself."""
    now = json.dumps(reject_row(row), sort_keys=True)
    return now == json.dumps(recorded, sort_keys=True)


def _drop_double_reads(
    total: Diff, source: Target, plan: TablePlan, key: list[str], max_keys: int
) -> int:
    """A target whose collation orders keys differently can return a row in two ranges: it
    matched in one and looks extra in the other. Extras the source does have (as the job
    transforms it) are such rows."""
    if total.extra_rows is None or total.extra_rows.num_rows > 100_000:
        return 0
    source_key = {target: source for source, target in plan.mapping.items() if source in plan.key}
    wanted = [{source_key[k]: row[k] for k in key} for row in total.extra_rows.to_pylist()]
    present = Transformer(plan).apply(source_rows(source, plan, wanted)).table
    if not present.num_rows:
        return 0
    known = pc.is_in(
        key_strings(total.extra_rows, key), value_set=key_strings(present.select(key), key)
    )
    still = total.extra_rows.filter(pc.invert(known))
    dropped = total.extra_rows.num_rows - still.num_rows
    total.extra_rows = still
    total.extra_count = still.num_rows
    total.extra = still.select(key).slice(0, max_keys).to_pylist()
    return int(dropped)


def _settle(
    total: Diff,
    missing_rows: list[pa.Table],
    extra_rows: list[pa.Table],
    key: list[str],
    refused: pa.Array | None,
    canon: Canon,
    max_keys: int,
    check: TableCheck,
) -> None:
    """Match the rows each range could not place against each other: a row the other engine
    sorted into another range is found there. Rows the target refused at load (recorded in
    ferry_rejects) are neither missing nor expected."""
    schema_of = (missing_rows or extra_rows)[0].schema
    lost = pa.concat_tables(missing_rows) if missing_rows else schema_of.empty_table()
    found = (
        pa.concat_tables(extra_rows, promote_options="permissive")
        if extra_rows
        else pa.table({c: pa.array([], lost.schema.field(c).type) for c in lost.column_names})
    )
    if refused is not None and lost.num_rows:
        known = pc.is_in(key_strings(lost, key), value_set=refused)
        excused = lost.filter(known)
        check.refused_count = excused.num_rows
        check.refused = excused.select(key).slice(0, max_keys).to_pylist()
        check.expected -= excused.num_rows
        lost = lost.filter(pc.invert(known))
    settled = compare(lost, found, key, canon=canon, max_keys=max_keys)
    total.extra_rows = settled.extra_rows
    total.missing_count = settled.missing_count
    total.extra_count = settled.extra_count
    total.missing = settled.missing
    total.extra = settled.extra
    total.compared += settled.compared
    total.different_count += settled.different_count
    total.different = (total.different + settled.different)[:max_keys]


def _report_table(data: Any, check: TableCheck, max_keys: int) -> None:
    diff = check.diff or Diff()
    data.details[check.table] = {
        "target": check.target,
        "expected_rows": check.expected,
        "target_rows": check.found,
        "method": check.method,
        "ranges_checksummed": check.ranges,
        "ranges_compared_by_rows": check.leaves,
        "rows_read": check.fetched,
        "compared": diff.compared,
        "missing": diff.missing_count,
        "extra": diff.extra_count,
        "different": diff.different_count,
        "missing_keys": diff.missing,
        "extra_keys": diff.extra,
        "different_keys": [{"key": k, "columns": c} for k, c in diff.different],
    }
    if check.refused_count:
        data.details[check.table]["refused_at_load"] = check.refused_count
        data.warnings.append(
            f"`{check.target}`: {check.refused_count} rows the target refused at load "
            f"(ferry_rejects) are not counted missing, e.g. keys {check.refused[:5]}"
        )
    if check.stale_rejects:
        data.warnings.append(
            f"`{check.target}`: {check.stale_rejects} load rejects in ferry_rejects do not "
            "hold the source's row as it is now: they excuse no missing row"
        )
    if diff.missing_count:
        data.fail(
            f"`{check.target}`: {diff.missing_count} rows missing, e.g. keys {diff.missing[:5]}"
        )
    if diff.extra_count:
        data.fail(
            f"`{check.target}`: {diff.extra_count} rows that the source does not have, "
            f"e.g. keys {diff.extra[:5]}"
        )
    if diff.different_count:
        sample = "; ".join(f"{k} ({', '.join(c)})" for k, c in diff.different[:5])
        data.fail(f"`{check.target}`: {diff.different_count} rows differ, e.g. {sample}")
    if check.expected != check.found and not (diff.missing_count or diff.extra_count):
        data.fail(f"`{check.target}`: {check.found} rows where {check.expected} were expected")
