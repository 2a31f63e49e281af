"""Tests for migration file names, directives and discovery."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ferry.errors import MigrationFileError
from ferry.schema.checksum import CURRENT_ALGORITHM, checksum
from ferry.schema.scripts import (
    Directives,
    Kind,
    Language,
    discover,
    parse_directives,
    read_script,
)
from ferry.schema.version import Version


def write(folder: Path, name: str, content: str = "SELECT 1;\n") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


# --- names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "version", "description", "language"),
    [
        ("V1__create_users.sql", Kind.VERSIONED, "1", "create users", Language.SQL),
        ("V1.1__add_email.sql", Kind.VERSIONED, "1.1", "add email", Language.SQL),
        ("V1_1__add_email.sql", Kind.VERSIONED, "1.1", "add email", Language.SQL),
        ("V2024.01.15.1__x.sql", Kind.VERSIONED, "2024.01.15.1", "x", Language.SQL),
        ("U1__create_users.sql", Kind.UNDO, "1", "create users", Language.SQL),
        ("V3__backfill_data.py", Kind.VERSIONED, "3", "backfill data", Language.PYTHON),
        ("U3__backfill_data.py", Kind.UNDO, "3", "backfill data", Language.PYTHON),
        ("R__active_users_view.sql", Kind.REPEATABLE, None, "active users view", Language.SQL),
        ("R__refresh_stats.py", Kind.REPEATABLE, None, "refresh stats", Language.PYTHON),
        ("V5__a.b.sql", Kind.VERSIONED, "5", "a.b", Language.SQL),
    ],
)
def test_names_parse(
    tmp_path: Path,
    name: str,
    kind: Kind,
    version: str | None,
    description: str,
    language: Language,
) -> None:
    path = write(tmp_path, name, "SELECT 1;\n")
    script = read_script(path)
    assert script is not None
    assert script.kind is kind
    assert script.version == (Version(version) if version else None)
    assert script.description == description
    assert script.language is language
    assert script.name == name
    assert script.path == path
    assert script.checksum == checksum(b"SELECT 1;\n")
    assert script.algorithm == CURRENT_ALGORITHM
    assert script.directives == Directives()


@pytest.mark.parametrize(
    "name",
    [
        "README.md",
        "notes.txt",
        "helpers.py",
        "__init__.py",
        "conftest.py",
        "Utils.py",
        ".V1__hidden.sql",
        "V1__backup.sql~",
        "V1__backup.sql.bak",
        "V1__compiled.pyc",
    ],
)
def test_non_migration_files_are_ignored(tmp_path: Path, name: str) -> None:
    assert read_script(write(tmp_path, name)) is None


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("create_users.sql", "V<version>__<description>.sql"),
        ("V1_create.sql", "V<version>__<description>.sql"),
        ("V1__.sql", "V<version>__<description>.sql"),
        ("R_view.sql", "V<version>__<description>.sql"),
        ("X1__a.sql", "V<version>__<description>.sql"),
        ("Vx__a.sql", "versions are numbers"),
        ("V1.a__b.sql", "versions are numbers"),
        ("V1..2__b.sql", "versions are numbers"),
        ("U-1__b.sql", "versions are numbers"),
        ("V1_create.py", "V<version>__<description>.sql"),
    ],
)
def test_bad_names_raise_with_file_and_hint(tmp_path: Path, name: str, hint: str) -> None:
    path = write(tmp_path, name)
    with pytest.raises(MigrationFileError, match=re.escape(name)) as info:
        read_script(path)
    assert info.value.file == path
    assert info.value.hint is not None
    assert hint in info.value.hint
    assert "hint:" in str(info.value)


def test_bad_name_raises_from_discover(tmp_path: Path) -> None:
    write(tmp_path, "V1__ok.sql")
    write(tmp_path, "create_users.sql")
    with pytest.raises(MigrationFileError, match=r"create_users\.sql") as info:
        discover([tmp_path])
    assert info.value.hint


def test_bom_and_line_endings_do_not_change_the_checksum(tmp_path: Path) -> None:
    a = write(tmp_path / "a", "V1__x.sql", "SELECT 1;\nSELECT 2;\n")
    b = tmp_path / "b" / "V1__x.sql"
    b.parent.mkdir()
    b.write_bytes(b"\xef\xbb\xbfSELECT 1;  \r\nSELECT 2;\r\n\r\n")
    sa, sb = read_script(a), read_script(b)
    assert sa is not None
    assert sb is not None
    assert sa.checksum == sb.checksum
    assert sb.read_text().startswith("SELECT 1;")


# --- directives -------------------------------------------------------------------------


def test_directives_in_sql(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "V3__x.sql",
        "-- ferry:no-transaction\n"
        "-- ferry:branch feature_x\n"
        "-- ferry:requires 1, 2.1\n"
        "CREATE INDEX CONCURRENTLY i ON t (c);\n",
    )
    script = read_script(path)
    assert script is not None
    assert script.directives == Directives(
        no_transaction=True, branch="feature_x", requires=(Version("1"), Version("2.1"))
    )


def test_directives_in_python(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "V4__py.py",
        '"""A Python migration."""\n'
        "# ferry:no-transaction\n"
        "# ferry:branch reports\n"
        "# ferry:requires 3\n"
        "\n"
        "def upgrade(ctx):\n"
        "    pass\n",
    )
    script = read_script(path)
    assert script is not None
    assert script.directives.no_transaction
    assert script.directives.branch == "reports"
    assert script.directives.requires == (Version("3"),)
    assert not script.has_downgrade


def test_directives_default_when_absent() -> None:
    directives = parse_directives("SELECT 1; -- not a directive\n", Path("V1__x.sql"))
    assert directives == Directives()
    assert directives.branch is None
    assert directives.requires == ()
    assert not directives.no_transaction


def test_indented_directive_and_allow_accumulates() -> None:
    directives = parse_directives(
        "  -- ferry:allow drop_table\n--ferry:allow a, b\n", Path("V1__x.sql")
    )
    assert directives.allow == ("drop_table", "a", "b")


def test_unknown_directive_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "V1__x.sql", "SELECT 1;\n\n-- ferry:no-transactions\nSELECT 2;\n")
    with pytest.raises(MigrationFileError, match=r"ferry:no-transactions") as info:
        read_script(path)
    assert info.value.line == 3
    assert f"{path}:3" in str(info.value)
    assert info.value.hint is not None
    assert "ferry:no-transaction" in info.value.hint


def test_unknown_directive_in_python_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "V2__x.py", "def upgrade(ctx):\n    pass\n# ferry:bogus\n")
    with pytest.raises(MigrationFileError, match=r"ferry:bogus") as info:
        discover([tmp_path])
    assert info.value.line == 3
    assert info.value.file == path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-- ferry:branch\n", "ferry:branch"),
        ("-- ferry:branch two words\n", "ferry:branch"),
        ("-- ferry:requires\n", "ferry:requires"),
        ("-- ferry:requires 1, x\n", "ferry:requires"),
        ("-- ferry:requires 1;2\n", "ferry:requires"),
    ],
)
def test_malformed_directive_arguments_raise(text: str, problem: str) -> None:
    with pytest.raises(MigrationFileError, match=re.escape(problem)) as info:
        parse_directives("SELECT 1;\n" + text, Path("V9__x.sql"))
    assert info.value.line == 2
    assert info.value.hint


def test_python_downgrade_counts_as_its_own_undo(tmp_path: Path) -> None:
    write(tmp_path, "V1__a.sql")
    py = write(
        tmp_path,
        "V2__py.py",
        "def upgrade(ctx):\n    pass\n\n\ndef downgrade(ctx):\n    pass\n",
    )
    write(tmp_path, "V3__no_undo.py", "def upgrade(ctx):\n    pass\n")
    found = discover([tmp_path])
    v2 = found.get(Version("2"))
    v3 = found.get(Version("3"))
    assert v2 is not None
    assert v3 is not None
    assert v2.script.has_downgrade
    assert v2.undo is v2.script
    assert v2.undo.path == py
    assert v3.undo is None
    v1 = found.get(Version("1"))
    assert v1 is not None
    assert v1.undo is None


def test_separate_undo_wins_over_downgrade(tmp_path: Path) -> None:
    write(tmp_path, "V2__py.py", "def upgrade(ctx):\n    pass\ndef downgrade(ctx):\n    pass\n")
    undo = write(tmp_path, "U2__py.sql", "DROP TABLE t;\n")
    found = discover([tmp_path])
    migration = found.get(Version("2"))
    assert migration is not None
    assert migration.undo is not None
    assert migration.undo.path == undo


# --- discovery --------------------------------------------------------------------------


def test_discover_sorts_numerically_and_pairs_undos(tmp_path: Path) -> None:
    for name in ["V1.10__c.sql", "V1.9__b.sql", "V2__d.sql", "V1__a.sql", "U1.9__b.sql"]:
        write(tmp_path, name)
    write(tmp_path, "R__b_view.sql")
    write(tmp_path, "R__a_view.sql")
    found = discover([tmp_path])
    assert [str(m.version) for m in found.versioned] == ["1", "1.9", "1.10", "2"]
    assert [m.description for m in found.versioned] == ["a", "b", "c", "d"]
    assert [s.description for s in found.repeatable] == ["a view", "b view"]
    with_undo = [str(m.version) for m in found.versioned if m.undo is not None]
    assert with_undo == ["1.9"]
    undo = found.get(Version("1.9"))
    assert undo is not None
    assert undo.undo is not None
    assert undo.undo.kind is Kind.UNDO
    assert found.get(Version("7")) is None
    assert set(found.by_version) == {Version(v) for v in ["1", "1.9", "1.10", "2"]}


def test_discover_ignores_non_migrations_and_recurses(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "# notes")
    write(tmp_path, "helpers.py", "X = 1\n")
    write(tmp_path, "__init__.py", "")
    write(tmp_path, "__pycache__/V9__cached.sql")
    write(tmp_path, "__pycache__/V8__x.cpython-311.pyc")
    write(tmp_path, "sub/deeper/V2__nested.sql")
    write(tmp_path, "V1__top.sql")
    found = discover([tmp_path])
    assert [str(m.version) for m in found.versioned] == ["1", "2"]
    assert found.repeatable == []


def test_discover_several_folders(tmp_path: Path) -> None:
    write(tmp_path / "a", "V1__a.sql")
    write(tmp_path / "b", "V2__b.sql")
    found = discover([tmp_path / "a", tmp_path / "b"])
    assert [str(m.version) for m in found.versioned] == ["1", "2"]


def test_empty_folder_is_an_empty_set(tmp_path: Path) -> None:
    found = discover([tmp_path])
    assert found.versioned == []
    assert found.repeatable == []


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("V1__a.sql", "V1.0__b.sql"),
        ("V2__a.sql", "V2__a.py"),
        ("V1.1__a.sql", "V1_1__b.sql"),
        ("U5__a.sql", "U5.0__b.sql"),
        ("R__my_view.sql", "R__my view.sql"),
        ("R__report.sql", "R__report.py"),
    ],
)
def test_duplicates_raise_naming_both_files(tmp_path: Path, first: str, second: str) -> None:
    write(tmp_path, "V5__base.sql")
    a = write(tmp_path, first)
    b = write(tmp_path, second)
    with pytest.raises(MigrationFileError) as info:
        discover([tmp_path])
    message = str(info.value)
    assert str(a) in message
    assert str(b) in message
    assert info.value.hint


def test_duplicate_across_folders(tmp_path: Path) -> None:
    a = write(tmp_path / "one", "V3__a.sql")
    b = write(tmp_path / "two", "V3__b.sql")
    with pytest.raises(MigrationFileError, match="version 3") as info:
        discover([tmp_path / "one", tmp_path / "two"])
    assert str(a) in str(info.value)
    assert str(b) in str(info.value)


def test_undo_without_migration_raises(tmp_path: Path) -> None:
    write(tmp_path, "V1__a.sql")
    orphan = write(tmp_path, "U2__b.sql")
    with pytest.raises(MigrationFileError, match=r"no V2__ migration") as info:
        discover([tmp_path])
    assert info.value.file == orphan
    assert info.value.hint


def test_missing_folder_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(MigrationFileError, match="does not exist") as info:
        discover([tmp_path, missing])
    assert info.value.file == missing
    assert info.value.hint is not None
    assert "migrations.folders" in info.value.hint


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "V1__a.sql")
    with pytest.raises(MigrationFileError, match="does not exist"):
        discover([path])


def test_directive_error_surfaces_from_discover(tmp_path: Path) -> None:
    write(tmp_path, "V1__a.sql", "-- ferry:requires nothing\n")
    with pytest.raises(MigrationFileError, match=r"V1__a\.sql:1"):
        discover([tmp_path])
