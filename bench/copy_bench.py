"""Benchmark `ferry copy` from MariaDB into PostgreSQL, next to the physical limit, pgloader, dlt.

Two modes; both print figures (this is not a test) and exit non-zero only when something
broke (a copy failed, row counts differ).

Default mode (transforms on)
    A synthetic camera-counting source is generated in MariaDB database ``ferry_bench_src``
    (reused when it already holds ``--rows`` analytics rows; ``--regenerate`` forces it):

    * ``users`` (10,000: user_id, user_name, email_address, account_status 'A'/'I'/'S'/NULL,
      created_at; 3 % duplicates, 2 % malformed e-mails),
    * ``sites`` (50) and ``cameras`` (500: camera_id, camera_name, camera_location,
      is_active 'Y'/'N', owner_id -> users, site_id -> sites),
    * ``analytics`` (``--rows``, default 5,000,000: id BIGINT PK, camera_id INT -> cameras,
      count INT, timestamp DATETIME; index on (camera_id, timestamp)),
    * ``camera_events`` (rows / 25, FK and two secondary indexes) and ``user_cameras``
      (20,000, composite key, two FKs) -- used by ``--plain`` only.

    All of it is made by INSERT ... SELECT over MariaDB's sequence engine (``seq_1_to_N``).
    Then users, cameras and analytics are copied by ``copy_data`` into a fresh PostgreSQL
    database, with the camera-counting job's rules: renamed columns, value maps
    (account_status A/I/S -> active/inactive/suspended, is_active Y/N -> true/false), a NULL
    default, e-mail validation, de-duplication of users, ``timestamp`` -> ``recorded_at`` and
    derived columns ``hour = HOUR(recorded_at)`` and ``day = DATE(recorded_at)``. Ferry creates
    the tables and builds their secondary indexes and foreign keys after the data.

    The copy runs in a child interpreter, once per ``--workers`` value (default 1,2,4), each
    into its own fresh database. Printed per run: wall seconds of ``copy_data``, seconds until
    the last chunk was committed ("load s"; the rest is index/FK building), rows/s and MB/s
    (source bytes = InnoDB data_length from information_schema of the copied tables, and the
    Arrow width of the analytics rows), peak RSS of the child (VmHWM), the counts, and the
    time spent in each stage summed over the worker threads (read = connectorx query, transform,
    CSV = Arrow CSV writer, COPY = the COPY statement).

    Next to it, the physical limit: the analytics rows exported once to a TSV file with
    ``mariadb -B -N --quick`` and loaded by a plain ``COPY ... FROM STDIN`` (psycopg, file
    streamed; only the COPY is timed) into a table with the same primary key, and the same
    export piped straight into ``psql -c '\\copy ...'`` (one stream, end to end).

``--plain``
    The whole source database (6 tables, FKs, secondary indexes, no rules) is copied into a
    fresh PostgreSQL database by Ferry (tables created by Ferry, indexes and FKs after the data)
    and into another one by ``pgloader mysql://... postgresql://...`` (defaults). Both are timed
    as a process, wall clock; rows/s and the ratio are printed, and the row counts, indexes and
    foreign keys of both targets are compared with the source. Install pgloader with
    ``bash bench/setup.sh``.

``--plain --dlt``
    Also copies the source with dlt, tuned as in issue 3 ("connectorx reader, parquet files,
    ADBC loader"): ``bench/dlt_peer.py``, run by the separate virtual environment
    ``bench/.venv-dlt`` that ``bash bench/setup.sh`` makes, into a third fresh database:
    ``sql_database(backend="connectorx")`` streaming Arrow batches, ``loader_file_format=
    "parquet"`` (loaded into PostgreSQL through ADBC), ``write_disposition="replace"``, the
    same number of extract threads, normalize processes and load threads as Ferry's workers.
    Timed as a process, wall clock, like pgloader; its row counts are checked against the
    source and the ratio dlt / Ferry is printed, by process wall and by data alone (dlt's
    pipeline seconds against the moment Ferry's last chunk was committed). dlt creates the
    tables with no primary keys, secondary indexes or foreign keys (the table of counts shows
    what each target has), so its figure is for the data alone while Ferry's process wall
    includes its indexes and FKs. The benchmark then builds the source's keys on dlt's target
    (``build_keys_after``: the same statements, on as many connections, the heaviest index
    first) and prints "dlt + the same keys after", the time to the same end state as Ferry's.

``--plain --dataset employees``
    The same plain copy of another source, ``ferry_bench_employees``: a database shaped like
    MySQL's ``employees`` sample (github.com/datacharmer/test_db), on which issue 3's
    reference figures were measured (pgloader 13.4 s, tuned dlt 4.9 s for the data alone).
    Six tables, 3.9 million rows (salaries 2.85 million), its schema as it is: composite
    primary keys that hold dates and text, an ENUM, a unique key, FKs with ON DELETE CASCADE.
    Values are synthetic, the row counts per employee follow the sample's.

Run from the repository root with the project's virtual environment active::

    bash bench/setup.sh                              # once: pgloader, dlt venv (--plain)
    python bench/copy_bench.py --rows 1000000        # quick iteration
    python bench/copy_bench.py                       # 5,000,000 rows, workers 1,2,4
    python bench/copy_bench.py --workers 2 --profile # cProfile one synchronous copy
    python bench/copy_bench.py --plain               # Ferry next to pgloader
    python bench/copy_bench.py --plain --dlt         # ... and next to tuned dlt
    python bench/copy_bench.py --plain --dlt --dataset employees  # issue 3's reference shape
    python bench/copy_bench.py --plain --dlt --repeat 5  # medians of 5 interleaved rounds
    python bench/copy_bench.py --regenerate          # rebuild the source

Servers: MariaDB at ``--mysql`` (default ``root@127.0.0.1:3306``, no password) and PostgreSQL
at ``--pg`` (default ``postgres@127.0.0.1:5432``, a role that may create databases); the
``mariadb`` and ``psql`` clients on PATH. Targets are named ``ferry_bench_<pid>_<label>`` and
dropped at the end unless ``--keep``. The source is kept for the next run; drop it with::

    mariadb -h 127.0.0.1 -u root -e 'DROP DATABASE ferry_bench_src'

Targets: analytics with transforms >= 750,000 rows/s, peak RSS < 1 GiB, plain copy >= 2.5x
faster than pgloader and faster than tuned dlt (issue 3).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
import pymysql
from psycopg import sql

SOURCE_DB = "ferry_bench_src"
SOURCE_TAG = "ferry copy_bench source v1"
USERS = 10_000
SITES = 50
CAMERAS = 500
USER_CAMERAS = 20_000
EVENTS_PER_ANALYTICS = 25  # camera_events = rows / 25
TRANSFORM_TABLES = ("users", "cameras", "analytics")
ALL_TABLES = ("users", "sites", "cameras", "analytics", "camera_events", "user_cameras")
ANALYTICS_ARROW_BYTES = 8 + 4 + 4 + 8  # int64 id, int32 camera_id, int32 count, timestamp
RESULT_MARK = "@@COPY_BENCH_RESULT@@ "
TARGET_ROWS_PER_S = 750_000
TARGET_RSS_MIB = 1024
TARGET_PLAIN_RATIO = 2.5
DLT_PYTHON = Path(__file__).resolve().parent / ".venv-dlt" / "bin" / "python"
DLT_PEER = Path(__file__).resolve().parent / "dlt_peer.py"
DLT_RESULT_MARK = "@@DLT_PEER_RESULT@@ "


class BenchError(Exception):
    """A problem that ends the benchmark with a plain message instead of a traceback."""


@dataclass(frozen=True)
class Servers:
    my_host: str
    my_port: int
    my_user: str
    pg_host: str
    pg_port: int
    pg_user: str
    source_db: str = SOURCE_DB

    def mysql_url(self, database: str | None = None) -> str:
        database = database or self.source_db
        return f"mysql://{self.my_user}@{self.my_host}:{self.my_port}/{database}"

    def sqlalchemy_mysql_url(self) -> str:
        return f"mysql+pymysql://{self.my_user}@{self.my_host}:{self.my_port}/{self.source_db}"

    def pg_url(self, database: str) -> str:
        return f"postgresql://{self.pg_user}@{self.pg_host}:{self.pg_port}/{database}"

    def mysql(self, database: str | None = None) -> pymysql.connections.Connection:
        return pymysql.connect(
            host=self.my_host,
            port=self.my_port,
            user=self.my_user,
            database=database,
            autocommit=True,
            charset="utf8mb4",
        )

    def pg(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.pg_url(database), autocommit=True, connect_timeout=5)

    def mariadb_cmd(self) -> list[str]:
        return [
            "mariadb",
            "-h",
            self.my_host,
            "-P",
            str(self.my_port),
            "-u",
            self.my_user,
        ]

    def psql_cmd(self, database: str) -> list[str]:
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.pg_url(database)]


# --- the synthetic source ---

_FIRST = [
    "olivia",
    "liam",
    "emma",
    "noah",
    "amelia",
    "oliver",
    "sophia",
    "elijah",
    "mia",
    "james",
    "ava",
    "lucas",
    "isabella",
    "mateo",
    "yuki",
    "priya",
    "arjun",
    "fatima",
    "omar",
    "chen",
]
_LAST = [
    "smith",
    "johnson",
    "garcia",
    "miller",
    "davis",
    "lopez",
    "wilson",
    "taylor",
    "moore",
    "martin",
    "lee",
    "nguyen",
    "patel",
    "kim",
    "schmidt",
]
_DOMAINS = ["example.com", "example.org", "mail.example.net", "retail.example", "citymall.example"]
_LOCATIONS = [
    "Entrance North",
    "Entrance South",
    "Main Lobby",
    "Parking Level 1",
    "Parking Level 2",
    "Food Court",
    "Loading Dock",
    "Atrium",
    "Escalator A",
    "Platform 1",
    "Platform 2",
    "Ticket Hall",
    "Staff Entrance",
    "Cinema Foyer",
    "Rooftop Terrace",
    "Bus Stop Plaza",
]
_CITIES = ["Lisbon", "Oslo", "Osaka", "Lagos", "Lima", "Austin", "Pune", "Graz"]


def _one(cursor: Any) -> tuple[Any, ...]:
    """The one row a query must return."""
    row = cursor.fetchone()
    assert row is not None, "the query returned no row"
    return tuple(row)


def _elt(expr: str, words: list[str]) -> str:
    quoted = ", ".join("'" + w.replace("'", "''") + "'" for w in words)
    return f"ELT(1 + ({expr}) % {len(words)}, {quoted})"


def source_ddl() -> list[str]:
    return [
        "DROP TABLE IF EXISTS user_cameras, camera_events, analytics, cameras, sites, users",
        "CREATE TABLE users (user_id INT NOT NULL PRIMARY KEY, user_name VARCHAR(100) NOT NULL, "
        "email_address VARCHAR(255) NULL, account_status CHAR(1) NULL, created_at DATETIME NULL, "
        "KEY idx_users_email (email_address)) ENGINE=InnoDB",
        "CREATE TABLE sites (site_id INT NOT NULL PRIMARY KEY, site_name VARCHAR(100) NOT NULL, "
        "city VARCHAR(100) NOT NULL, opened_on DATE NULL) ENGINE=InnoDB",
        "CREATE TABLE cameras (camera_id INT NOT NULL PRIMARY KEY, "
        "camera_name VARCHAR(100) NOT NULL, camera_location VARCHAR(200) NULL, "
        "is_active CHAR(1) NOT NULL, owner_id INT NULL, site_id INT NULL, "
        "CONSTRAINT fk_cameras_owner FOREIGN KEY (owner_id) REFERENCES users (user_id), "
        "CONSTRAINT fk_cameras_site FOREIGN KEY (site_id) REFERENCES sites (site_id)"
        ") ENGINE=InnoDB",
        "CREATE TABLE analytics (id BIGINT NOT NULL PRIMARY KEY, camera_id INT NOT NULL, "
        "count INT NOT NULL, timestamp DATETIME NOT NULL) ENGINE=InnoDB",
        "CREATE TABLE camera_events (event_id BIGINT NOT NULL PRIMARY KEY, "
        "camera_id INT NOT NULL, event_type VARCHAR(20) NOT NULL, occurred_at DATETIME NOT NULL, "
        "details VARCHAR(255) NULL) ENGINE=InnoDB",
        "CREATE TABLE user_cameras (user_id INT NOT NULL, camera_id INT NOT NULL, "
        "role VARCHAR(20) NOT NULL, granted_at DATETIME NOT NULL, "
        "PRIMARY KEY (user_id, camera_id), KEY idx_user_cameras_camera (camera_id), "
        "CONSTRAINT fk_user_cameras_user FOREIGN KEY (user_id) REFERENCES users (user_id), "
        "CONSTRAINT fk_user_cameras_camera FOREIGN KEY (camera_id) REFERENCES cameras (camera_id)"
        ") ENGINE=InnoDB",
    ]


def source_fill(rows: int) -> list[tuple[str, str]]:
    """(label, statement) pairs that fill the tables; deterministic for a given row count."""
    events = max(1, rows // EVENTS_PER_ANALYTICS)
    # k: the user a row is made from; every 33rd user repeats the previous one (a duplicate).
    name = f"CONCAT({_elt('k', _FIRST)}, '.', {_elt('k DIV 7', _LAST)}, k)"  # unique per k
    email = f"CONCAT({name}, '@', {_elt('k', _DOMAINS)})"
    bad_email = f"CONCAT({name}, '.', {_elt('k', _DOMAINS)})"  # no '@'
    status = _elt("seq", ["A", "A", "A", "A", "A", "A", "A", "I", "I", "S"])
    # Owners avoid the users that are dropped (duplicates) or rejected (bad e-mails).
    owner = f"1 + (seq * 37) % {USERS}"
    return [
        (
            "users",
            "INSERT INTO users SELECT seq, "
            f"{name}, IF(seq % 50 = 0, {bad_email}, {email}), "
            f"IF(seq % 20 = 0, NULL, {status}), "
            "TIMESTAMP'2019-01-01 00:00:00' + INTERVAL seq * 131 MINUTE "
            f"FROM (SELECT seq, IF(seq % 33 = 0, seq - 1, seq) AS k FROM seq_1_to_{USERS}) s",
        ),
        (
            "sites",
            f"INSERT INTO sites SELECT seq, CONCAT('Site ', seq), {_elt('seq', _CITIES)}, "
            f"DATE'2015-01-01' + INTERVAL seq * 30 DAY FROM seq_1_to_{SITES}",
        ),
        (
            "cameras",
            "INSERT INTO cameras SELECT seq, CONCAT('Camera ', LPAD(seq, 4, '0')), "
            f"IF(seq % 45 = 0, NULL, {_elt('seq', _LOCATIONS)}), IF(seq % 7 = 0, 'N', 'Y'), "
            f"IF(seq % 10 = 0, NULL, IF(o % 50 = 0 OR o % 33 = 0, 1, o)), 1 + seq % {SITES} "
            f"FROM (SELECT seq, {owner} AS o FROM seq_1_to_{CAMERAS}) s",
        ),
        (
            "analytics",
            f"INSERT INTO analytics SELECT seq, 1 + seq % {CAMERAS}, "
            "(seq * 7919 + (seq DIV 500) * 31) % 200, "
            f"TIMESTAMP'2024-01-01 00:00:00' + INTERVAL (seq DIV {CAMERAS}) MINUTE "
            f"+ INTERVAL seq % 60 SECOND FROM seq_1_to_{rows}",
        ),
        (
            "camera_events",
            f"INSERT INTO camera_events SELECT seq, 1 + (seq * 13) % {CAMERAS}, "
            f"{_elt('seq', ['online', 'offline', 'tamper', 'reboot', 'firmware'])}, "
            "TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq * 7 SECOND, "
            "IF(seq % 3 = 0, NULL, CONCAT('event ', seq, ' reported by ', "
            f"{_elt('seq', _LOCATIONS)})) FROM seq_1_to_{events}",
        ),
        (
            "user_cameras",
            "INSERT INTO user_cameras SELECT 1 + k % 10000, "
            f"1 + ((k % 10000) * 7 + (k DIV 10000) * 250) % {CAMERAS}, "
            f"{_elt('k', ['owner', 'viewer', 'admin'])}, "
            "TIMESTAMP'2023-06-01 00:00:00' + INTERVAL k MINUTE "
            f"FROM (SELECT seq - 1 AS k FROM seq_1_to_{USER_CAMERAS}) s",
        ),
        (
            "indexes",
            "ALTER TABLE analytics ADD KEY idx_analytics_camera_time (camera_id, timestamp), "
            "ADD CONSTRAINT fk_analytics_camera FOREIGN KEY (camera_id) "
            "REFERENCES cameras (camera_id)",
        ),
        (
            "indexes",
            "ALTER TABLE camera_events "
            "ADD KEY idx_camera_events_camera_time (camera_id, occurred_at), "
            "ADD KEY idx_camera_events_type (event_type), "
            "ADD CONSTRAINT fk_camera_events_camera FOREIGN KEY (camera_id) "
            "REFERENCES cameras (camera_id)",
        ),
        ("analyze", "ANALYZE TABLE " + ", ".join(ALL_TABLES)),
    ]


# --- the shape of issue 3's reference figures: MySQL's `employees` sample database ---

# Table sizes of the public sample (github.com/datacharmer/test_db): 3,919,015 rows in all,
# salaries the 2.8-million-row table. Values are synthetic; schema and row counts follow it.
EMPLOYEES = 300_024
EMPLOYEE_TABLES = ("employees", "departments", "dept_manager", "dept_emp", "titles", "salaries")
_DEPARTMENTS = [
    "Marketing",
    "Finance",
    "Human Resources",
    "Production",
    "Development",
    "Quality Management",
    "Sales",
    "Research",
    "Customer Service",
]
_TITLES = [
    "Senior Engineer",
    "Staff",
    "Engineer",
    "Senior Staff",
    "Assistant Engineer",
    "Technique Leader",
    "Manager",
]


def employees_ddl() -> list[str]:
    """test_db's employees.sql, as it is."""
    return [
        "DROP TABLE IF EXISTS dept_emp, dept_manager, titles, salaries, employees, departments",
        "CREATE TABLE employees (emp_no INT NOT NULL, birth_date DATE NOT NULL, "
        "first_name VARCHAR(14) NOT NULL, last_name VARCHAR(16) NOT NULL, "
        "gender ENUM('M','F') NOT NULL, hire_date DATE NOT NULL, PRIMARY KEY (emp_no)) "
        "ENGINE=InnoDB",
        "CREATE TABLE departments (dept_no CHAR(4) NOT NULL, dept_name VARCHAR(40) NOT NULL, "
        "PRIMARY KEY (dept_no), UNIQUE KEY (dept_name)) ENGINE=InnoDB",
        "CREATE TABLE dept_manager (emp_no INT NOT NULL, dept_no CHAR(4) NOT NULL, "
        "from_date DATE NOT NULL, to_date DATE NOT NULL, "
        "FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE, "
        "FOREIGN KEY (dept_no) REFERENCES departments (dept_no) ON DELETE CASCADE, "
        "PRIMARY KEY (emp_no, dept_no)) ENGINE=InnoDB",
        "CREATE TABLE dept_emp (emp_no INT NOT NULL, dept_no CHAR(4) NOT NULL, "
        "from_date DATE NOT NULL, to_date DATE NOT NULL, "
        "FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE, "
        "FOREIGN KEY (dept_no) REFERENCES departments (dept_no) ON DELETE CASCADE, "
        "PRIMARY KEY (emp_no, dept_no)) ENGINE=InnoDB",
        "CREATE TABLE titles (emp_no INT NOT NULL, title VARCHAR(50) NOT NULL, "
        "from_date DATE NOT NULL, to_date DATE, "
        "FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE, "
        "PRIMARY KEY (emp_no, title, from_date)) ENGINE=InnoDB",
        "CREATE TABLE salaries (emp_no INT NOT NULL, salary INT NOT NULL, "
        "from_date DATE NOT NULL, to_date DATE NOT NULL, "
        "FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE, "
        "PRIMARY KEY (emp_no, from_date)) ENGINE=InnoDB",
    ]


