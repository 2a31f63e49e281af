"""Tests for the version graph: linking, topological order, heads and ancestors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.errors import BranchError, MigrationFileError
from ferry.schema.dag import ancestors, heads, link, topological_order
from ferry.schema.scripts import DEFAULT_BRANCH, MigrationSet, discover
from ferry.schema.version import Version


def build(folder: Path, files: dict[str, str]) -> MigrationSet:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_text(content + "\nSELECT 1;\n", encoding="utf-8")
    return discover([folder])


def versions(items: object) -> list[str]:
    return [str(m.version) for m in items]  # type: ignore[attr-defined]


def parents(migrations: MigrationSet) -> dict[str, tuple[str, ...]]:
    return {str(m.version): tuple(str(p) for p in m.parents) for m in migrations.versioned}


def branches(migrations: MigrationSet) -> dict[str, str]:
    return {str(m.version): m.branch for m in migrations.versioned}


V = Version


# A fork: 1 <- 2 (main) and 1 <- 3 <- 4 (feature), with 5 merging 2 and 4 on main.
FORKED = {
    "V1__base.sql": "",
    "V2__main_work.sql": "",
    "V3__feature_start.sql": "-- ferry:branch feature\n-- ferry:requires 1",
    "V4__feature_more.sql": "-- ferry:branch feature",
}


# --- link -------------------------------------------------------------------------------


def test_linear_chaining_without_branching(tmp_path: Path) -> None:
    ms = build(tmp_path, {"V1__a.sql": "", "V1.5__b.sql": "", "V2__c.sql": "", "V10__d.sql": ""})
    link(ms, branching=False)
    assert parents(ms) == {"1": (), "1.5": ("1",), "2": ("1.5",), "10": ("2",)}
    assert set(branches(ms).values()) == {DEFAULT_BRANCH}
    assert versions(heads(ms)) == ["10"]


def test_directives_are_ignored_without_branching(tmp_path: Path) -> None:
    ms = build(tmp_path, FORKED)
    link(ms, branching=False)
    assert parents(ms) == {"1": (), "2": ("1",), "3": ("2",), "4": ("3",)}
    assert set(branches(ms).values()) == {DEFAULT_BRANCH}


def test_empty_set_links(tmp_path: Path) -> None:
    ms = build(tmp_path, {})
    link(ms, branching=True)
    assert heads(ms) == []
    assert topological_order(ms.versioned) == []


def test_branching_reads_requires_and_branch(tmp_path: Path) -> None:
    ms = build(tmp_path, FORKED)
    link(ms, branching=True)
    assert parents(ms) == {"1": (), "2": ("1",), "3": ("1",), "4": ("3",)}
    assert branches(ms) == {"1": "main", "2": "main", "3": "feature", "4": "feature"}
    assert versions(heads(ms)) == ["2", "4"]


def test_branching_without_directives_is_linear(tmp_path: Path) -> None:
    ms = build(tmp_path, {"V1__a.sql": "", "V2__b.sql": "", "V3__c.sql": ""})
    link(ms, branching=True)
    assert parents(ms) == {"1": (), "2": ("1",), "3": ("2",)}
    assert versions(heads(ms)) == ["3"]


def test_merge_with_several_requires(tmp_path: Path) -> None:
    ms = build(tmp_path, {**FORKED, "V5__merge.sql": "-- ferry:requires 2, 4"})
    link(ms, branching=True)
    assert parents(ms)["5"] == ("2", "4")
    # The merge takes the branch of its first requirement.
    assert branches(ms)["5"] == "main"
    assert versions(heads(ms)) == ["5"]
    # The next main migration follows the merge.
    ms = build(tmp_path / "b", {**FORKED, "V5__merge.sql": "-- ferry:requires 4, 2"})
    link(ms, branching=True)
    assert branches(ms)["5"] == "feature"


def test_requires_on_main_follows_after(tmp_path: Path) -> None:
    ms = build(
        tmp_path,
        {**FORKED, "V5__after_merge.sql": "-- ferry:requires 2, 4", "V6__next.sql": ""},
    )
    link(ms, branching=True)
    assert parents(ms)["6"] == ("5",)


def test_branch_first_migration_without_requires_raises(tmp_path: Path) -> None:
    ms = build(tmp_path, {"V1__a.sql": "", "V2__b.sql": "-- ferry:branch feature"})
    with pytest.raises(MigrationFileError, match="feature") as info:
        link(ms, branching=True)
    assert info.value.file.name == "V2__b.sql"
    assert info.value.hint is not None
    assert "ferry:requires" in info.value.hint


def test_requires_unknown_version_raises(tmp_path: Path) -> None:
    ms = build(tmp_path, {"V1__a.sql": "", "V2__b.sql": "-- ferry:requires 1, 1.5"})
    with pytest.raises(MigrationFileError, match=r"1\.5") as info:
        link(ms, branching=True)
    assert info.value.file.name == "V2__b.sql"


@pytest.mark.parametrize(
    "files",
    [
        pytest.param(
            {
                "V1__a.sql": "",
                "V2__b.sql": "-- ferry:branch x\n-- ferry:requires 3",
                "V3__c.sql": "-- ferry:branch y\n-- ferry:requires 2",
            },
            id="two-cycle",
        ),
        pytest.param({"V1__a.sql": "", "V2__b.sql": "-- ferry:requires 2"}, id="self"),
        pytest.param(
            {
                "V1__a.sql": "-- ferry:requires 3",
                "V2__b.sql": "-- ferry:requires 1",
                "V3__c.sql": "-- ferry:requires 2",
            },
            id="three-cycle",
        ),
    ],
)
def test_cycle_raises_branch_error(tmp_path: Path, files: dict[str, str]) -> None:
    ms = build(tmp_path, files)
    with pytest.raises(BranchError, match="cycle") as info:
        link(ms, branching=True)
    assert info.value.hint


def test_cycle_names_the_stuck_versions(tmp_path: Path) -> None:
    ms = build(
        tmp_path,
        {
            "V1__a.sql": "",
            "V2__b.sql": "-- ferry:branch x\n-- ferry:requires 3",
            "V3__c.sql": "-- ferry:branch y\n-- ferry:requires 2",
        },
    )
    with pytest.raises(BranchError, match=r"among versions 2, 3\n"):
        link(ms, branching=True)


def test_relinking_is_stable(tmp_path: Path) -> None:
    ms = build(tmp_path, FORKED)
    link(ms, branching=True)
    first = parents(ms), branches(ms)
    link(ms, branching=True)
    assert (parents(ms), branches(ms)) == first
    link(ms, branching=False)
    assert parents(ms)["3"] == ("2",)


# --- topological order ------------------------------------------------------------------


def test_topological_order_lowest_version_first(tmp_path: Path) -> None:
    # 1 <- 2 (x) <- 4 (x); 1 <- 3 (main). Depth-first would give 1, 2, 4, 3.
    ms = build(
        tmp_path,
        {
            "V1__a.sql": "",
            "V2__b.sql": "-- ferry:branch x\n-- ferry:requires 1",
            "V3__c.sql": "",
            "V4__d.sql": "-- ferry:branch x",
        },
    )
    link(ms, branching=True)
    assert versions(topological_order(ms.versioned)) == ["1", "2", "3", "4"]


def test_topological_order_puts_parents_first(tmp_path: Path) -> None:
    # 2 requires 3, which comes later in version order.
    ms = build(
        tmp_path,
        {"V1__a.sql": "", "V2__b.sql": "-- ferry:branch x\n-- ferry:requires 3", "V3__c.sql": ""},
    )
    link(ms, branching=True)
    assert parents(ms) == {"1": (), "2": ("3",), "3": ("1",)}
    assert versions(topological_order(ms.versioned)) == ["1", "3", "2"]


def test_topological_order_ignores_input_order(tmp_path: Path) -> None:
    ms = build(tmp_path, {**FORKED, "V5__merge.sql": "-- ferry:requires 4, 2", "V6__x.sql": ""})
    link(ms, branching=True)
    expected = versions(topological_order(ms.versioned))
    assert versions(topological_order(reversed(ms.versioned))) == expected
    assert versions(topological_order(sorted(ms.versioned, key=lambda m: m.description))) == (
        expected
    )
    order = expected
    for m in ms.versioned:
        for p in m.parents:
            assert order.index(str(p)) < order.index(str(m.version))


def test_topological_order_of_a_subset(tmp_path: Path) -> None:
    ms = build(tmp_path, FORKED)
    link(ms, branching=True)
    subset = [m for m in ms.versioned if m.version != V("1")]
    assert versions(topological_order(subset)) == ["2", "3", "4"]


# --- heads and ancestors ----------------------------------------------------------------


def test_ancestors(tmp_path: Path) -> None:
    ms = build(tmp_path, {**FORKED, "V5__merge.sql": "-- ferry:requires 2, 4"})
    link(ms, branching=True)
    assert ancestors(ms, V("4")) == {V("1"), V("3"), V("4")}
    assert ancestors(ms, V("2")) == {V("1"), V("2")}
    assert ancestors(ms, V("1")) == {V("1")}
    assert ancestors(ms, V("5")) == {V(v) for v in ["1", "2", "3", "4", "5"]}
    # An unknown version (e.g. a baseline) is its own only ancestor.
    assert ancestors(ms, V("0")) == {V("0")}


def test_ancestors_linear(tmp_path: Path) -> None:
    ms = build(tmp_path, FORKED)
    link(ms, branching=False)
    assert ancestors(ms, V("3")) == {V("1"), V("2"), V("3")}


def test_heads_of_three_branches(tmp_path: Path) -> None:
    ms = build(
        tmp_path,
        {
            "V1__a.sql": "",
            "V2__b.sql": "-- ferry:branch x\n-- ferry:requires 1",
            "V3__c.sql": "-- ferry:branch y\n-- ferry:requires 1",
            "V4__d.sql": "-- ferry:branch x",
            "V5__e.sql": "",
        },
    )
    link(ms, branching=True)
    assert parents(ms)["5"] == ("1",)
    assert versions(heads(ms)) == ["3", "4", "5"]
    assert {m.branch for m in heads(ms)} == {"main", "x", "y"}
