"""Branch, merge and rebase under the branching strategy on every dialect."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from ferry.db.bookkeeping import FERRY_TABLES
from ferry.errors import BranchError, StrategyError
from ferry.schema import branching, commands
from ferry.schema.dag import ancestors, heads
from ferry.schema.version import Version
from tests.conftest import ProjectMaker, engine_for, new_database

pytestmark = pytest.mark.integration

FEATURE = "-- ferry:branch feature\n"


def _tables(url: str) -> set[str]:
    engine = engine_for(url)
    try:
        return set(inspect(engine).get_table_names()) - FERRY_TABLES
    finally:
        engine.dispose()


def _recorded_branches(url: str) -> dict[str, str]:
    """The migration_branches table of a target, read directly."""
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT branch, head_version FROM migration_branches")
            return {str(branch): str(head) for branch, head in rows}
    finally:
        engine.dispose()


def _versions(report: commands.RunReport) -> list[str]:
    return [str(r.step.script.version) for r in report.results]


def _files(maker: ProjectMaker) -> list[str]:
    return sorted(p.name for p in maker.migrations.iterdir())


def _write_graph(maker: ProjectMaker) -> None:
    """main: V1, V2, V4; feature: V3 (requires 1), V5 (chained on its branch)."""
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n")
    maker.write("V2__b.sql", "CREATE TABLE b (id INTEGER PRIMARY KEY);\n")
    maker.write(
        "V3__f1.sql", FEATURE + "-- ferry:requires 1\nCREATE TABLE f1 (id INTEGER PRIMARY KEY);\n"
    )
    maker.write("V4__c.sql", "CREATE TABLE c (id INTEGER PRIMARY KEY);\n")
    maker.write("V5__f2.sql", FEATURE + "CREATE TABLE f2 (id INTEGER PRIMARY KEY);\n")
    for version, table in (("1", "a"), ("2", "b"), ("3", "f1"), ("4", "c"), ("5", "f2")):
        name = next(maker.migrations.glob(f"V{version}__*.sql")).name
        maker.write("U" + name[1:], f"DROP TABLE {table};\n")


def test_branch_apply_merge_undo_round_trip(maker: ProjectMaker) -> None:
    _write_graph(maker)
    project = maker.project(strategy="branching")

    found = branching.branches(project)
    assert [(b.name, b.head, b.migrations) for b in found] == [
        ("main", "4", ["1", "2", "4"]),
        ("feature", "5", ["3", "5"]),
    ]
    assert all(b.applied == {"t": ""} for b in found)
    graph = commands.load_migrations(project)
    assert [str(m.version) for m in heads(graph)] == ["4", "5"]
    assert {str(m.version): [str(p) for p in m.parents] for m in graph.versioned} == {
        "1": [],
        "2": ["1"],
        "3": ["1"],
        "4": ["2"],
        "5": ["3"],
    }

    assert [str(p.step.script.version) for p in commands.plan(project).planned] == [
        "1",
        "2",
        "3",
        "4",
        "5",
    ]
    assert _versions(commands.apply(project)) == ["1", "2", "3", "4", "5"]
    assert _tables(maker.url) == {"a", "b", "c", "f1", "f2"}
    assert _recorded_branches(maker.url) == {"main": "4", "feature": "5"}
    assert {b.name: b.applied for b in branching.branches(project)} == {
        "main": {"t": "4"},
        "feature": {"t": "5"},
    }
    status = commands.status(project)
    assert [(line.version, line.state, line.branch) for line in status.lines] == [
        ("1", "applied", "main"),
        ("2", "applied", "main"),
        ("3", "applied", "feature"),
        ("4", "applied", "main"),
        ("5", "applied", "feature"),
    ]
    assert [(str(r.version), r.branch) for r in commands.history(project)] == [
        ("1", "main"),
        ("2", "main"),
        ("3", "feature"),
        ("4", "main"),
        ("5", "feature"),
    ]
    assert commands.apply(project).results == []

    # Merge: V6 requires both heads, with an empty undo.
    written = branching.merge(project)
    assert [p.name for p in written] == ["V6__merge_main_feature.sql", "U6__merge_main_feature.sql"]
    merge_text = written[0].read_text(encoding="utf-8")
    assert "-- ferry:requires 4, 5\n" in merge_text.splitlines(keepends=True)
    assert "-- ferry:branch main\n" in merge_text.splitlines(keepends=True)
    assert written[1].exists()
    with pytest.raises(BranchError, match=r"only one head"):
        branching.merge(project)

    graph = commands.load_migrations(project)
    assert [str(m.version) for m in heads(graph)] == ["6"]
    assert [str(p) for p in heads(graph)[0].parents] == ["4", "5"]
    assert _versions(commands.apply(project)) == ["6"]
    assert _recorded_branches(maker.url) == {"main": "6", "feature": "5"}
    after_merge = {b.name: b for b in branching.branches(project)}
    assert after_merge["main"].head == "6"
    # feature still lists its own last migration, which the single head 6 now builds on.
    assert after_merge["feature"].head == "5"
    assert Version("5") in ancestors(graph, Version("6"))
    assert after_merge["main"].applied == {"t": "6"}
    assert [line.state for line in commands.status(project).lines] == ["applied"] * 6

    # Undo, newest first: the merge, then a feature migration.
    assert _versions(commands.undo(project)) == ["6"]
    assert _recorded_branches(maker.url) == {"main": "4", "feature": "5"}
    assert _versions(commands.undo(project)) == ["5"]
    assert _tables(maker.url) == {"a", "b", "c", "f1"}
    assert _recorded_branches(maker.url) == {"main": "4", "feature": "3"}
    commands.apply(project)  # 5 and 6 again
    assert _recorded_branches(maker.url) == {"main": "6", "feature": "5"}

    # Under branching, --to 2 undoes whatever 2 does not build on, newest first.
    assert _versions(commands.undo(project, to="2")) == ["6", "5", "4", "3"]
    assert _tables(maker.url) == {"a", "b"}
    assert _recorded_branches(maker.url) == {"main": "2"}
    assert [(line.version, line.state) for line in commands.status(project).lines] == [
        ("1", "applied"),
        ("2", "applied"),
        ("3", "pending"),
        ("4", "pending"),
        ("5", "pending"),
        ("6", "pending"),
    ]
    assert _versions(commands.undo(project, to="0")) == ["2", "1"]
    assert _tables(maker.url) == set()
    assert _recorded_branches(maker.url) == {}


def test_rebase_renumbers_the_branch_after_onto(maker: ProjectMaker) -> None:
    _write_graph(maker)
    project = maker.project(strategy="branching")
    assert _versions(commands.apply(project, to="2")) == ["1", "2"]

    changes = branching.rebase(project, "feature", onto="4")
    assert [(c.old, c.new) for c in changes] == [("3", "6"), ("5", "7")]
    assert [sorted(c.files) for c in changes] == [
        ["U6__f1.sql", "V6__f1.sql"],
        ["U7__f2.sql", "V7__f2.sql"],
    ]
    assert _files(maker) == [
        "U1__a.sql",
        "U2__b.sql",
        "U4__c.sql",
        "U6__f1.sql",
        "U7__f2.sql",
        "V1__a.sql",
        "V2__b.sql",
        "V4__c.sql",
        "V6__f1.sql",
        "V7__f2.sql",
    ]
    v6 = (maker.migrations / "V6__f1.sql").read_text(encoding="utf-8").splitlines()
    assert "-- ferry:requires 4" in v6
    assert "-- ferry:requires 1" not in v6
    assert "-- ferry:branch feature" in v6
    assert "CREATE TABLE f1 (id INTEGER PRIMARY KEY);" in v6
    v7 = (maker.migrations / "V7__f2.sql").read_text(encoding="utf-8").splitlines()
    assert "-- ferry:branch feature" in v7
    assert [line for line in v7 if "ferry:requires" in line] in ([], ["-- ferry:requires 6"])
    assert (maker.migrations / "U6__f1.sql").read_text(encoding="utf-8") == "DROP TABLE f1;\n"

    graph = commands.load_migrations(project)
    assert [str(m.version) for m in heads(graph)] == ["7"]
    assert [str(p) for p in heads(graph)[0].parents] == ["6"]
    assert [b.name for b in branching.branches(project)] == ["main", "feature"]
    # A second rebase onto the same head has nothing left to move.
    assert branching.rebase(project, "feature", onto="4") == []

    assert _versions(commands.apply(project)) == ["4", "6", "7"]
    assert _tables(maker.url) == {"a", "b", "c", "f1", "f2"}
    assert _recorded_branches(maker.url) == {"main": "4", "feature": "7"}
    assert commands.validate(project) == []


def test_rebase_refuses_when_the_branch_is_applied_on_a_target(
    maker: ProjectMaker, dialect: str, tmp_path: Path
) -> None:
    other_url, drop = new_database(dialect, tmp_path)
    try:
        _write_graph(maker)
        project = maker.project(strategy="branching", targets={"t": maker.url, "other": other_url})
        assert _versions(commands.apply(project, "other", to="3")) == ["1", "3"]
        assert _recorded_branches(other_url) == {"main": "1", "feature": "3"}
        assert {b.name: b.applied for b in branching.branches(project)} == {
            "main": {"t": "", "other": "1"},
            "feature": {"t": "", "other": "3"},
        }
        before = {p.name: p.read_bytes() for p in maker.migrations.iterdir()}

        with pytest.raises(BranchError, match=r"version 3 .*target `other`") as caught:
            branching.rebase(project, "feature", onto="4")
        assert "undo" in (caught.value.hint or "")
        assert {p.name: p.read_bytes() for p in maker.migrations.iterdir()} == before

        with pytest.raises(BranchError, match=r"no branch `nope`"):
            branching.rebase(project, "nope", onto="4")
        with pytest.raises(BranchError, match=r"no version 9"):
            branching.rebase(project, "feature", onto="9")
        assert {p.name: p.read_bytes() for p in maker.migrations.iterdir()} == before

        # Once undone there, the branch may move.
        assert _versions(commands.undo(project, "other", steps=1)) == ["3"]
        changes = branching.rebase(project, "feature", onto="4")
        assert [(c.old, c.new) for c in changes] == [("3", "6"), ("5", "7")]
    finally:
        drop()


def test_branch_commands_need_the_branching_strategy(tmp_path: Path) -> None:
    maker = ProjectMaker(tmp_path / "proj", f"sqlite:///{tmp_path / 'v.db'}")
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER);\n")
    maker.write("V2__b.sql", "CREATE TABLE b (id INTEGER);\n")
    project = maker.project()
    with pytest.raises(StrategyError, match=r"branching strategy"):
        branching.branches(project)
    with pytest.raises(StrategyError, match=r"branching strategy"):
        branching.rebase(project, "main", onto="1")
    with pytest.raises(StrategyError, match=r"branching strategy"):
        branching.merge(project)
    assert _files(maker) == ["V1__a.sql", "V2__b.sql"]
