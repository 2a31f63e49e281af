"""Migration files on disk: Flyway names, directives, checksums, and the set they form."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ferry.errors import MigrationFileError
from ferry.schema.checksum import CURRENT_ALGORITHM, checksum
from ferry.schema.version import Version

_NAME = re.compile(
    r"^(?P<prefix>[VU])(?P<version>[^_]+(?:_(?!_)[^_]+)*)__(?P<desc>.+)\.(?P<ext>sql|py)$"
)
_REPEATABLE = re.compile(r"^R__(?P<desc>.+)\.(?P<ext>sql|py)$")
# Python files that are not migrations (helpers, packages) are left alone.
_PY_MIGRATION_LIKE = re.compile(r"^[VUR](\d|_)")
_DIRECTIVE = re.compile(r"^\s*(?:--|#)\s*ferry:(?P<name>[a-z][a-z-]*)\b(?P<arg>.*)$")
# Near misses (`-- ferry: branch x`, `-- Ferry:...`) would silently do nothing.
_NEAR_DIRECTIVE = re.compile(r"^\s*(?:--|#)\s*ferry\s*:", re.IGNORECASE)
_DOWNGRADE = re.compile(r"^def downgrade\s*\(", re.MULTILINE)
KNOWN_DIRECTIVES = ("no-transaction", "branch", "requires", "allow")
DEFAULT_BRANCH = "main"


class Kind(StrEnum):
    VERSIONED = "versioned"
    UNDO = "undo"
    REPEATABLE = "repeatable"


class Language(StrEnum):
    SQL = "sql"
    PYTHON = "python"


@dataclass(frozen=True)
class Directives:
    """`-- ferry:...` comments in a script (`# ferry:...` in Python)."""

    no_transaction: bool = False
    branch: str | None = None
    requires: tuple[Version, ...] = ()
    allow: tuple[str, ...] = ()


@dataclass(frozen=True)
class Script:
    """One migration file. Its text is read again when it runs, so memory stays flat."""

    path: Path
    kind: Kind
    version: Version | None
    description: str
    language: Language
    checksum: str
    directives: Directives
    has_downgrade: bool = False
    algorithm: str = CURRENT_ALGORITHM

    @property
    def name(self) -> str:
        return self.path.name

    def read_text(self) -> str:
        """The script's text.

        Raises:
            MigrationFileError: the file is not UTF-8.
        """
        try:
            return self.path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise MigrationFileError(
                f"not UTF-8 text (byte {exc.start})",
                file=self.path,
                hint="save the file as UTF-8",
            ) from exc

    def checksum_with(self, algorithm: str) -> str:
        """The checksum under another (older) algorithm, to compare with a history row."""
        if algorithm == self.algorithm:
            return self.checksum
        return checksum(self.path.read_bytes(), algorithm)


@dataclass
class Migration:
    """A versioned migration with its undo script, if any."""

    script: Script
    undo: Script | None = None
    branch: str = DEFAULT_BRANCH
    parents: tuple[Version, ...] = ()

    @property
    def version(self) -> Version:
        assert self.script.version is not None
        return self.script.version

    @property
    def description(self) -> str:
        return self.script.description


@dataclass
class MigrationSet:
    """Every migration of a project, versioned ones sorted by version."""

    versioned: list[Migration] = field(default_factory=list)
    repeatable: list[Script] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_version = {m.version: m for m in self.versioned}

    def get(self, version: Version) -> Migration | None:
        return self.by_version.get(version)


def parse_directives(text: str, path: Path) -> Directives:
    """Read directives from comment lines.

    Raises:
        MigrationFileError: an unknown directive or a malformed argument, with its line.
    """
    values: dict[str, object] = {}
    if "ferry" not in text.lower():
        return Directives()
    for number, line in enumerate(text.splitlines(), start=1):
        match = _DIRECTIVE.match(line)
        if not match:
            if _NEAR_DIRECTIVE.match(line):
                raise MigrationFileError(
                    "malformed directive",
                    file=path,
                    line=number,
                    hint="write directives as `-- ferry:name args` (lower case, no space "
                    "after the colon)",
                )
            continue
        name, arg = match["name"], match["arg"].strip()
        if name not in KNOWN_DIRECTIVES:
            raise MigrationFileError(
                f"unknown directive `ferry:{name}`",
                file=path,
                line=number,
                hint=f"known directives: {', '.join('ferry:' + d for d in KNOWN_DIRECTIVES)}",
            )
        if name == "no-transaction":
            values["no_transaction"] = True
        elif name == "branch":
            if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", arg):
                raise MigrationFileError(
                    f"`ferry:branch` needs a branch name, got {arg!r}",
                    file=path,
                    line=number,
                    hint="write `-- ferry:branch feature_x`",
                )
            values["branch"] = arg
        elif name == "requires":
            parts = [part.strip() for part in arg.split(",") if part.strip()]
            if not parts or not all(Version.is_valid(p) for p in parts):
                raise MigrationFileError(
                    f"`ferry:requires` needs versions, got {arg!r}",
                    file=path,
                    line=number,
                    hint="write `-- ferry:requires 3, 4.1`",
                )
            values["requires"] = tuple(Version(p) for p in parts)
        else:
            existing = values.get("allow", ())
            assert isinstance(existing, tuple)
            values["allow"] = existing + tuple(a.strip() for a in arg.split(",") if a.strip())
    return Directives(**values)  # type: ignore[arg-type]


def read_script(path: Path) -> Script | None:
    """Parse a file name and content into a Script; None for files that are not migrations.

    Raises:
        MigrationFileError: the name looks like a migration but does not parse.
    """
    name = path.name
    ext = path.suffix.lower()
    if ext not in (".sql", ".py") or name.startswith("."):
        return None
    if ext == ".py" and not _PY_MIGRATION_LIKE.match(name):
        return None
    match = _NAME.match(name)
    repeatable = _REPEATABLE.match(name) if not match else None
    if not match and not repeatable:
        raise MigrationFileError(
            "the file name is not a migration name",
            file=path,
            hint="name it V<version>__<description>.sql (apply), "
            "U<version>__<description>.sql (undo) or R__<description>.sql (repeatable)",
        )
    version: Version | None = None
    if match:
        if not Version.is_valid(match["version"]):
            raise MigrationFileError(
                f"`{match['version']}` is not a version",
                file=path,
                hint="versions are numbers separated by dots or single underscores: "
                "V1__x.sql, V1.2__x.sql, V2024.01.15.1__x.sql",
            )
        version = Version(match["version"])
        kind = Kind.VERSIONED if match["prefix"] == "V" else Kind.UNDO
        found = match
    else:
        assert repeatable is not None
        kind, found = Kind.REPEATABLE, repeatable
    content = path.read_bytes()
    text = content.decode("utf-8-sig", errors="replace")
    return Script(
        path=path,
        kind=kind,
        version=version,
        description=found["desc"].replace("_", " ").strip(),
        language=Language.SQL if found["ext"] == "sql" else Language.PYTHON,
        checksum=checksum(content),
        directives=parse_directives(text, path),
        has_downgrade=bool(_DOWNGRADE.search(text)) if found["ext"] == "py" else False,
    )


def discover(folders: list[Path]) -> MigrationSet:
    """Read every migration under the folders (recursively).

    Raises:
        MigrationFileError: a missing folder, a bad name, a duplicate version or description,
            or an undo script without its migration.
    """
    scripts: list[Script] = []
    for folder in folders:
        if not folder.is_dir():
            raise MigrationFileError(
                "migration folder does not exist",
                file=folder,
                hint="create it, or fix `migrations.folders` in ferry.toml",
            )
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                script = read_script(path)
                if script is not None:
                    scripts.append(script)
    versioned: dict[Version, Script] = {}
    undos: dict[Version, Script] = {}
    repeatable: dict[str, Script] = {}
    for script in scripts:
        if script.kind is Kind.REPEATABLE:
            seen = repeatable.setdefault(script.description, script)
        else:
            assert script.version is not None
            table = versioned if script.kind is Kind.VERSIONED else undos
            seen = table.setdefault(script.version, script)
        if seen is not script:
            what = (
                f"description `{script.description}`"
                if script.version is None
                else f"{script.kind} version {script.version}"
            )
            raise MigrationFileError(
                f"{what} is also used by {seen.path}",
                file=script.path,
                hint="give each migration its own version (and each repeatable its own name)",
            )
    for version, orphan in undos.items():
        if version not in versioned:
            raise MigrationFileError(
                f"undo script for version {version}, but there is no V{version}__ migration",
                file=orphan.path,
                hint="rename it to match its migration, or delete it",
            )
    migrations = []
    for version in sorted(versioned):
        forward = versioned[version]
        # A Python migration with downgrade(ctx) is its own undo.
        undo = undos.get(version) or (forward if forward.has_downgrade else None)
        migrations.append(Migration(script=forward, undo=undo))
    return MigrationSet(
        versioned=migrations,
        repeatable=sorted(repeatable.values(), key=lambda s: s.description),
    )
