"""plan, apply, status, history, undo to zero, validate and repair on every dialect."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from ferry.db.bookkeeping import FERRY_TABLES
from ferry.errors import MigrationFileError, StrategyError, ValidationFailed
from ferry.schema import commands
from tests.conftest import ProjectMaker, engine_for

pytestmark = pytest.mark.integration

V1 = "-- users\nCREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(50));\n"
V2 = (
    "CREATE TABLE cameras (id INTEGER PRIMARY KEY, owner_id INTEGER,\n"
    "  label VARCHAR(20) DEFAULT 'cam;era');\n"
    "INSERT INTO cameras (id, label) VALUES (1, 'it''s; fine');\n"
)
V3 = "ALTER TABLE users ADD COLUMN email VARCHAR(200);\n"


def _tables(url: str) -> set[str]:
    engine = engine_for(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _write_three(maker: ProjectMaker) -> None:
    maker.write("V1__create_users.sql", V1)
    maker.write("V2__create_cameras.sql", V2)
    maker.write("V1.1__add_email.sql", V3)
    maker.write("U1__create_users.sql", "DROP TABLE users;")
    maker.write("U2__create_cameras.sql", "DROP TABLE cameras;")
    maker.write("U1.1__add_email.sql", "ALTER TABLE users DROP COLUMN email;")


def test_apply_status_history_undo_round_trip(maker: ProjectMaker) -> None:
    _write_three(maker)
    project = maker.project()

    planned = commands.plan(project)
    assert [str(p.step.script.version) for p in planned.planned] == ["1", "1.1", "2"]
    assert _tables(maker.url) == set()  # plan changes nothing

    report = commands.apply(project)
    assert [r.status for r in report.results] == ["applied"] * 3
    assert {"users", "cameras", "schema_migrations"} <= _tables(maker.url)

    status = commands.status(project)
    assert [(line.version, line.state) for line in status.lines] == [
        ("1", "applied"),
        ("1.1", "applied"),
        ("2", "applied"),
    ]
    assert status.current == "2"
    rows = commands.history(project)
    assert [(str(r.version), str(r.type), r.success) for r in rows] == [
        ("1", "SQL", True),
        ("1.1", "SQL", True),
        ("2", "SQL", True),
    ]
    assert len({r.run_id for r in rows}) == 1
    assert all(r.checksum_algorithm == "sha256-norm1" for r in rows)

    assert commands.apply(project).results == []  # idempotent
    assert commands.validate(project) == []

    undone = commands.undo(project, to="0")
    assert [str(r.step.script.version) for r in undone.results] == ["2", "1.1", "1"]
    assert _tables(maker.url) - FERRY_TABLES == set()
    assert [line.state for line in commands.status(project).lines] == ["pending"] * 3
    # History keeps the story: three applies, three undos.
    assert [str(r.type) for r in commands.history(project)][-3:] == ["UNDO_SQL"] * 3

    commands.apply(project, to="1.1")
    assert [line.state for line in commands.status(project).lines] == [
        "applied",
        "applied",
        "pending",
    ]
    commands.undo(project, steps=1)
    assert [line.state for line in commands.status(project).lines] == [
        "applied",
        "pending",
        "pending",
    ]


def test_checksum_change_blocks_apply_until_repair(maker: ProjectMaker) -> None:
    _write_three(maker)
    project = maker.project()
    commands.apply(project)
    # Line endings, BOM and trailing blanks are not changes.
    maker.write("V1__create_users.sql", "\ufeff" + V1.replace("\n", "   \r\n") + "\n\n")
    assert commands.validate(project) == []
    maker.write("V1__create_users.sql", V1 + "-- edited\n")
    problems = commands.validate(project)
    assert [p.kind for p in problems] == ["checksum_mismatch"]
    maker.write("V3__more.sql", "CREATE TABLE more_things (id INTEGER);")
    with pytest.raises(ValidationFailed, match=r"V1__create_users\.sql changed"):
        commands.apply(project)
    repaired = commands.repair(project)
    assert repaired.checksums_realigned == ["1"]
    assert commands.validate(project) == []
    assert [r.status for r in commands.apply(project).results] == ["applied"]


def test_missing_file_and_out_of_order(maker: ProjectMaker) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER);")
    maker.write("V3__c.sql", "CREATE TABLE c (id INTEGER);")
    project = maker.project()
    commands.apply(project)
    maker.write("V2__b.sql", "CREATE TABLE b (id INTEGER);")
    assert [p.kind for p in commands.validate(project)] == ["out_of_order"]
    with pytest.raises(StrategyError, match="--out-of-order"):
        commands.apply(project)
    assert [
        str(r.step.script.version) for r in commands.apply(project, out_of_order=True).results
    ] == ["2"]
    (maker.migrations / "V3__c.sql").unlink()
    assert [p.kind for p in commands.validate(project)] == ["missing_file"]
    report = commands.repair(project)
    assert report.missing_marked_deleted == ["3"]
    assert commands.validate(project) == []


def test_forward_only_refuses_undo_and_out_of_order(maker: ProjectMaker) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER);")
    maker.write("V3__c.sql", "CREATE TABLE c (id INTEGER);")
    project = maker.project(strategy="forward_only")
    commands.apply(project)
    with pytest.raises(StrategyError, match="forward_only"):
        commands.undo(project)
    maker.write("V2__b.sql", "CREATE TABLE b (id INTEGER);")
    with pytest.raises(StrategyError, match="forward_only"):
        commands.apply(project, out_of_order=True)


def test_undo_without_script_is_refused_before_anything_runs(maker: ProjectMaker) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER);")
    maker.write("U1__a.sql", "DROP TABLE a;")
    maker.write("V2__b.sql", "CREATE TABLE b (id INTEGER);")
    project = maker.project()
    commands.apply(project)
    with pytest.raises(MigrationFileError, match=r"U2__b\.sql.*no undo script"):
        commands.undo(project, to="0")
    assert {"a", "b"} <= _tables(maker.url)


def test_baseline_adopts_existing_database(maker: ProjectMaker) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER);")
    maker.write("V2__b.sql", "CREATE TABLE b (id INTEGER);")
    project = maker.project()
    commands.baseline(project, version="1")
    report = commands.apply(project)
    assert [str(r.step.script.version) for r in report.results] == ["2"]
    states = [(line.version, line.state) for line in commands.status(project).lines]
    assert states == [("1", "baseline"), ("1", "below baseline"), ("2", "applied")]
    with pytest.raises(StrategyError, match="already has migration history"):
        commands.baseline(project, version="1")


def test_repeatable_runs_after_versioned_and_again_when_changed(maker: ProjectMaker) -> None:
    maker.write("V1__a.sql", "CREATE TABLE a (id INTEGER, n INTEGER);")
    maker.write(
        "R__a_view.sql", "DROP VIEW IF EXISTS a_view;\nCREATE VIEW a_view AS SELECT id FROM a;"
    )
    project = maker.project()
    names = [r.step.script.name for r in commands.apply(project).results]
    assert names == ["V1__a.sql", "R__a_view.sql"]
    assert commands.apply(project).results == []
    maker.write(
        "R__a_view.sql", "DROP VIEW IF EXISTS a_view;\nCREATE VIEW a_view AS SELECT id, n FROM a;"
    )
    assert [r.step.action for r in commands.apply(project).results] == ["reapply"]


def test_placeholders_and_python_migrations(maker: ProjectMaker) -> None:
    maker.write(
        "V1__a.sql",
        "CREATE TABLE ${prefix}_a (id INTEGER, who VARCHAR(50));\n"
        "INSERT INTO ${prefix}_a VALUES (1, '${ferry:target}');",
    )
    maker.write(
        "V2__seed.py",
        (
            "def upgrade(ctx):\n"
            "    ctx.execute(f\"INSERT INTO {ctx.placeholders['prefix']}_a VALUES (:i, :w)\",\n"
            "                {'i': 2, 'w': ctx.dialect})\n\n"
            "def downgrade(ctx):\n"
            '    ctx.execute("DELETE FROM cam_a WHERE id = 2")\n'
        ),
    )
    project = maker.project(
        extra='placeholder_replacement = true\n\n[placeholders]\nprefix = "cam"'
    )
    commands.apply(project)
    engine = engine_for(maker.url)
    with engine.connect() as conn:
        rows = sorted(conn.exec_driver_sql("SELECT id, who FROM cam_a").all())
    assert rows[0] == (1, "t")
    assert rows[1][0] == 2
    commands.undo(project)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM cam_a").scalar() == 1
    engine.dispose()
    maker.write("V3__bad.sql", "SELECT '${nope}';")
    with pytest.raises(MigrationFileError, match=r"V3__bad.sql:1: placeholder `\$\{nope\}`"):
        commands.apply(project)
