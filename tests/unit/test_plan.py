"""Tests for planning `apply` and `undo` from files and history rows alone."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from ferry.config.project import Strategy
from ferry.errors import MigrationFileError, StrategyError, ValidationFailed
from ferry.schema.checksum import CURRENT_ALGORITHM
from ferry.schema.dag import link
from ferry.schema.history import AppliedState, HistoryRow, RowType, state_from_rows
from ferry.schema.plan import Action, Step, find_problems, pending, plan_apply, plan_undo
from ferry.schema.scripts import MigrationSet, discover
from ferry.schema.version import Version

V = Version
NOW = datetime(2024, 1, 15, 12, 0, 0)


class Files:
    """A migration folder in tmp_path, and history rows that agree with it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, *names: str, content: str | None = None) -> Files:
        for name in names:
            (self.folder / name).write_text(content or f"-- {name}\nSELECT 1;\n", "utf-8")
        return self

    def set(self, branching: bool = False) -> MigrationSet:
        ms = discover([self.folder])
        link(ms, branching=branching)
        return ms


def row(
    rank: int,
    version: str | None,
    *,
    ms: MigrationSet | None = None,
    type: RowType = RowType.SQL,
    script: str | None = None,
    description: str = "x",
    checksum: str | None = None,
    algorithm: str | None = CURRENT_ALGORITHM,
    success: bool = True,
    done: int = 0,
    total: int = 0,
) -> HistoryRow:
    """A history row; with `ms`, its checksum and script name come from the files."""
    parsed = V(version) if version is not None else None
    if ms is not None and checksum is None:
        if parsed is not None:
            migration = ms.get(parsed)
            assert migration is not None
            source = migration.undo if type.is_undo and migration.undo else migration.script
        else:
            source = next(s for s in ms.repeatable if s.description == description)
        checksum = source.checksum
        script = script or source.name
    return HistoryRow(
        installed_rank=rank,
        version=parsed,
        description=description,
        type=type,
        script=script or f"V{version}__x.sql",
        checksum=checksum,
        checksum_algorithm=algorithm if checksum is not None else None,
        installed_by="tester",
        applied_at=NOW,
        execution_ms=5,
        success=success,
        branch=None,
        run_id=None,
        statements_done=done,
        statements_total=total,
        done_checksum=None,
        error=None if success else "boom",
    )


def applied(ms: MigrationSet, *versions: str) -> list[HistoryRow]:
    return [row(rank, v, ms=ms) for rank, v in enumerate(versions, start=1)]


def labels(steps: list[Step]) -> list[str]:
    return [str(s.script.version) if s.script.version else s.script.description for s in steps]


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path / "migrations")


FOUR = ("V1__a.sql", "V2__b.sql", "V3__c.sql", "V4__d.sql")
FOUR_WITH_UNDO = (*FOUR, "U1__a.sql", "U2__b.sql", "U3__c.sql", "U4__d.sql")


# --- state ------------------------------------------------------------------------------


def test_state_from_rows(files: Files) -> None:
    ms = files.add(*FOUR_WITH_UNDO, "R__view.sql").set()
    rows = [
        row(1, "1", ms=ms),
        row(2, "2", ms=ms),
        row(3, "2", ms=ms, type=RowType.UNDO_SQL),
        row(4, "3", ms=ms, success=False, done=1, total=2),
        row(5, None, ms=ms, description="view"),
    ]
    state = state_from_rows(rows)
    assert set(state.applied) == {V("1")}
    assert set(state.failed) == {V("3")}
    assert set(state.repeatable) == {"view"}
    assert state.max_applied == V("1")
    assert state.next_rank == 6
    assert AppliedState().next_rank == 1
    assert AppliedState().max_applied is None


# --- apply ------------------------------------------------------------------------------


def test_everything_pending_on_empty_history(files: Files) -> None:
    ms = files.add("V2__b.sql", "V1.10__c.sql", "V1.9__b.sql", "V1__a.sql").set()
    state = AppliedState()
    steps = plan_apply(ms, state, Strategy.VERSIONED)
    assert labels(steps) == ["1", "1.9", "1.10", "2"]
    assert all(s.action is Action.APPLY for s in steps)
    assert all(s.resume_from == 0 and s.resumes is None for s in steps)
    assert [str(m.version) for m in pending(ms, state, Strategy.VERSIONED)] == [
        "1",
        "1.9",
        "1.10",
        "2",
    ]
    assert steps[0].label == "1 a"