def employees_fill(employees: int) -> list[tuple[str, str]]:
    """About test_db's counts per employee: 1.1 departments, 1.48 titles, 9.5 salaries."""
    hired = "DATE'1985-01-01' + INTERVAL (seq * 104729) % 5110 DAY"
    last_emp = 10_000 + employees
    return [
        (
            "employees",
            "INSERT INTO employees SELECT 10000 + seq, "
            "DATE'1952-02-01' + INTERVAL (seq * 7919) % 4749 DAY, "
            f"{_elt('seq', [w.title() for w in _FIRST])}, "
            f"{_elt('seq DIV 20', [w.title() for w in _LAST])}, "
            f"IF(seq % 5 < 3, 'M', 'F'), {hired} FROM seq_1_to_{employees}",
        ),
        (
            "departments",
            "INSERT INTO departments SELECT CONCAT('d00', seq), "
            f"{_elt('seq - 1', _DEPARTMENTS)} FROM seq_1_to_{len(_DEPARTMENTS)}",
        ),
        (
            "dept_manager",
            f"INSERT INTO dept_manager SELECT LEAST({last_emp}, 110000 + seq * 1001), "
            f"CONCAT('d00', 1 + seq % {len(_DEPARTMENTS)}), "
            "DATE'1986-01-01' + INTERVAL seq * 97 DAY, DATE'9999-01-01' FROM seq_0_to_23",
        ),
        (
            "dept_emp",
            "INSERT INTO dept_emp SELECT 10000 + e.seq, "
            f"CONCAT('d00', 1 + (e.seq * 7 + k.seq * 4) % {len(_DEPARTMENTS)}), "
            f"{hired.replace('seq', 'e.seq')} + INTERVAL k.seq * 1000 DAY, "
            "IF(k.seq = 0 AND e.seq % 10 = 0, "
            f"{hired.replace('seq', 'e.seq')} + INTERVAL 1000 DAY, DATE'9999-01-01') "
            f"FROM seq_1_to_{employees} e JOIN seq_0_to_1 k ON k.seq = 0 OR e.seq % 10 = 0 "
            "ORDER BY 1, 2",
        ),
        (
            "titles",
            "INSERT INTO titles SELECT 10000 + e.seq, "
            f"{_elt('e.seq + k.seq', _TITLES)}, "
            f"{hired.replace('seq', 'e.seq')} + INTERVAL k.seq * 1500 DAY, "
            "IF(k.seq = 0 AND e.seq % 100 < 48, "
            f"{hired.replace('seq', 'e.seq')} + INTERVAL 1500 DAY, DATE'9999-01-01') "
            f"FROM seq_1_to_{employees} e JOIN seq_0_to_1 k ON k.seq = 0 OR e.seq % 100 < 48 "
            "ORDER BY 1, 2, 3",
        ),
        (
            "salaries",
            "INSERT INTO salaries SELECT 10000 + e.seq, "
            "40000 + (e.seq * 31 + k.seq * 977) % 60000 + k.seq * 1500, "
            f"{hired.replace('seq', 'e.seq')} + INTERVAL k.seq YEAR, "
            f"{hired.replace('seq', 'e.seq')} + INTERVAL k.seq + 1 YEAR "
            f"FROM seq_1_to_{employees} e JOIN seq_0_to_17 k ON k.seq <= (e.seq * 7) % 18 "
            "ORDER BY 1, 3",
        ),
        ("analyze", "ANALYZE TABLE " + ", ".join(EMPLOYEE_TABLES)),
    ]


