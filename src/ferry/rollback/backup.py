"""Backups of a target's tables, and a restore that proves itself.

A backup is a folder under the project's backup location holding the dump and a manifest:
the database it came from, the tables with their row counts and content checksums, the
tool and its version. PostgreSQL uses pg_dump/pg_restore, MariaDB mariadb-dump/mariadb,
SQLite its online backup API. A restore refuses a backup of another database, and after
restoring recomputes every checksum and compares it with the manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from sqlalchemy import MetaData, Table, inspect, select

from ferry.data.extract import stream_select
from ferry.db.bookkeeping import FERRY_TABLES
from ferry.db.sqlite import database_path
from ferry.db.target import Target
from ferry.errors import FerryError

MANIFEST = "manifest.json"


class BackupError(FerryError):
    """A backup or restore could not be made, or did not prove itself."""

    exit_code = 10


@dataclass
class Backup:
    id: str
    created_at: str
    target: str
    dialect: str
    database: str
    tables: dict[str, dict[str, Any]]  # name -> {"rows": n, "checksum": hex}
    tool: str
    tool_version: str
    file: str
    run_id: str | None = None
    #: every table and view of the database when the backup was made (an exact restore
    #: drops what came after)
    all_tables: list[str] = field(default_factory=list)
    all_views: list[str] = field(default_factory=list)
    folder: Path = field(default=Path(), repr=False)

    def manifest(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("folder")
        return data


def _location(root: Path) -> Path:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".ferry-write-test-{uuid.uuid4().hex[:6]}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise BackupError(
            f"the backup location {root} cannot be written: {error.strerror or error}",
            hint="fix `backups.location` in ferry.toml or the folder's permissions",
        ) from error
    return root


def _tool(name: str) -> tuple[str, str]:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"`{name}` is not installed",
            hint=f"install it (Debian: the package that provides {name})",
        )
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return path, (out.stdout or out.stderr).strip().splitlines()[0]


def table_checksums(target: Target, tables: list[str]) -> dict[str, dict[str, Any]]:
    """Row count and a content checksum per table: rows in key order, as CSV, hashed."""
    found: dict[str, dict[str, Any]] = {}
    meta = MetaData()
    for name in tables:
        with target.connect() as conn:
            table = Table(name, meta, autoload_with=conn)
        order = list(table.primary_key.columns) or list(table.columns)
        query = select(*table.columns).order_by(*order)
        digest = hashlib.sha256()
        rows = 0
        batches = stream_select(target, query, 100_000)
        for batch in batches:
            rows += batch.num_rows
            digest.update(_csv(pa.Table.from_batches([batch])))
        found[name] = {"rows": rows, "checksum": digest.hexdigest()}
    return found


def _csv(table: pa.Table) -> bytes:
    columns = {}
    for field_ in table.schema:
        values = table[field_.name]
        if pa.types.is_binary(field_.type) or pa.types.is_large_binary(field_.type):
            values = pa.array([None if v is None else v.hex() for v in values.to_pylist()])
        elif not pa.types.is_string(field_.type):
            values = pc.cast(values, pa.string())
        columns[field_.name] = values
    buffer = io.BytesIO()
    pcsv.write_csv(pa.table(columns), buffer, pcsv.WriteOptions(include_header=False))
    return buffer.getvalue()


def _user_tables(target: Target, tables: list[str] | None, include_ferry: bool) -> list[str]:
    names = [
        n
        for n in inspect(target.engine).get_table_names()
        if include_ferry or n not in FERRY_TABLES
    ]
    if tables is None:
        return names
    unknown = sorted(set(tables) - set(names))
    if unknown:
        raise BackupError(f"target `{target.name}` has no table {', '.join(unknown)}")
    return tables


def touched_scope(target: Target, tables: Iterable[str], *, also: Iterable[str] = ()) -> list[str]:
    """The tables a backup of what a run touches must hold: those of `tables` that exist,
    every table linked to them by foreign keys (a restore drops and recreates a table, which
    the database refuses while a table outside the backup references it), Ferry's own tables
    and `also` (a renamed history table), when they exist."""
    inspector = inspect(target.engine)
    existing = inspector.get_table_names()
    by_lower = {name.lower(): name for name in existing}
    wanted = {by_lower[t.lower()] for t in tables if t.lower() in by_lower}
    links: dict[str, set[str]] = {name: set() for name in existing}
    for (_, name), keys in inspector.get_multi_foreign_keys().items():
        for key in keys:
            referred = key["referred_table"]
            if name in links and referred in links:
                links[name].add(referred)
                links[referred].add(name)
    queue = list(wanted)
    while queue:
        for linked in links.get(queue.pop(), ()):
            if linked not in wanted:
                wanted.add(linked)
                queue.append(linked)
    own = FERRY_TABLES | set(also)
    return [name for name in existing if name in wanted or name in own]


def create_backup(
    target: Target,
    root: Path,
    *,
    tables: list[str] | None = None,
    run_id: str | None = None,
    include_ferry: bool = False,
) -> Backup:
    """Back up `tables` (default: every table; Ferry's own only with `include_ferry`). A
    backup of some tables also dumps every view, so that a restore can drop and recreate
    tables that views depend on.

    Raises:
        BackupError: the location is not writable, a tool is missing or fails.
    """
    location = _location(root)
    names = _user_tables(target, tables, include_ferry)
    inspector = inspect(target.engine)
    everything, views = inspector.get_table_names(), inspector.get_view_names()
    backup_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    folder = location / backup_id
    folder.mkdir()
    database = str(target.url.database or "")
    try:
        dumped = names if tables is None else [*names, *views]
        if dumped or tables is None or target.adapter.name == "sqlite":
            tool, version, file = _dump(target, folder, dumped)
        else:  # nothing to back up; pg_dump and mariadb-dump would dump everything
            tool, version, file = "none", "", ""
        backup = Backup(
            backup_id,
            datetime.now(UTC).isoformat(timespec="seconds"),
            target.safe_url,
            target.adapter.name,
            database,
            table_checksums(target, names),
            tool,
            version,
            file,
            run_id,
            everything,
            views,
            folder,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    (folder / MANIFEST).write_text(json.dumps(backup.manifest(), indent=2))
    return backup


def _dump(target: Target, folder: Path, tables: list[str]) -> tuple[str, str, str]:
    url = target.url
    name = target.adapter.name
    if name == "sqlite":
        path = database_path(url)
        if path is None:
            raise BackupError("an in-memory SQLite database cannot be backed up")
        with sqlite3.connect(path) as source, sqlite3.connect(folder / "backup.db") as copy:
            source.backup(copy)
        return "sqlite3-backup-api", sqlite3.sqlite_version, "backup.db"
    if name == "postgresql":
        tool, version = _tool("pg_dump")
        args = [tool, "-Fc", "-f", str(folder / "dump.pgc"), *_pg_conn(target)]
        for table in tables:
            args += ["-t", table]
        _run(args, _pg_env(target), "pg_dump")
        return "pg_dump", version, "dump.pgc"
    tool, version = _tool("mariadb-dump")
    with (folder / "dump.sql").open("wb") as out:
        _run(
            [
                tool,
                "--single-transaction",
                "--skip-lock-tables",
                *_my_conn(target),
                str(url.database),
                *tables,
            ],
            _my_env(target),
            "mariadb-dump",
            stdout=out,
        )
    return "mariadb-dump", version, "dump.sql"


def _pg_conn(target: Target) -> list[str]:
    url = target.url
    return [
        "-h",
        url.host or "127.0.0.1",
        "-p",
        str(url.port or 5432),
        "-U",
        url.username or "postgres",
        "-d",
        str(url.database),
    ]


def _pg_env(target: Target) -> dict[str, str]:
    import os

    env = dict(os.environ)
    if target.url.password:
        env["PGPASSWORD"] = str(target.url.password)  # never on the command line
    return env


def _my_conn(target: Target) -> list[str]:
    url = target.url
    return [
        "-h",
        url.host or "127.0.0.1",
        "-P",
        str(url.port or 3306),
        "-u",
        url.username or "root",
    ]


def _my_env(target: Target) -> dict[str, str]:
    import os

    env = dict(os.environ)
    if target.url.password:
        env["MYSQL_PWD"] = str(target.url.password)  # never on the command line
    return env


def _run(args: list[str], env: dict[str, str], what: str, **kwargs: Any) -> None:
    result = subprocess.run(args, env=env, stderr=subprocess.PIPE, check=False, **kwargs)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise BackupError(f"{what} failed: {message[-1] if message else result.returncode}")


def _drop_newer(target: Target, backup: Backup) -> None:
    inspector = inspect(target.engine)
    views = [v for v in inspector.get_view_names() if v not in backup.all_views]
    tables = [t for t in inspector.get_table_names() if t not in backup.all_tables]
    if not views and not tables:
        return
    unchecked = target.adapter.unchecked_drops
    with target.connect() as conn:
        if unchecked:
            conn.exec_driver_sql(unchecked[0])
            conn.commit()
        for view in views:
            conn.exec_driver_sql(target.adapter.drop_sql("VIEW", view))
        for table in tables:
            conn.exec_driver_sql(target.adapter.drop_sql("TABLE", table))
        conn.commit()
        if unchecked:
            conn.exec_driver_sql(unchecked[1])
            conn.commit()


def list_backups(root: Path) -> list[Backup]:
    """Backups under the location, newest first."""
    found: list[Backup] = []
    if not root.is_dir():
        return found
    for manifest in sorted(root.glob(f"*/{MANIFEST}"), reverse=True):
        data = json.loads(manifest.read_text())
        found.append(Backup(**data, folder=manifest.parent))
    return found


def restore_backup(
    target: Target, root: Path, backup_id: str, *, exact: bool = False
) -> dict[str, Any]:
    """Put a backup's tables back and prove it: every table's rows and checksum must equal
    the manifest's. `exact` also drops tables and views made after the backup, so the
    database is as it was (safe mode).

    Raises:
        BackupError: no such backup, a backup of another database, a failing tool, or a
            restored table that does not match its manifest.
    """
    matches = [b for b in list_backups(root) if b.id == backup_id]
    if not matches:
        raise BackupError(
            f"there is no backup {backup_id} in {root}", hint="`ferry backups` lists them"
        )
    backup = matches[0]
    if (backup.dialect, backup.database) != (target.adapter.name, str(target.url.database or "")):
        raise BackupError(
            f"backup {backup_id} is of {backup.dialect} database `{backup.database}`, "
            f"not of target `{target.name}` ({target.safe_url})",
            hint="restore it into the database it came from",
        )
    tables = list(backup.tables)
    target.dispose()  # no pooled connection may hold the tables being replaced
    if not backup.file:
        pass  # a backup of no tables: only the exact restore's drops below
    elif backup.dialect == "sqlite":
        path = database_path(target.url)
        assert path is not None
        with sqlite3.connect(backup.folder / backup.file) as source, sqlite3.connect(path) as live:
            source.backup(live)
    elif backup.dialect == "postgresql":
        tool, _ = _tool("pg_restore")
        _run(
            [
                tool,
                "--clean",
                "--if-exists",
                "--single-transaction",
                *_pg_conn(target),
                str(backup.folder / backup.file),
            ],
            _pg_env(target),
            "pg_restore",
        )
    else:
        tool, _ = _tool("mariadb")
        with (backup.folder / backup.file).open("rb") as dump:
            _run(
                [tool, *_my_conn(target), str(target.url.database)],
                _my_env(target),
                "mariadb",
                stdin=dump,
            )
    if exact:
        _drop_newer(target, backup)
    now = table_checksums(target, tables)
    wrong = [t for t in tables if now.get(t) != backup.tables[t]]
    if wrong:
        raise BackupError(
            f"restore of {backup_id} does not match its manifest for {', '.join(wrong)}",
            hint="the backup files may be damaged; do not rely on this backup",
        )
    return {"backup": backup_id, "tables": now}