def test_pending_after_some_applied(files: Files) -> None:
    ms = files.add(*FOUR).set()
    state = state_from_rows(applied(ms, "1", "2"))
    assert labels(plan_apply(ms, state, Strategy.VERSIONED)) == ["3", "4"]
    assert labels(plan_apply(ms, state, Strategy.FORWARD_ONLY)) == ["3", "4"]
    assert find_problems(ms, state, Strategy.VERSIONED) == []


def test_nothing_pending_when_up_to_date(files: Files) -> None:
    ms = files.add(*FOUR).set()
    state = state_from_rows(applied(ms, "1", "2", "3", "4"))
    assert plan_apply(ms, state, Strategy.VERSIONED) == []


@pytest.mark.parametrize(("to", "expected"), [("2", ["1", "2"]), ("1", ["1"]), ("4", None)])
def test_apply_to_limit(files: Files, to: str, expected: list[str] | None) -> None:
    ms = files.add(*FOUR).set()
    steps = plan_apply(ms, AppliedState(), Strategy.VERSIONED, to=V(to))
    assert labels(steps) == (expected or ["1", "2", "3", "4"])


def test_apply_to_unknown_version_raises(files: Files) -> None:
    ms = files.add(*FOUR).set()
    with pytest.raises(StrategyError, match=r"2\.5"):
        plan_apply(ms, AppliedState(), Strategy.VERSIONED, to=V("2.5"))


def test_baseline_hides_lower_versions(files: Files) -> None:
    ms = files.add(*FOUR).set()
    state = state_from_rows([row(1, "2", type=RowType.BASELINE, description="<< baseline >>")])
    assert state.baseline == V("2")
    assert labels(plan_apply(ms, state, Strategy.VERSIONED)) == ["3", "4"]
    assert labels(plan_apply(ms, state, Strategy.FORWARD_ONLY)) == ["3", "4"]
    assert find_problems(ms, state, Strategy.VERSIONED) == []


def test_checksum_mismatch_blocks_apply(files: Files) -> None:
    ms = files.add(*FOUR).set()
    rows = applied(ms, "1", "2")
    rows[1] = row(2, "2", ms=ms, checksum="0" * 64)
    state = state_from_rows(rows)
    problems = find_problems(ms, state, Strategy.VERSIONED)
    assert [(p.kind, p.version, p.script) for p in problems] == [
        ("checksum_mismatch", "2", "V2__b.sql")
    ]
    with pytest.raises(ValidationFailed, match=r"V2__b\.sql changed") as info:
        plan_apply(ms, state, Strategy.VERSIONED)
    assert info.value.hint is not None
    assert "ferry repair" in info.value.hint


def test_edited_file_blocks_apply(files: Files) -> None:
    ms = files.add(*FOUR).set()
    rows = applied(ms, "1")
    (files.folder / "V1__a.sql").write_text("DROP TABLE everything;\n", "utf-8")
    with pytest.raises(ValidationFailed, match=r"V1__a\.sql"):
        plan_apply(files.set(), state_from_rows(rows), Strategy.VERSIONED)


def test_whitespace_edit_does_not_block_apply(files: Files) -> None:
    ms = files.add(*FOUR).set()
    rows = applied(ms, "1")
    (files.folder / "V1__a.sql").write_bytes(b"\xef\xbb\xbf-- V1__a.sql  \r\nSELECT 1;\r\n\r\n")
    assert labels(plan_apply(files.set(), state_from_rows(rows), Strategy.VERSIONED)) == [
        "2",
        "3",
        "4",
    ]


def test_missing_file_blocks_apply(files: Files) -> None:
    ms = files.add("V1__a.sql", "V2__b.sql").set()
    rows = [*applied(ms, "1"), row(2, "1.5", script="V1.5__gone.sql", checksum="ab" * 32)]
    state = state_from_rows(rows)
    assert [p.kind for p in find_problems(ms, state, Strategy.VERSIONED)] == ["missing_file"]
    with pytest.raises(ValidationFailed, match=r"V1\.5__gone\.sql"):
        plan_apply(ms, state, Strategy.VERSIONED)