@dataclass(frozen=True)
class Dataset:
    name: str
    database: str
    tables: tuple[str, ...]
    ddl: Callable[[], list[str]]
    fill: Callable[[int], list[tuple[str, str]]]
    tagged: str  # the table whose comment says the source is complete, and for what size
    size_unit: str


CAMERA_COUNTS = Dataset(
    "camera", SOURCE_DB, ALL_TABLES, source_ddl, source_fill, "analytics", "analytics rows"
)
EMPLOYEES_SAMPLE = Dataset(
    "employees",
    "ferry_bench_employees",
    EMPLOYEE_TABLES,
    employees_ddl,
    employees_fill,
    "salaries",
    "employees",
)
DATASETS = {d.name: d for d in (CAMERA_COUNTS, EMPLOYEES_SAMPLE)}


def source_ready(servers: Servers, dataset: Dataset, size: int) -> bool:
    with servers.mysql() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, table_comment FROM information_schema.tables "
            "WHERE table_schema = %s",
            (dataset.database,),
        )
        found = dict(cur.fetchall())
    if set(dataset.tables) - set(found):
        return False
    return bool(found[dataset.tagged] == f"{SOURCE_TAG} rows={size}")


def ensure_source(servers: Servers, dataset: Dataset, size: int, regenerate: bool) -> None:
    what = f"MariaDB database {dataset.database} ({size:,} {dataset.size_unit})"
    if not regenerate and source_ready(servers, dataset, size):
        print(f"source: reusing {what}")
        return
    print(f"source: generating {what} ...")
    started = time.perf_counter()
    with servers.mysql() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {dataset.database} CHARACTER SET utf8mb4")
        cur.execute(f"USE {dataset.database}")
        # Empty tables, no checks: InnoDB's bulk path for INSERT ... SELECT into empty tables.
        cur.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        for statement in dataset.ddl():
            cur.execute(statement)
        for label, statement in dataset.fill(size):
            t0 = time.perf_counter()
            cur.execute(statement)
            if label == "analyze":
                cur.fetchall()
            print(f"  {label:<14} {time.perf_counter() - t0:7.1f} s")
        cur.execute(f"ALTER TABLE {dataset.tagged} COMMENT = '{SOURCE_TAG} rows={size}'")
    print(f"source: generated in {time.perf_counter() - started:.1f} s")


