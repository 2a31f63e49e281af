"""Slowdown rule of the performance checks."""

from __future__ import annotations

from ferry.validate.queries import Timing, compare_timings
from ferry.validate.report import Category


def _t(ms: float) -> Timing:
    return Timing("q", ms, "plan")


def test_slower_than_the_threshold_fails() -> None:
    category = Category()
    compare_timings({"q": _t(10.0)}, {"q": _t(16.0)}, 0.5, category)
    assert category.status == "failed"
    assert "slowed from 10.0 ms to 16.0 ms" in category.errors[0]


def test_within_the_threshold_and_sub_millisecond_noise_pass() -> None:
    category = Category()
    compare_timings(
        {"q": _t(10.0), "tiny": Timing("tiny", 0.1, "")},
        {"q": _t(14.0), "tiny": Timing("tiny", 0.9, "")},
        0.5,
        category,
    )
    assert category.status == "passed"
    assert category.details["q"]["after_ms"] == 14.0