def test_unknown_checksum_algorithm_blocks_apply(files: Files) -> None:
    ms = files.add(*FOUR).set()
    state = state_from_rows([row(1, "1", ms=ms, checksum="ab", algorithm="sha512-norm9")])
    assert [p.kind for p in find_problems(ms, state, Strategy.VERSIONED)] == ["unknown_algorithm"]
    with pytest.raises(ValidationFailed, match="sha512-norm9"):
        plan_apply(ms, state, Strategy.VERSIONED)


def test_row_without_checksum_is_not_checked(files: Files) -> None:
    ms = files.add(*FOUR).set()
    state = state_from_rows([row(1, "1", checksum=None, script="V1__a.sql")])
    assert labels(plan_apply(ms, state, Strategy.VERSIONED)) == ["2", "3", "4"]


def _out_of_order(files: Files) -> tuple[MigrationSet, AppliedState]:
    ms = files.add(*FOUR).set()
    return ms, state_from_rows(applied(ms, "1", "3"))


def test_out_of_order_refused_by_default(files: Files) -> None:
    ms, state = _out_of_order(files)
    with pytest.raises(StrategyError, match=r"versions 2 are older than the applied 3") as info:
        plan_apply(ms, state, Strategy.VERSIONED)
    assert info.value.hint is not None
    assert "--out-of-order" in info.value.hint
    problems = find_problems(ms, state, Strategy.VERSIONED)
    assert [(p.kind, p.version) for p in problems] == [("out_of_order", "2")]


def test_out_of_order_allowed(files: Files) -> None:
    ms, state = _out_of_order(files)
    steps = plan_apply(ms, state, Strategy.VERSIONED, allow_out_of_order=True)
    assert labels(steps) == ["2", "4"]


def test_forward_only_always_refuses_out_of_order(files: Files) -> None:
    ms, state = _out_of_order(files)
    for allow in (False, True):
        with pytest.raises(StrategyError, match="forward_only"):
            plan_apply(ms, state, Strategy.FORWARD_ONLY, allow_out_of_order=allow)


def test_out_of_order_below_to_limit_only(files: Files) -> None:
    ms = files.add(*FOUR, "V5__e.sql").set()
    state = state_from_rows(applied(ms, "1", "4"))
    with pytest.raises(StrategyError, match=r"versions 2, 3 are older"):
        plan_apply(ms, state, Strategy.VERSIONED, to=V("5"))


def test_branching_has_no_out_of_order(files: Files) -> None:
    files.add("V1__a.sql", "V3__c.sql")
    files.add("V2__b.sql", content="-- ferry:branch x\n-- ferry:requires 1\n")
    ms = files.set(branching=True)
    state = state_from_rows(applied(ms, "1", "3"))
    assert find_problems(ms, state, Strategy.BRANCHING) == []
    assert labels(plan_apply(ms, state, Strategy.BRANCHING)) == ["2"]


def test_branching_apply_to_takes_only_ancestors(files: Files) -> None:
    files.add("V1__a.sql", "V2__b.sql")
    files.add("V3__c.sql", content="-- ferry:branch x\n-- ferry:requires 1\n")
    files.add("V4__d.sql", content="-- ferry:branch x\n")
    ms = files.set(branching=True)
    steps = plan_apply(ms, AppliedState(), Strategy.BRANCHING, to=V("4"))
    assert labels(steps) == ["1", "3", "4"]


def test_failed_row_with_progress_resumes(files: Files) -> None:
    ms = files.add(*FOUR).set()
    failed = row(3, "3", ms=ms, success=False, done=2, total=5)
    state = state_from_rows([*applied(ms, "1", "2"), failed])
    steps = plan_apply(ms, state, Strategy.VERSIONED)
    assert labels(steps) == ["3", "4"]
    assert steps[0].resume_from == 2
    assert steps[0].resumes == failed
    assert "2 of 5" in steps[0].reason
    assert steps[1].resume_from == 0
    assert steps[1].resumes is None
    assert [p.kind for p in find_problems(ms, state, Strategy.VERSIONED)] == ["failed"]