def drop_strays(servers: Servers, tables: tuple[str, ...]) -> list[str]:
    """Drop `ferry_*` tables that a copy left in the source, so every run sees the same tables.

    (Ferry before commit efda4ab created its delta-capture log `ferry_delta_log` in the source
    on every copy; pgloader would then copy it too.)
    """
    with servers.mysql(servers.source_db) as conn, conn.cursor() as cur:
        marks = ", ".join(["%s"] * len(tables))
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            f"AND table_name LIKE 'ferry\\_%%' AND table_name NOT IN ({marks})",
            (servers.source_db, *tables),
        )
        strays = [row[0] for row in cur.fetchall()]
        for name in strays:
            cur.execute(f"DROP TABLE `{name}`")
    return strays


def source_counts(servers: Servers, tables: tuple[str, ...]) -> dict[str, int]:
    with servers.mysql(servers.source_db) as conn, conn.cursor() as cur:
        counts = {}
        for table in tables:
            cur.execute(f"SELECT COUNT(*) FROM `{table}`")
            counts[table] = int(cur.fetchone()[0])
        return counts


def source_bytes(servers: Servers, tables: tuple[str, ...]) -> int:
    """InnoDB data_length (clustered index pages) of the tables: the bytes a copy reads."""
    with servers.mysql() as conn, conn.cursor() as cur:
        marks = ", ".join(["%s"] * len(tables))
        cur.execute(
            "SELECT COALESCE(SUM(data_length), 0) FROM information_schema.tables "
            f"WHERE table_schema = %s AND table_name IN ({marks})",
            (servers.source_db, *tables),
        )
        return int(cur.fetchone()[0])


# --- PostgreSQL targets ---


class Targets:
    """Fresh PostgreSQL databases, dropped at the end unless kept."""

    def __init__(self, servers: Servers, keep: bool) -> None:
        self.servers = servers
        self.keep = keep
        self.made: list[str] = []

    def fresh(self, label: str) -> str:
        name = f"ferry_bench_{os.getpid()}_{label}"
        self.made.append(name)  # before CREATE: a failure half-way still gets it dropped
        with self.servers.pg() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def checkpoint(self) -> None:
        """Flush what earlier runs left dirty, so that no run pays for the one before it:
        PostgreSQL's buffers, then the kernel's dirty pages (written back up to 30 s later,
        they would otherwise land in the middle of the next tool's timed run)."""
        with self.servers.pg() as conn:
            conn.execute("CHECKPOINT")
        os.sync()

    def drop(self, name: str) -> None:
        if self.keep:
            return
        with self.servers.pg() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        self.made.remove(name)

    def drop_all(self) -> None:
        if self.keep:
            if self.made:
                print("kept target databases: " + ", ".join(self.made))
            return
        for name in list(self.made):
            self.drop(name)


def run_logged(
    command: list[str], log: Path, servers: Servers, targets: Targets
) -> tuple[subprocess.CompletedProcess[bytes], float, str, str]:
    """Run a peer tool with its output in `log`, timed as a process (wall clock) while the
    servers are watched; returns the result, the seconds, the log's text and the watch note."""
    with Watcher(servers, targets.made) as watcher, log.open("w") as out:
        t0 = time.perf_counter()
        done = subprocess.run(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            cwd=log.parent,
            stdin=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - t0
    return done, seconds, log.read_text(errors="replace"), watcher.note()


class Watcher:
    """Samples, while a run is timed, whether anyone else is busy on the two servers.

    The servers may be shared (a test suite running next to the benchmark): a run that had
    company is marked, since its figures are then not this machine's best.
    """

    def __init__(self, servers: Servers, mine: list[str]) -> None:
        self.servers = servers
        self.mine = mine
        self.samples = 0
        self.busy = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        try:
            pg = self.servers.pg()
            my = self.servers.mysql()
        except Exception:  # the watcher must never break a run
            return
        with pg, my, my.cursor() as cur:
            while not self.stop.wait(0.5):
                others = _one(
                    pg.execute(
                        "SELECT COUNT(*) FROM pg_stat_activity "
                        "WHERE backend_type = 'client backend' "
                        "AND pid <> pg_backend_pid() AND state NOT IN ('idle') "
                        "AND NOT (datname = ANY(%s))",
                        (self.mine,),
                    )
                )[0]
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.processlist WHERE id <> "
                    "CONNECTION_ID() AND command NOT IN ('Sleep', 'Daemon') "
                    "AND COALESCE(db, '') <> %s",
                    (self.servers.source_db,),
                )
                others += cur.fetchone()[0]
                self.samples += 1
                self.busy += 1 if others else 0

    def note(self) -> str:
        if not self.busy:
            return ""
        return f"  [shared: other sessions busy in {self.busy} of {self.samples} samples]"


def pg_table_stats(servers: Servers, database: str, tables: tuple[str, ...]) -> dict[str, Any]:
    """Row counts of `tables` (in whatever schema holds them), plus index and FK totals."""
    with servers.pg(database) as conn:
        schemas: dict[str, str] = dict(
            conn.execute(
                "SELECT table_name, table_schema FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                "AND table_name = ANY(%s)",
                (list(tables),),
            ).fetchall()
        )
        counts: dict[str, int | None] = {}
        for table in tables:
            if table not in schemas:
                counts[table] = None
                continue
            query = sql.SQL("SELECT COUNT(*) FROM {}.{}").format(
                sql.Identifier(schemas[table]), sql.Identifier(table)
            )
            counts[table] = int(_one(conn.execute(query))[0])
        indexes = _one(
            conn.execute(
                "SELECT COUNT(*) FROM pg_indexes WHERE tablename = ANY(%s)", (list(tables),)
            )
        )[0]
        fks, pks = _one(
            conn.execute(
                "SELECT COUNT(*) FILTER (WHERE constraint_type = 'FOREIGN KEY'), "
                "COUNT(*) FILTER (WHERE constraint_type = 'PRIMARY KEY') "
                "FROM information_schema.table_constraints WHERE table_name = ANY(%s)",
                (list(tables),),
            )
        )
    return {"counts": counts, "indexes": int(indexes), "fks": int(fks), "pks": int(pks)}


# --- the Ferry child: runs copy_data in a fresh interpreter, prints one JSON line ---


