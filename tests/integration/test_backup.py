"""Backups and restore on every dialect: the round trip proves itself by its checksums."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from ferry.db.target import open_url
from ferry.rollback import BackupError, create_backup, list_backups, restore_backup
from tests.conftest import engine_for, new_database

pytestmark = pytest.mark.integration


def _fill(url: str) -> None:
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE cameras (id INTEGER PRIMARY KEY, name VARCHAR(50))"))
        conn.execute(
            text(
                "CREATE TABLE counts (id INTEGER PRIMARY KEY, camera_id INTEGER, "
                "n INTEGER, note VARCHAR(20))"
            )
        )
        conn.execute(
            text("INSERT INTO cameras VALUES (:i, :n)"),
            [{"i": i, "n": f"cam {i}"} for i in range(1, 21)],
        )
        conn.execute(
            text("INSERT INTO counts VALUES (:i, :c, :n, :t)"),
            [
                {"i": i, "c": i % 20 + 1, "n": i * 3, "t": None if i % 7 else 'x,"y"'}
                for i in range(1, 501)
            ],
        )
    engine.dispose()


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = engine_for(url)
    with engine.connect() as conn:
        found = [tuple(r) for r in conn.execute(text(sql))]
    engine.dispose()
    return found


def test_backup_and_restore_round_trip(dialect: str, tmp_path: Path) -> None:
    url, drop = new_database(dialect, tmp_path)
    try:
        _fill(url)
        before = _rows(url, "SELECT * FROM counts ORDER BY id")
        target = open_url("t", url)
        made = create_backup(target, tmp_path / "backups")
        assert made.tables["counts"]["rows"] == 500
        assert made.tables["cameras"]["rows"] == 20
        assert [b.id for b in list_backups(tmp_path / "backups")] == [made.id]
        engine = engine_for(url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM counts WHERE id > 100"))
            conn.execute(text("UPDATE cameras SET name = 'changed'"))
        engine.dispose()
        proof = restore_backup(open_url("t", url), tmp_path / "backups", made.id)
        assert proof["tables"] == made.tables
        assert _rows(url, "SELECT * FROM counts ORDER BY id") == before
        assert _rows(url, "SELECT DISTINCT name FROM cameras WHERE name = 'changed'") == []
        target.dispose()
    finally:
        drop()


def test_restore_refuses_a_backup_of_another_database(tmp_path: Path) -> None:
    first, drop_first = new_database("sqlite", tmp_path)
    second, drop_second = new_database("sqlite", tmp_path)
    try:
        _fill(first)
        made = create_backup(open_url("a", first), tmp_path / "backups")
        with pytest.raises(BackupError, match="not of target"):
            restore_backup(open_url("b", second), tmp_path / "backups", made.id)
        with pytest.raises(BackupError, match="no backup"):
            restore_backup(open_url("a", first), tmp_path / "backups", "nope")
    finally:
        drop_first()
        drop_second()


def test_unwritable_location_fails_before_anything(tmp_path: Path) -> None:
    url, drop = new_database("sqlite", tmp_path)
    try:
        _fill(url)
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(BackupError, match="cannot be written"):
            create_backup(open_url("t", url), blocker / "backups")
    finally:
        drop()
