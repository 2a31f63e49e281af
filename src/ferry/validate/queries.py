"""Performance and application checks: representative queries timed (median of several
runs, with the plan captured) and smoke queries that must keep succeeding."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from ferry.config.project import ChecksSettings, QueryCheck
from ferry.db.target import Target
from ferry.validate.report import Category, ValidationReport


@dataclass(frozen=True)
class Timing:
    name: str
    median_ms: float
    plan: str


def time_queries(target: Target, checks: ChecksSettings) -> dict[str, Timing]:
    """Each performance query run `checks.runs` times; its median and its plan."""
    timings: dict[str, Timing] = {}
    with target.connect() as conn:
        for check in checks.performance:
            samples = []
            for _ in range(checks.runs):
                started = time.perf_counter()
                conn.execute(text(check.sql), check.params).fetchall()
                samples.append((time.perf_counter() - started) * 1000)
            rows = conn.execute(
                text(f"{target.adapter.explain_prefix} {check.sql}"), check.params
            ).fetchall()
            plan = "\n".join(" ".join(str(v) for v in row) for row in rows)
            timings[check.name] = Timing(check.name, statistics.median(samples), plan)
            conn.rollback()
    return timings


def run_smoke(target: Target, queries: list[QueryCheck], category: Category) -> None:
    """Every application query must still run; each failure is an error naming it."""
    with target.connect() as conn:
        for check in queries:
            try:
                conn.execute(text(check.sql), check.params).fetchall()
            except sa_exc.DBAPIError as error:
                conn.rollback()
                reason = str(error.orig).strip().splitlines()[0]
                category.fail(f"application query `{check.name}` fails: {reason}")
        conn.rollback()


def compare_timings(
    before: dict[str, Timing], after: dict[str, Timing], slowdown: float, category: Category
) -> None:
    """Flag every query that got slower than the threshold allows."""
    for name, old in before.items():
        new = after.get(name)
        if new is None:
            continue
        category.details[name] = {
            "before_ms": round(old.median_ms, 3),
            "after_ms": round(new.median_ms, 3),
            "plan_before": old.plan,
            "plan_after": new.plan,
        }
        # Below a millisecond, timer noise is larger than any real change.
        if new.median_ms > max(old.median_ms, 1.0) * (1 + slowdown):
            category.fail(
                f"query `{name}` slowed from {old.median_ms:.1f} ms to "
                f"{new.median_ms:.1f} ms (more than {slowdown:.0%})"
            )


def check_queries(target: Target, checks: ChecksSettings) -> ValidationReport:
    """`ferry check`: the application queries run, the performance queries are timed."""
    report = ValidationReport()
    run_smoke(target, checks.application, report.category("application"))
    performance = report.category("performance")
    for name, timing in time_queries(target, checks).items():
        performance.details[name] = {"median_ms": round(timing.median_ms, 3), "plan": timing.plan}
    return report