def test_failed_row_without_progress_retries(files: Files) -> None:
    ms = files.add(*FOUR).set()
    failed = row(3, "3", ms=ms, success=False, done=0, total=5)
    state = state_from_rows([*applied(ms, "1", "2"), failed])
    steps = plan_apply(ms, state, Strategy.VERSIONED)
    assert labels(steps) == ["3", "4"]
    assert steps[0].resume_from == 0
    assert steps[0].resumes == failed
    assert "retry" in steps[0].reason


def test_failed_below_max_is_not_out_of_order(files: Files) -> None:
    ms = files.add(*FOUR).set()
    rows = [*applied(ms, "1"), row(2, "2", ms=ms, success=False, done=1), row(3, "3", ms=ms)]
    state = state_from_rows(rows)
    steps = plan_apply(ms, state, Strategy.VERSIONED)
    assert labels(steps) == ["2", "4"]
    assert steps[0].resume_from == 1


def test_undo_rows_make_a_version_pending_again(files: Files) -> None:
    ms = files.add(*FOUR_WITH_UNDO).set()
    rows = [
        *applied(ms, "1", "2", "3"),
        row(4, "3", ms=ms, type=RowType.UNDO_SQL),
        row(5, "2", ms=ms, type=RowType.UNDO_PYTHON),
    ]
    state = state_from_rows(rows)
    assert set(state.applied) == {V("1")}
    assert labels(plan_apply(ms, state, Strategy.VERSIONED)) == ["2", "3", "4"]
    assert find_problems(ms, state, Strategy.VERSIONED) == []


def test_reapplied_after_undo_is_applied(files: Files) -> None:
    ms = files.add(*FOUR_WITH_UNDO).set()
    rows = [
        *applied(ms, "1", "2"),
        row(3, "2", ms=ms, type=RowType.UNDO_SQL),
        row(4, "2", ms=ms),
    ]
    assert labels(plan_apply(ms, state_from_rows(rows), Strategy.VERSIONED)) == ["3", "4"]


def test_delete_row_forgets_a_version(files: Files) -> None:
    ms = files.add("V1__a.sql", "V2__b.sql").set()
    rows = [
        *applied(ms, "1"),
        row(2, "1.5", script="V1.5__gone.sql", checksum="ab" * 32),
        row(3, "1.5", type=RowType.DELETE, script="V1.5__gone.sql"),
    ]
    state = state_from_rows(rows)
    assert labels(plan_apply(ms, state, Strategy.VERSIONED)) == ["2"]


# --- repeatables ------------------------------------------------------------------------


def test_new_repeatables_are_planned_after_versions(files: Files) -> None:
    ms = files.add("V1__a.sql", "R__b_view.sql", "R__a_view.sql").set()
    steps = plan_apply(ms, AppliedState(), Strategy.VERSIONED)
    assert labels(steps) == ["1", "a view", "b view"]
    assert [s.action for s in steps] == [Action.APPLY, Action.APPLY, Action.APPLY]
    assert steps[1].migration is None
    assert steps[1].label == "a view"


def test_unchanged_repeatable_is_not_planned(files: Files) -> None:
    ms = files.add("V1__a.sql", "R__view.sql").set()
    state = state_from_rows([*applied(ms, "1"), row(2, None, ms=ms, description="view")])
    assert plan_apply(ms, state, Strategy.VERSIONED) == []


def test_changed_repeatable_is_reapplied(files: Files) -> None:
    ms = files.add("V1__a.sql", "R__view.sql").set()
    rows = [*applied(ms, "1"), row(2, None, ms=ms, description="view")]
    (files.folder / "R__view.sql").write_text("CREATE VIEW v AS SELECT 2;\n", "utf-8")
    steps = plan_apply(files.set(), state_from_rows(rows), Strategy.VERSIONED)
    assert [(s.action, s.label) for s in steps] == [(Action.REAPPLY, "view")]
    assert steps[0].reason == "checksum changed"


def test_repeatable_with_unknown_algorithm_is_reapplied(files: Files) -> None:
    ms = files.add("R__view.sql").set()
    state = state_from_rows([row(1, None, description="view", checksum="ab", algorithm="zz")])
    assert [s.action for s in plan_apply(ms, state, Strategy.VERSIONED)] == [Action.REAPPLY]