class _Stages:
    """Seconds per pipeline stage, summed over worker threads (wrappers set in the child)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                spent = time.perf_counter() - t0
                with self.lock:
                    self.seconds[name] = self.seconds.get(name, 0.0) + spent

        return timed


class _InlineExecutor:
    """A stand-in for ThreadPoolExecutor that runs each task at once (so cProfile sees it)."""

    def __init__(self, max_workers: int | None = None) -> None:
        del max_workers

    def __enter__(self) -> _InlineExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from concurrent.futures import Future

        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


def run_child(job_file: Path, workers: int, profile_out: Path | None) -> int:
    import pyarrow.csv as pcsv

    import ferry.data.copy as copy_module
    from ferry.data.spec import parse_job
    from ferry.data.transform import Transformer
    from ferry.db.postgresql import PostgresAdapter

    stages = _Stages()
    patched: Any = copy_module  # its own imports are replaced, to time them
    patched.read_chunk = stages.wrap("read", patched.read_chunk)
    Transformer.apply = stages.wrap("transform", Transformer.apply)  # type: ignore[method-assign]
    PostgresAdapter.bulk_insert = stages.wrap(  # type: ignore[method-assign]
        "load", PostgresAdapter.bulk_insert
    )
    pcsv.write_csv = stages.wrap("csv", pcsv.write_csv)
    # Main-thread phases before and after the chunks.
    patched.plan_tables = stages.wrap("plan", patched.plan_tables)
    job_class: Any = copy_module._Job
    for method in ("prepare", "finalize", "restore_deferred"):
        setattr(job_class, method, stages.wrap(method, getattr(job_class, method)))
    if hasattr(copy_module, "delta"):
        copy_module.delta.install = stages.wrap("capture", copy_module.delta.install)
    if profile_out is not None:
        patched.ThreadPoolExecutor = _InlineExecutor

    spec = parse_job(job_file.read_text(), path=job_file)
    ready = peak_rss_kib()
    last_commit = [0.0]

    def on_progress(_: Any) -> None:
        last_commit[0] = time.perf_counter()

    profiler = None
    if profile_out is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    report = copy_data(spec, spec_path=job_file, workers=workers, on_progress=on_progress)
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    if profiler is not None and profile_out is not None:
        profiler.disable()
        profiler.dump_stats(profile_out)
    peak = peak_rss_kib()
    payload = {
        "status": report.status,
        "seconds": seconds,
        "load_seconds": (last_commit[0] - t0) if last_commit[0] else seconds,
        "rss_mib": peak / 1024,
        "rss_ready_mib": ready / 1024,
        # CPU of this process (all its threads) during copy_data: steadier than wall clock
        # when other sessions share the machine; the databases' CPU is not in it.
        "cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "warnings": report.warnings,
        "stages": stages.seconds,
        "tables": {
            t.source: {
                "read": t.counts.read,
                "written": t.counts.written,
                "rejected": t.counts.rejected,
                "filtered": t.counts.filtered,
                "deduped": t.counts.deduped,
                "chunks": t.chunks,
            }
            for t in report.tables
        },
    }
    print(RESULT_MARK + json.dumps(payload), flush=True)
    gc.freeze()  # as `ferry` itself does at exit: no collection of every object at shutdown
    return 0


def copy_data(*args: Any, **kwargs: Any) -> Any:
    from ferry.data.copy import copy_data as run

    return run(*args, **kwargs)


@dataclass
class FerryRun:
    wall: float  # the child process, start to exit (interpreter, imports, copy)
    result: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # other sessions were busy on the servers meanwhile


def peak_rss_kib() -> int:
    """This process's peak RSS: /proc's VmHWM, as getrusage's ru_maxrss keeps the peak of
    the process that forked it across exec (the bench's own)."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii").splitlines()
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def run_ferry(job_text: str, workers: int, workdir: Path, profile: bool = False) -> FerryRun:
    job_file = workdir / f"job_{workers}.yaml"
    job_file.write_text(job_text)
    command = [sys.executable, __file__, "--child", str(job_file), "--workers", str(workers)]
    profile_out = workdir / f"profile_{workers}.pstats"
    if profile:
        command += ["--profile-out", str(profile_out)]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    marked = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not marked:
        raise BenchError(
            f"the Ferry child failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    run = FerryRun(wall, json.loads(marked[-1][len(RESULT_MARK) :]))
    if profile:
        print_profile(profile_out)
    return run


def print_profile(path: Path) -> None:
    import io
    import pstats

    for order, count in (("tottime", 25), ("cumulative", 40)):
        out = io.StringIO()
        stats = pstats.Stats(str(path), stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(count)
        text = out.getvalue()
        start = text.find("   ncalls")
        print(f"\ncProfile, top {count} by {order} (synchronous copy, one thread):")
        print(text[start:].rstrip())


def _load(batch_size: int | None) -> str:
    """The job's load block: Ferry sizes chunks itself unless --batch-size is given."""
    return f"load:\n  batch_size: {batch_size}\n" if batch_size else ""


def transform_job(servers: Servers, target_db: str, batch_size: int | None) -> str:
    return f"""\
name: bench_transform
source: {servers.mysql_url()}
target: {servers.pg_url(target_db)}
include: [users, cameras, analytics]
tables:
  users:
    columns: {{user_id: id, user_name: username, email_address: email, account_status: status,
               created_at: created_at}}
    values:
      status: {{map: {{A: active, I: inactive, S: suspended}}, unmapped: reject}}
    nulls: {{status: inactive}}
    validate: {{email: email}}
    dedupe: {{on: [username, email], keep: first}}
  cameras:
    columns: {{camera_id: id, camera_name: name, camera_location: location,
               is_active: is_active, owner_id: owner_id}}
    values:
      is_active: {{map: {{Y: true, N: false}}}}
  analytics:
    columns: {{id: id, camera_id: camera_id, count: count, timestamp: recorded_at}}
    derive:
      hour: "HOUR(recorded_at)"
      day: "DATE(recorded_at)"
{_load(batch_size)}errors:
  max_error_rate: 0.05
"""


def plain_job(servers: Servers, target_db: str, batch_size: int | None) -> str:
    return f"""\
name: bench_plain
source: {servers.mysql_url()}
target: {servers.pg_url(target_db)}
{_load(batch_size)}"""


# --- default mode ---


def format_stages(stages: dict[str, float]) -> str:
    def get(name: str) -> float:
        return stages.get(name, 0.0)

    before = get("plan") + get("capture") + get("prepare")
    return (
        f"before chunks {before:.2f} (reflect {get('plan'):.2f}, capture {get('capture'):.2f}, "
        f"prepare {get('prepare'):.2f}) | per chunk: read {get('read'):.2f}, transform "
        f"{get('transform'):.2f}, load {get('load'):.2f} (Arrow CSV {get('csv'):.2f}, COPY "
        f"{get('load') - get('csv'):.2f}) | after: indexes+FKs {get('finalize'):.2f}, "
        f"restore {get('restore_deferred'):.2f}"
    )


def mb(n: float) -> float:
    return n / 1_000_000


def run_transforms(args: argparse.Namespace, servers: Servers, targets: Targets) -> int:
    counts = source_counts(servers, TRANSFORM_TABLES)
    total_rows = sum(counts.values())
    data_bytes = source_bytes(servers, TRANSFORM_TABLES)
    analytics_arrow = counts["analytics"] * ANALYTICS_ARROW_BYTES
    print(
        f"\ncopied tables: {', '.join(f'{t} {n:,}' for t, n in counts.items())} rows; "
        f"InnoDB data_length {mb(data_bytes):,.0f} MB; analytics as Arrow "
        f"{mb(analytics_arrow):,.0f} MB"
    )
    chunking = f"{args.batch_size:,}" if args.batch_size else "Ferry's (about 16 MB per chunk)"
    print(
        f"batch_size {chunking}; rules: rename, 2 value maps, NULL default, e-mail "
        "check, dedupe (users), timestamp -> recorded_at, derive hour and day"
    )
    failures = 0
    results: list[tuple[int, FerryRun]] = []
    with tempfile.TemporaryDirectory(prefix="copy_bench_") as tmp:
        workdir = Path(tmp)
        for workers in [w for w in args.workers for _ in range(args.repeat)]:
            database = targets.fresh(f"t{workers}")
            targets.checkpoint()
            with Watcher(servers, targets.made) as watcher:
                run = run_ferry(
                    transform_job(servers, database, args.batch_size),
                    workers,
                    workdir,
                    args.profile,
                )
            run.note = watcher.note()
            left = drop_strays(servers, ALL_TABLES)
            stats = pg_table_stats(servers, database, TRANSFORM_TABLES)
            targets.drop(database)
            results.append((workers, run))
            res = run.result
            tables = res["tables"]
            balanced = all(
                t["read"] == t["written"] + t["rejected"] + t["filtered"] + t["deduped"]
                for t in tables.values()
            )
            if res["status"] != "completed" or not balanced:
                failures += 1
            if stats["counts"]["analytics"] != counts["analytics"]:
                failures += 1
                print(f"  !! analytics in the target: {stats['counts']['analytics']}")
            if args.profile:
                break

        print(
            f"\n{'workers':>7} {'copy s':>7} {'load s':>7} {'rows/s':>10} {'load rows/s':>11} "
            f"{'MB/s':>6} {'Arrow MB/s':>10} {'peak RSS':>9} {'(ready)':>9} {'proc s':>7} "
            f"{'cpu s':>6}"
        )
        for workers, run in results:
            res = run.result
            print(
                f"{workers:>7} {res['seconds']:>7.2f} {res['load_seconds']:>7.2f} "
                f"{total_rows / res['seconds']:>10,.0f} {total_rows / res['load_seconds']:>11,.0f} "
                f"{mb(data_bytes) / res['seconds']:>6.1f} "
                f"{mb(analytics_arrow) / res['seconds']:>10.1f} {res['rss_mib']:>5.0f} MiB "
                f"{res['rss_ready_mib']:>5.0f} MiB "
                f"{run.wall:>7.2f} {res.get('cpu_s', 0.0):>6.2f}{run.note}"
            )
        print(
            "(copy s: copy_data call; load s: until the last chunk committed, the rest is "
            "indexes and FKs; rows/s over all copied rows; (ready): RSS after imports, before "
            "the copy; proc s: the child process; cpu s: its CPU time during copy_data, databases "
            "not included)"
        )
        print("stages, seconds summed over worker threads:")
        for workers, run in results:
            print(f"{workers:>7}  {format_stages(run.result['stages'])}")
        last = results[-1][1].result
        if left:
            print(f"note: each Ferry copy created {', '.join(left)} in the source (dropped)")
        print(
            "\ncounts (last run): "
            + "; ".join(
                f"{name} read {t['read']:,} written {t['written']:,} rejected {t['rejected']:,} "
                f"deduped {t['deduped']:,} in {t['chunks']} chunks"
                for name, t in last["tables"].items()
            )
        )
        for warning in last["warnings"]:
            print(f"warning: {warning}")
        if not args.skip_baseline:
            physical_limit(servers, targets, workdir, counts["analytics"])
        # Per worker count, the median of its repeats (the run itself when there is one).
        rates = {
            workers: statistics.median(
                total_rows / run.result["seconds"] for w, run in results if w == workers
            )
            for workers in args.workers
        }
        best_workers = max(rates, key=lambda w: rates[w])
        best_rate = rates[best_workers]
        peak = max(r.result["rss_mib"] for _, r in results)
        rate_ok = "met" if best_rate >= TARGET_ROWS_PER_S else "MISSED"
        median = f", median of {args.repeat} runs" if args.repeat > 1 else ""
        print(
            f"\nbest: {best_rate:,.0f} rows/s with {best_workers} workers{median} "
            f"(target >= {TARGET_ROWS_PER_S:,}: {rate_ok}); "
            f"peak RSS {peak:.0f} MiB (target < {TARGET_RSS_MIB} MiB: "
            f"{'met' if peak < TARGET_RSS_MIB else 'MISSED'})"
        )
    return failures


def physical_limit(servers: Servers, targets: Targets, workdir: Path, rows: int) -> None:
    """The analytics rows through mariadb -B and a plain COPY: no Python, no transforms."""
    print("\nphysical limit (analytics only, one stream, same primary key, no transforms):")
    tsv = workdir / "analytics.tsv"
    export_cmd = [
        *servers.mariadb_cmd(),
        "-B",
        "-N",
        "--quick",
        "-e",
        "SELECT id, camera_id, count, timestamp FROM analytics ORDER BY id",
        servers.source_db,
    ]
    ddl = (
        "CREATE TABLE analytics (id BIGINT PRIMARY KEY, camera_id INTEGER NOT NULL, "
        "count INTEGER NOT NULL, recorded_at TIMESTAMP NOT NULL)"
    )
    with Watcher(servers, targets.made) as watcher:
        t0 = time.perf_counter()
        with tsv.open("wb") as out:
            subprocess.run(export_cmd, stdout=out, check=True)
        export_s = time.perf_counter() - t0
    export_note = watcher.note()
    size = tsv.stat().st_size

    database = targets.fresh("copy")
    with servers.pg(database) as conn:
        conn.execute(ddl)
        targets.checkpoint()
        with Watcher(servers, targets.made) as watcher:
            t0 = time.perf_counter()
            with (
                conn.cursor() as cur,
                cur.copy("COPY analytics FROM STDIN") as copy,
                tsv.open("rb") as source,
            ):
                while block := source.read(1 << 20):
                    copy.write(block)
            copy_s = time.perf_counter() - t0
        copy_note = watcher.note()
        loaded = _one(conn.execute("SELECT COUNT(*) FROM analytics"))[0]
    targets.drop(database)

    database = targets.fresh("pipe")
    subprocess.run([*servers.psql_cmd(database), "-c", ddl], check=True)
    targets.checkpoint()
    with Watcher(servers, targets.made) as watcher:
        t0 = time.perf_counter()
        export = subprocess.Popen(export_cmd, stdout=subprocess.PIPE)
        assert export.stdout is not None
        subprocess.run(
            [*servers.psql_cmd(database), "-c", "\\copy analytics FROM STDIN"],
            stdin=export.stdout,
            check=True,
        )
        export.stdout.close()
        export.wait()
        pipe_s = time.perf_counter() - t0
    pipe_note = watcher.note()
    targets.drop(database)
    print(
        f"  export  mariadb -B -N --quick > file  {export_s:7.2f} s  {rows / export_s:>11,.0f} "
        f"rows/s  ({mb(size):,.0f} MB TSV){export_note}"
    )
    print(
        f"  COPY    FROM STDIN (file, psycopg)   {copy_s:7.2f} s  {rows / copy_s:>11,.0f} "
        f"rows/s  ({loaded:,} rows){copy_note}"
    )
    print(
        f"  sum     export + COPY                {export_s + copy_s:7.2f} s  "
        f"{rows / (export_s + copy_s):>11,.0f} rows/s"
    )
    print(
        f"  piped   mariadb -B | psql \\copy      {pipe_s:7.2f} s  {rows / pipe_s:>11,.0f} "
        f"rows/s{pipe_note}"
    )


# --- --plain ---


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


@dataclass
class PlainRep:
    """One --plain round: Ferry, then pgloader, then dlt, each into a fresh database."""

    ferry: FerryRun
    ferry_stats: dict[str, Any]
    loader_s: float | None = None
    loader_stats: dict[str, Any] | None = None
    loader_note: str = ""
    dlt: DltRun | None = None
    failures: int = 0

    def ferry_pair(self) -> tuple[FerryRun, dict[str, Any]]:
        return self.ferry, self.ferry_stats

    def summary(self) -> str:
        text = f"ferry {self.ferry.wall:.2f} s"
        if self.loader_s is not None:
            text += f", pgloader {self.loader_s:.2f} s ({self.loader_s / self.ferry.wall:.2f}x)"
        if self.dlt is not None and self.dlt.ok:
            text += f", dlt {self.dlt.wall:.2f} s"
            if self.dlt.keys_s is not None:
                text += f" (+ keys {self.dlt.wall + self.dlt.keys_s:.2f} s)"
        return text


def median_of(reps: list[PlainRep], wall: Callable[[PlainRep], float]) -> PlainRep:
    """The round whose `wall` is the median (the lower one of an even count)."""
    return sorted(reps, key=wall)[(len(reps) - 1) // 2]


def _walls(walls: Iterable[float]) -> str:
    return "/".join(f"{w:.2f}" for w in walls)


def plain_rep(
    args: argparse.Namespace,
    servers: Servers,
    targets: Targets,
    workdir: Path,
    tables: tuple[str, ...],
    workers: int,
    *,
    quiet: bool,
) -> PlainRep:
    ferry_db = targets.fresh("plain_ferry")
    targets.checkpoint()
    with Watcher(servers, targets.made) as watcher:
        run = run_ferry(
            plain_job(servers, ferry_db, args.batch_size), workers, workdir, args.profile
        )
    run.note = watcher.note()
    left = drop_strays(servers, tables)
    if left:
        print(
            f"note: the Ferry copy created {', '.join(left)} in the source; dropped before "
            "pgloader runs"
        )
    rep = PlainRep(run, pg_table_stats(servers, ferry_db, tables))
    targets.drop(ferry_db)
    if run.result["status"] != "completed":
        rep.failures += 1
    for warning in run.result["warnings"]:
        print(f"ferry warning: {warning}")

    pgloader = shutil.which("pgloader")
    if pgloader is None:
        print("\npgloader is not installed: run `bash bench/setup.sh` (as root), then again")
    else:
        loader_db = targets.fresh("plain_pgloader")
        targets.checkpoint()
        command = [pgloader, servers.mysql_url(), servers.pg_url(loader_db)]
        done, rep.loader_s, text, rep.loader_note = run_logged(
            command, workdir / "pgloader.log", servers, targets
        )
        rep.loader_stats = pg_table_stats(servers, loader_db, tables)
        targets.drop(loader_db)
        if done.returncode != 0:
            rep.failures += 1
            print(f"pgloader exited {done.returncode}; its log:\n{text[-4000:]}")
        errors = [line for line in text.splitlines() if " ERROR " in line]
        for line in errors[:10]:
            print(f"pgloader: {line.strip()}")
        if not quiet:
            print("\n$ " + " ".join(command))
            summary = text[text.find("             table name") :] if "table name" in text else ""
            print(summary.rstrip()[-3000:])

    if args.dlt:
        rep.dlt = run_dlt(servers, targets, workdir, workers, tables, quiet=quiet)
        if rep.dlt is not None:
            rep.failures += 0 if rep.dlt.ok else 1
    return rep


def run_plain(
    args: argparse.Namespace, servers: Servers, targets: Targets, tables: tuple[str, ...]
) -> int:
    counts = source_counts(servers, tables)
    total = sum(counts.values())
    with servers.mysql(servers.source_db) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(DISTINCT table_name, index_name) FROM information_schema.statistics "
            "WHERE table_schema = %s",
            (servers.source_db,),
        )
        src_indexes = int(cur.fetchone()[0])
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.referential_constraints "
            "WHERE constraint_schema = %s",
            (servers.source_db,),
        )
        src_fks = int(cur.fetchone()[0])
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.table_constraints "
            "WHERE constraint_schema = %s AND constraint_type = 'PRIMARY KEY'",
            (servers.source_db,),
        )
        src_pks = int(cur.fetchone()[0])
    print(
        f"\nplain copy of {servers.source_db}: {len(tables)} tables, {total:,} rows, "
        f"{src_indexes} indexes (incl. {src_pks} primary keys), {src_fks} foreign keys; "
        f"InnoDB data_length {mb(source_bytes(servers, tables)):,.0f} MB"
    )
    failures = 0
    workers = args.workers[0] if len(args.workers) == 1 else 2
    reps: list[PlainRep] = []
    with tempfile.TemporaryDirectory(prefix="copy_bench_") as tmp:
        workdir = Path(tmp)
        # Repeats interleave the tools, so that a machine that slows down or speeds up
        # over the minutes weighs on each of them alike.
        for number in range(args.repeat):
            rep = plain_rep(args, servers, targets, workdir, tables, workers, quiet=number > 0)
            failures += rep.failures
            reps.append(rep)
            if args.repeat > 1:
                print(f"\nrepeat {number + 1}/{args.repeat}: {rep.summary()}")
    run, ferry_stats = median_of(reps, lambda r: r.ferry.wall).ferry_pair()
    timed = [r for r in reps if r.loader_s is not None]
    loader_rep = median_of(timed, lambda r: r.loader_s or 0.0) if timed else None
    loader_s = loader_rep.loader_s if loader_rep else None
    loader_stats = loader_rep.loader_stats if loader_rep else None
    loader_note = loader_rep.loader_note if loader_rep else ""
    ran_dlt = [r for r in reps if r.dlt is not None and r.dlt.ok]
    dlt_run = median_of(ran_dlt, lambda r: r.dlt.wall if r.dlt else 0.0).dlt if ran_dlt else None
    if args.repeat > 1:
        print(
            f"\nmedians of {args.repeat} interleaved repeats (each tool's median run below; "
            f"all walls: ferry {_walls(r.ferry.wall for r in reps)}"
            + (f", pgloader {_walls(r.loader_s or 0.0 for r in timed)}" if timed else "")
            + (f", dlt {_walls(r.dlt.wall for r in ran_dlt if r.dlt)}" if ran_dlt else "")
            + ")"
        )
    print(f"\n{'':<28} {'seconds':>8} {'rows/s':>11} {'peak RSS':>9}")
    print(
        f"{'ferry (process wall)':<28} {run.wall:>8.2f} {total / run.wall:>11,.0f} "
        f"{run.result['rss_mib']:>5.0f} MiB{run.note}"
    )
    print(
        f"{'ferry (copy_data only)':<28} {run.result['seconds']:>8.2f} "
        f"{total / run.result['seconds']:>11,.0f}   (load done at "
        f"{run.result['load_seconds']:.2f} s, then indexes and FKs; "
        f"{run.result.get('cpu_s', 0.0):.2f} s CPU in the Ferry process)"
    )
    if loader_s is not None:
        print(
            f"{'pgloader (process wall)':<28} {loader_s:>8.2f} {total / loader_s:>11,.0f}"
            f"{'':>10}{loader_note}"
        )
        ratio = loader_s / run.wall
        print(
            f"\nratio pgloader / ferry (process wall): {ratio:.2f}x (target >= "
            f"{TARGET_PLAIN_RATIO}x: {'met' if ratio >= TARGET_PLAIN_RATIO else 'MISSED'})"
        )
    if dlt_run is not None and dlt_run.ok:
        print(
            f"{'dlt (process wall)':<28} {dlt_run.wall:>8.2f} {total / dlt_run.wall:>11,.0f}"
            f"{'':>10}{dlt_run.note}"
        )
        stages = dlt_run.result["stages"]
        print(
            f"{'dlt (pipeline only)':<28} {dlt_run.result['seconds']:>8.2f} "
            f"{total / dlt_run.result['seconds']:>11,.0f}   (extract {stages['extract']:.2f}, "
            f"normalize {stages['normalize']:.2f}, load {stages['load']:.2f} s; "
            f"load jobs {dlt_run.result['load_formats']}; data only: no primary keys, "
            "secondary indexes or foreign keys)"
        )
        if dlt_run.keys_s is not None:
            keyed = dlt_run.wall + dlt_run.keys_s
            print(
                f"{'dlt + the same keys after':<28} {keyed:>8.2f} {total / keyed:>11,.0f}   "
                f"(keys {dlt_run.keys_s:.2f} s on {workers} connections, scheduled as "
                "Ferry schedules its own)"
            )
        ratio = dlt_run.wall / run.wall
        print(
            f"\nratio dlt / ferry (process wall): {ratio:.2f}x (Ferry's time includes its "
            f"indexes and FKs; dlt's has none)"
        )
        if dlt_run.keys_s is not None:
            keyed_ratio = (dlt_run.wall + dlt_run.keys_s) / run.wall
            print(
                f"ratio dlt + keys / ferry (same end state): {keyed_ratio:.2f}x "
                f"({'Ferry faster' if keyed_ratio > 1 else 'dlt faster'})"
            )
        data_ratio = dlt_run.result["seconds"] / run.result["load_seconds"]
        print(
            f"ratio dlt / ferry (data only: dlt pipeline vs Ferry's last chunk committed): "
            f"{data_ratio:.2f}x"
        )
    print(f"ferry stages (s, summed over {workers} workers): {format_stages(run.result['stages'])}")

    peers: list[tuple[str, dict[str, Any] | None]] = [("pgloader", loader_stats)]
    if args.dlt:
        peers.append(("dlt", dlt_run.stats if dlt_run is not None else None))
        if dlt_run is not None and dlt_run.keys_stats is not None:
            peers.append(("dlt+keys", dlt_run.keys_stats))
    head = "".join(f" {name:>10}" for name, _ in peers)
    print(f"\n{'table':<15} {'source':>10} {'ferry':>10}{head}")
    for table in tables:
        ours = ferry_stats["counts"][table]
        theirs = [stats["counts"][table] if stats else None for _, stats in peers]
        same = ours == counts[table] and all(
            stats is None or n == counts[table] for (_, stats), n in zip(peers, theirs, strict=True)
        )
        failures += 0 if same else 1
        cells = "".join(f" {_n(n):>10}" for n in theirs)
        print(
            f"{table:<15} {counts[table]:>10,} {_n(ours):>10}{cells}{'' if same else '  MISMATCH'}"
        )
    for label, key, source in (
        ("primary keys", "pks", src_pks),
        ("indexes", "indexes", src_indexes),
        ("foreign keys", "fks", src_fks),
    ):
        cells = "".join(f" {stats[key] if stats else '-':>10}" for _, stats in peers)
        print(f"{label:<15} {source:>10} {ferry_stats[key]:>10}{cells}")
    return failures


@dataclass
class DltRun:
    wall: float  # the child process, start to exit (interpreter, dlt import, pipeline)
    ok: bool
    result: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] | None = None  # pg_table_stats of its target
    note: str = ""
    keys_s: float | None = None  # the source's keys built afterwards, as Ferry builds them
    keys_stats: dict[str, Any] | None = None  # pg_table_stats once the keys are built


