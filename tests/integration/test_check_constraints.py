"""Rows that break a CHECK constraint the database was told not to enforce are reported by
verify's constraint checks, on every engine; rows that satisfy it, or whose check is NULL,
are not."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import MetaData, Table

from ferry.db.target import open_url
from ferry.validate.constraints import check_constraints
from ferry.validate.report import Category
from tests.conftest import engine_for, new_database

pytestmark = pytest.mark.integration

TABLE = (
    "CREATE TABLE counts (id INTEGER PRIMARY KEY, n INTEGER, "
    "CONSTRAINT n_not_negative CHECK (n >= 0))"
)


def _insert_unchecked(dialect: str, url: str) -> None:
    """Two violating rows, one good row and one NULL, past the CHECK."""
    rows = "INSERT INTO counts VALUES (1, 5), (2, -1), (3, -7), (4, NULL)"
    if dialect == "sqlite":
        raw = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            raw.execute("PRAGMA ignore_check_constraints = ON")
            raw.execute(rows)
            raw.commit()
        finally:
            raw.close()
        return
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            if dialect == "mysql":
                conn.exec_driver_sql("SET SESSION check_constraint_checks = 0")
                conn.exec_driver_sql(rows)
            else:  # PostgreSQL: rows first, then the check NOT VALID
                conn.exec_driver_sql("ALTER TABLE counts DROP CONSTRAINT n_not_negative")
                conn.exec_driver_sql(rows)
                conn.exec_driver_sql(
                    "ALTER TABLE counts ADD CONSTRAINT n_not_negative CHECK (n >= 0) NOT VALID"
                )
    finally:
        engine.dispose()


def _check(url: str) -> Category:
    target = open_url("t", url)
    engine = engine_for(url)
    try:
        table = Table("counts", MetaData(), autoload_with=engine)
        category = Category()
        check_constraints(target, [table], category)
        return category
    finally:
        engine.dispose()
        target.dispose()


def test_rows_breaking_an_unenforced_check_are_reported(dialect: str, tmp_path: Path) -> None:
    url, drop = new_database(dialect, tmp_path)
    try:
        engine = engine_for(url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(TABLE)
        finally:
            engine.dispose()
        assert _check(url).status == "passed"

        _insert_unchecked(dialect, url)
        category = _check(url)
        assert category.status == "failed"
        assert len(category.errors) == 1
        assert category.errors[0].startswith("`counts`: 2 rows break CHECK n_not_negative (")
    finally:
        drop()