def test_repeatable_planned_under_to_limit_too(files: Files) -> None:
    ms = files.add(*FOUR, "R__view.sql").set()
    steps = plan_apply(ms, AppliedState(), Strategy.VERSIONED, to=V("1"))
    assert labels(steps) == ["1", "view"]


# --- undo -------------------------------------------------------------------------------


def _undo_state(files: Files) -> tuple[MigrationSet, AppliedState]:
    # Applied out of order: 1, 3, 2 (installed_rank 1, 2, 3).
    ms = files.add(*FOUR_WITH_UNDO).set()
    return ms, state_from_rows(applied(ms, "1", "3", "2"))


def test_undo_one_by_default_newest_by_rank(files: Files) -> None:
    ms, state = _undo_state(files)
    steps = plan_undo(ms, state, Strategy.VERSIONED)
    assert labels(steps) == ["2"]
    assert steps[0].action is Action.UNDO
    assert steps[0].script.name == "U2__b.sql"
    migration = ms.get(V("2"))
    assert migration is not None
    assert steps[0].migration is migration
    assert not steps[0].partial_undo
    assert steps[0].resumes is None


@pytest.mark.parametrize(
    ("steps", "expected"),
    [(1, ["2"]), (2, ["2", "3"]), (3, ["2", "3", "1"]), (10, ["2", "3", "1"])],
)
def test_undo_steps(files: Files, steps: int, expected: list[str]) -> None:
    ms, state = _undo_state(files)
    assert labels(plan_undo(ms, state, Strategy.VERSIONED, steps=steps)) == expected


@pytest.mark.parametrize(
    ("to", "expected"), [("3", []), ("2", ["3"]), ("1", ["2", "3"]), ("0", ["2", "3", "1"])]
)
def test_undo_to(files: Files, to: str, expected: list[str]) -> None:
    ms, state = _undo_state(files)
    assert labels(plan_undo(ms, state, Strategy.VERSIONED, to=V(to))) == expected


def test_undo_to_unknown_version_raises(files: Files) -> None:
    ms, state = _undo_state(files)
    with pytest.raises(StrategyError, match=r"2\.5"):
        plan_undo(ms, state, Strategy.VERSIONED, to=V("2.5"))


def test_undo_to_and_steps_together_raise(files: Files) -> None:
    ms, state = _undo_state(files)
    with pytest.raises(StrategyError, match="either"):
        plan_undo(ms, state, Strategy.VERSIONED, to=V("1"), steps=1)


@pytest.mark.parametrize("steps", [-1, -3])
def test_undo_negative_steps_raise(files: Files, steps: int) -> None:
    # `newest_first[:-1]` would undo everything except the oldest migration.
    ms, state = _undo_state(files)
    with pytest.raises(StrategyError):
        plan_undo(ms, state, Strategy.VERSIONED, steps=steps)


def test_undo_to_baseline(files: Files) -> None:
    ms = files.add(*FOUR_WITH_UNDO).set()
    rows = [row(1, "2", type=RowType.BASELINE, description="<< baseline >>")]
    rows += [row(2, "3", ms=ms), row(3, "4", ms=ms)]
    state = state_from_rows(rows)
    assert labels(plan_undo(ms, state, Strategy.VERSIONED, to=V("2"))) == ["4", "3"]


def test_undo_nothing_applied(files: Files) -> None:
    ms = files.add(*FOUR_WITH_UNDO).set()
    assert plan_undo(ms, AppliedState(), Strategy.VERSIONED) == []
    assert plan_undo(ms, AppliedState(), Strategy.VERSIONED, to=V("0")) == []


def test_undo_without_undo_script_names_the_expected_file(files: Files) -> None:
    ms = files.add("V1__a.sql", "U1__a.sql", "V2__add_email_column.sql").set()
    state = state_from_rows(applied(ms, "1", "2"))
    with pytest.raises(MigrationFileError, match=r"U2__add_email_column\.sql") as info:
        plan_undo(ms, state, Strategy.VERSIONED)
    assert info.value.file == files.folder / "U2__add_email_column.sql"
    assert info.value.hint