def run_dlt(
    servers: Servers,
    targets: Targets,
    workdir: Path,
    workers: int,
    tables: tuple[str, ...],
    *,
    quiet: bool = False,
) -> DltRun | None:
    """Copy the source with dlt (bench/dlt_peer.py in its own venv) into a fresh database."""
    if not DLT_PYTHON.exists():
        print(f"\ndlt is not installed ({DLT_PYTHON} missing): run `bash bench/setup.sh`")
        return None
    dlt_db = targets.fresh("plain_dlt")
    targets.checkpoint()
    command = [
        str(DLT_PYTHON),
        str(DLT_PEER),
        "--source",
        servers.sqlalchemy_mysql_url(),
        "--target",
        servers.pg_url(dlt_db),
        "--workers",
        str(workers),
    ]
    done, wall, text, note = run_logged(command, workdir / "dlt.log", servers, targets)
    marked = [line for line in text.splitlines() if line.startswith(DLT_RESULT_MARK)]
    if done.returncode != 0 or not marked:
        print(f"\n$ {' '.join(command)}\ndlt exited {done.returncode}; its output:\n{text[-4000:]}")
        return DltRun(wall, ok=False)
    if not quiet:
        print("\n$ " + " ".join(command))
        print("\n".join(line for line in text.splitlines() if not line.startswith(DLT_RESULT_MARK)))
    run = DltRun(wall, ok=True, result=json.loads(marked[-1][len(DLT_RESULT_MARK) :]))
    run.note = note
    run.stats = pg_table_stats(servers, dlt_db, tables)
    own = run.result["counts"]
    if any(own.get(table) != run.stats["counts"][table] for table in tables):
        print(f"dlt reported rows per table {own}, its target holds {run.stats['counts']}")
        run.ok = False
        return run
    # dlt builds no keys: build the source's afterwards, so both targets end up alike.
    with Watcher(servers, targets.made) as watcher:
        run.keys_s = build_keys_after(servers, dlt_db, workers)
    run.note += watcher.note()
    run.keys_stats = pg_table_stats(servers, dlt_db, tables)
    targets.drop(dlt_db)
    return run


@dataclass(frozen=True)
class SourceIndex:
    table: str
    name: str
    columns: tuple[str, ...]
    primary: bool
    unique: bool


def source_keys(servers: Servers) -> tuple[list[SourceIndex], list[tuple[str, str]]]:
    """The source's indexes, and its foreign keys as PostgreSQL statements (add, validate):
    what Ferry and pgloader build after the data."""
    with servers.mysql(servers.source_db) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, index_name, column_name, non_unique FROM "
            "information_schema.statistics WHERE table_schema = %s "
            "ORDER BY table_name, index_name, seq_in_index",
            (servers.source_db,),
        )
        columns: dict[tuple[str, str], list[str]] = {}
        unique: dict[tuple[str, str], bool] = {}
        for table, name, column, non_unique in cur.fetchall():
            columns.setdefault((table, name), []).append(column)
            unique[(table, name)] = not int(non_unique)
        cur.execute(
            "SELECT k.constraint_name, k.table_name, k.column_name, k.referenced_table_name, "
            "k.referenced_column_name FROM information_schema.key_column_usage k "
            "WHERE k.table_schema = %s AND k.referenced_table_name IS NOT NULL "
            "ORDER BY k.constraint_name, k.ordinal_position",
            (servers.source_db,),
        )
        fks: dict[tuple[str, str, str], tuple[list[str], list[str]]] = {}
        for name, table, column, ref_table, ref_column in cur.fetchall():
            mine, theirs = fks.setdefault((name, table, ref_table), ([], []))
            mine.append(column)
            theirs.append(ref_column)
    indexes = [
        SourceIndex(table, name, tuple(cols), name == "PRIMARY", unique[(table, name)])
        for (table, name), cols in columns.items()
    ]
    statements = [
        (
            f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" FOREIGN KEY '
            f'({", ".join(map(quote, mine))}) REFERENCES "{ref}" ({", ".join(map(quote, theirs))})',
            f'ALTER TABLE "{table}" VALIDATE CONSTRAINT "{name}"',
        )
        for (name, table, ref), (mine, theirs) in fks.items()
    ]
    return indexes, statements