def test_undo_without_undo_script_dotted_version(files: Files) -> None:
    ms = files.add("V1_1__x_y.py").set()
    state = state_from_rows(applied(ms, "1.1"))
    with pytest.raises(MigrationFileError) as info:
        plan_undo(ms, state, Strategy.VERSIONED)
    assert info.value.file.name == "U1.1__x_y.py"


def test_undo_checks_every_step_before_planning(files: Files) -> None:
    ms = files.add("V1__a.sql", "V2__b.sql", "U2__b.sql").set()
    state = state_from_rows(applied(ms, "1", "2"))
    assert labels(plan_undo(ms, state, Strategy.VERSIONED)) == ["2"]
    with pytest.raises(MigrationFileError, match=r"U1__a\.sql"):
        plan_undo(ms, state, Strategy.VERSIONED, to=V("0"))


def test_python_downgrade_is_used_for_undo(files: Files) -> None:
    files.add("V1__a.py", content="def upgrade(ctx):\n    pass\ndef downgrade(ctx):\n    pass\n")
    ms = files.set()
    state = state_from_rows([row(1, "1", ms=ms, type=RowType.PYTHON)])
    steps = plan_undo(ms, state, Strategy.VERSIONED)
    assert [s.script.name for s in steps] == ["V1__a.py"]


def test_undo_applied_file_gone_raises(files: Files) -> None:
    ms = files.add("V1__a.sql", "U1__a.sql").set()
    rows = [*applied(ms, "1"), row(2, "2", script="V2__gone.sql", checksum="ab" * 32)]
    with pytest.raises(MigrationFileError, match=r"V2__gone\.sql"):
        plan_undo(ms, state_from_rows(rows), Strategy.VERSIONED)


def test_forward_only_refuses_undo(files: Files) -> None:
    ms, state = _undo_state(files)
    for kwargs in ({}, {"steps": 1}, {"to": V("0")}):
        with pytest.raises(StrategyError, match="forward_only") as info:
            plan_undo(ms, state, Strategy.FORWARD_ONLY, **kwargs)  # type: ignore[arg-type]
        assert info.value.hint


def test_undo_half_applied_migration(files: Files) -> None:
    ms = files.add(*FOUR_WITH_UNDO).set()
    failed = row(3, "3", ms=ms, success=False, done=2, total=4)
    state = state_from_rows([*applied(ms, "1", "2"), failed])
    steps = plan_undo(ms, state, Strategy.VERSIONED)
    assert labels(steps) == ["3"]
    assert steps[0].partial_undo
    assert steps[0].resumes == failed
    assert steps[0].resume_from == 0


def test_undo_failed_apply_without_progress_is_skipped(files: Files) -> None:
    ms = files.add(*FOUR_WITH_UNDO).set()
    failed = row(3, "3", ms=ms, success=False, done=0, total=4)
    state = state_from_rows([*applied(ms, "1", "2"), failed])
    assert labels(plan_undo(ms, state, Strategy.VERSIONED)) == ["2"]


def test_undo_resumes_a_failed_undo(files: Files) -> None:
    ms = files.add(*FOUR_WITH_UNDO).set()
    failed = row(3, "2", ms=ms, type=RowType.UNDO_SQL, success=False, done=1, total=3)
    state = state_from_rows([*applied(ms, "1", "2"), failed])
    steps = plan_undo(ms, state, Strategy.VERSIONED)
    assert labels(steps) == ["2"]
    assert steps[0].resume_from == 1
    assert steps[0].resumes == failed
    assert not steps[0].partial_undo


def test_undo_branching_to_keeps_ancestors(files: Files) -> None:
    files.add("V1__a.sql", "U1__a.sql", "V2__b.sql", "U2__b.sql", "U3__c.sql")
    files.add("V3__c.sql", content="-- ferry:branch x\n-- ferry:requires 1\n")
    ms = files.set(branching=True)
    state = state_from_rows(applied(ms, "1", "2", "3"))
    # Undo down to 3 keeps 3 and its ancestor 1; version 2 (main) goes.
    assert labels(plan_undo(ms, state, Strategy.BRANCHING, to=V("3"))) == ["2"]