def quote(name: str) -> str:
    return f'"{name}"'


def build_keys_after(servers: Servers, database: str, workers: int) -> float:
    """Build the source's keys on a target that has the data only (dlt's) as Ferry builds
    its own: every index on `workers` connections at once, heaviest first (table bytes x key
    columns), only the heaviest given the server's parallel workers when several run; then
    primary keys adopted; then foreign keys, added NOT VALID and validated in parallel. (Ferry
    adopts a table's key and starts its foreign keys as soon as that table's own indexes are
    done; this waits for all of them, a little slower.) Returns the seconds it took."""
    from concurrent.futures import ThreadPoolExecutor

    indexes, fks = source_keys(servers)

    def one(statements: list[str]) -> None:
        with servers.pg(database) as conn, conn.transaction():
            for statement in statements:
                conn.execute(statement.encode())

    t0 = time.perf_counter()
    with servers.pg(database) as conn:
        sizes = {
            str(name): int(size)
            for name, size in conn.execute(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relkind = 'r'"
            ).fetchall()
        }
    weighted = sorted(indexes, key=lambda i: sizes.get(i.table, 0) * len(i.columns), reverse=True)
    heaviest = weighted[0] if weighted and workers > 1 else None

    def index_sql(index: SourceIndex) -> list[str]:
        label = f"{index.table}_pkey" if index.primary else f"{index.table}_{index.name}"
        held = heaviest is not None and index is not heaviest
        serial = ["SET LOCAL max_parallel_maintenance_workers = 0"] if held else []
        unique = "UNIQUE " if index.unique else ""
        cols = ", ".join(map(quote, index.columns))
        return [*serial, f'CREATE {unique}INDEX "{label}" ON "{index.table}" ({cols})']

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, [index_sql(i) for i in weighted]))
    one(
        [
            f'ALTER TABLE "{i.table}" ADD PRIMARY KEY USING INDEX "{i.table}_pkey"'
            for i in indexes
            if i.primary
        ]
    )
    # Foreign keys as Ferry adds them: NOT VALID (a moment, one after another: it locks the
    # parent), then validated on `workers` connections at once (that only shares the parent).
    one([f"{statement} NOT VALID" for statement, _ in fks])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, [[validate] for _, validate in fks]))
    return time.perf_counter() - t0


# --- entry point ---


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="analytics rows")
    parser.add_argument("--regenerate", action="store_true", help="rebuild the source")
    parser.add_argument("--plain", action="store_true", help="whole database, next to pgloader")
    parser.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        default=CAMERA_COUNTS.name,
        help="with --plain: the camera-counting database, or one shaped like MySQL's employees "
        "sample (issue 3's reference figures)",
    )
    parser.add_argument(
        "--dlt",
        action="store_true",
        help="with --plain: also copy with tuned dlt (bench/.venv-dlt, made by bench/setup.sh)",
    )
    parser.add_argument(
        "--workers",
        default="1,2,4",
        type=lambda s: [int(w) for w in s.split(",")],
        help="comma-separated worker counts (default 1,2,4; --plain uses the first, or 2)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="rows per chunk (default: Ferry's own)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="time each run this many times and report the median (--plain: interleaved)",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="no mariadb | COPY run")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one copy, run synchronously in one thread"
    )
    parser.add_argument("--keep", action="store_true", help="keep the target databases")
    parser.add_argument("--mysql", default="root@127.0.0.1:3306", help="user@host:port")
    parser.add_argument("--pg", default="postgres@127.0.0.1:5432", help="user@host:port")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _split(value: str) -> tuple[str, str, int]:
    user, _, hostport = value.rpartition("@")
    host, _, port = hostport.partition(":")
    return user, host, int(port)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child is not None:
        return run_child(args.child, args.workers[0], args.profile_out)
    my_user, my_host, my_port = _split(args.mysql)
    pg_user, pg_host, pg_port = _split(args.pg)
    servers = Servers(my_host, my_port, my_user, pg_host, pg_port, pg_user)
    for tool in ("mariadb", "psql"):
        if shutil.which(tool) is None:
            raise BenchError(f"`{tool}` is not on PATH: run `bash bench/setup.sh`")
    print(
        f"copy_bench: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"MariaDB {servers.my_host}:{servers.my_port}, PostgreSQL {servers.pg_host}:"
        f"{servers.pg_port}"
    )
    dataset = DATASETS[args.dataset]
    if dataset is not CAMERA_COUNTS and not args.plain:
        raise BenchError(f"--dataset {dataset.name} is a --plain copy: add --plain")
    servers = replace(servers, source_db=dataset.database)
    ensure_source(
        servers, dataset, args.rows if dataset is CAMERA_COUNTS else EMPLOYEES, args.regenerate
    )
    strays = drop_strays(servers, dataset.tables)
    if strays:
        print(f"source: dropped tables an earlier copy left there: {', '.join(strays)}")
    targets = Targets(servers, args.keep)
    try:
        if args.plain:
            failures = run_plain(args, servers, targets, dataset.tables)
        else:
            failures = run_transforms(args, servers, targets)
    finally:
        targets.drop_all()
    print(
        f"\nsource kept: drop it with  mariadb -h {servers.my_host} -u {servers.my_user} "
        f"-e 'DROP DATABASE {dataset.database}'"
    )
    if failures:
        print(f"{failures} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"copy_bench: {error}", file=sys.stderr)
        sys.exit(2)
