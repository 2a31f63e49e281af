"""Branches of the version graph: list them, merge their heads, rebase one onto another."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ferry.config.project import Project, Strategy
from ferry.db.target import open_target
from ferry.errors import BranchError, FerryError, StrategyError
from ferry.schema.commands import load_migrations
from ferry.schema.dag import ancestors, heads, topological_order
from ferry.schema.history import History
from ferry.schema.scripts import Language, Migration, MigrationSet, Script
from ferry.schema.version import Version

_REQUIRES_LINE = re.compile(r"^\s*(--|#)\s*ferry:requires\b.*(\n|$)", re.MULTILINE)
_BRANCH_LINE = re.compile(r"^\s*(--|#)\s*ferry:branch\b.*$", re.MULTILINE)


def _require_branching(project: Project) -> None:
    if project.strategy is not Strategy.BRANCHING:
        raise StrategyError(
            f"branches need the branching strategy (this project uses {project.strategy})",
            hint='set migrations.strategy = "branching" in ferry.toml',
        )


@dataclass
class BranchInfo:
    name: str
    head: str
    migrations: list[str]
    #: target name -> version of this branch applied last there ("" when none).
    applied: dict[str, str]
    #: Its last migration is required by a migration of another branch (a merge).
    merged: bool = False


def branches(project: Project, *, with_targets: bool = True) -> list[BranchInfo]:
    """Branches from the files, with the head each target has recorded."""
    _require_branching(project)
    migrations = load_migrations(project)
    by_branch: dict[str, list[Migration]] = {}
    for migration in topological_order(migrations.versioned):
        by_branch.setdefault(migration.branch, []).append(migration)
    recorded: dict[str, dict[str, str]] = {}
    if with_targets:
        for name in project.target_names():
            target = open_target(project, name)
            try:
                with target.connect() as conn:
                    recorded[name] = History(project.config.migrations.history_table).read_branches(
                        conn
                    )
            finally:
                target.dispose()
    head_of = {m.branch: m for m in heads(migrations)}
    result = []
    for branch, members in by_branch.items():
        head = head_of.get(branch, members[-1])
        result.append(
            BranchInfo(
                branch,
                str(head.version),
                [str(m.version) for m in members],
                {t: heads_.get(branch, "") for t, heads_ in recorded.items()},
                merged=branch not in head_of,
            )
        )
    return result


def _next_major(migrations: MigrationSet) -> int:
    return max((m.version.key[0] for m in migrations.versioned), default=0) + 1


def _directive(script_language: Language, text: str) -> str:
    return ("# " if script_language is Language.PYTHON else "-- ") + text


def merge(project: Project, *, description: str | None = None) -> list[Path]:
    """Write a merge migration (and its empty undo) that requires every head.

    Raises:
        BranchError: fewer than two heads.
    """
    _require_branching(project)
    migrations = load_migrations(project)
    tips = heads(migrations)
    if len(tips) < 2:
        raise BranchError("there is only one head; nothing to merge")
    version = _next_major(migrations)
    names = [m.branch for m in tips]
    slug = description or "merge_" + "_".join(names)
    slug = re.sub(r"\W+", "_", slug).strip("_")
    folder = project.migration_folders[0]
    requires = ", ".join(str(m.version) for m in tips)
    header = (
        f"-- Merge of {', '.join(f'{m.branch} (head {m.version})' for m in tips)}.\n"
        f"-- ferry:branch {tips[0].branch if 'main' not in names else 'main'}\n"
        f"-- ferry:requires {requires}\n"
    )
    forward = folder / f"V{version}__{slug}.sql"
    backward = folder / f"U{version}__{slug}.sql"
    forward.write_text(header, encoding="utf-8")
    backward.write_text(f"-- Undo of the merge {version}: nothing to revert.\n", encoding="utf-8")
    return [forward, backward]


@dataclass
class Renumbered:
    old: str
    new: str
    files: list[str]


def rebase(project: Project, branch: str, *, onto: str) -> list[Renumbered]:
    """Renumber a branch's migrations to follow `onto`, so history stays linear.

    Raises:
        BranchError: unknown branch or head; a migration of the branch is applied on some
            configured target (it would change under that target's feet).
    """
    _require_branching(project)
    migrations = load_migrations(project)
    onto_version = Version(onto)
    if onto_version not in migrations.by_version:
        raise BranchError(f"there is no version {onto} to rebase onto")
    base = ancestors(migrations, onto_version)
    # Migrations that already build on `onto` stay put, so a second rebase does nothing.
    moving = [
        m
        for m in topological_order(migrations.versioned)
        if m.branch == branch
        and m.version not in base
        and onto_version not in ancestors(migrations, m.version)
    ]
    if not any(m.branch == branch for m in migrations.versioned):
        known = sorted({m.branch for m in migrations.versioned})
        raise BranchError(f"there is no branch `{branch}`", hint=f"branches: {', '.join(known)}")
    if not moving:
        return []
    _refuse_if_applied(project, moving)
    first = _next_major(migrations)
    mapping = {m.version: Version(str(first + i)) for i, m in enumerate(moving)}
    changes = []
    for migration in moving:
        new = mapping[migration.version]
        parents = [mapping.get(p, p) for p in migration.parents]
        parents = [p if (p in mapping.values() or p in base) else onto_version for p in parents]
        parents = list(dict.fromkeys(parents)) or [onto_version]
        if migration is moving[0]:
            parents = [p for p in parents if p in mapping.values()] + [onto_version]
        files = [_rewrite(migration.script, new, branch, parents)]
        if migration.undo is not None and migration.undo.path != migration.script.path:
            files.append(_rename(migration.undo, new))
        changes.append(Renumbered(str(migration.version), str(new), files))
    return changes


def _refuse_if_applied(project: Project, moving: list[Migration]) -> None:
    versions = {m.version for m in moving}
    history = History(project.config.migrations.history_table)
    for name in project.target_names():
        target = open_target(project, name)
        try:
            with target.connect() as conn:
                state = history.read(conn)
        except FerryError as exc:
            raise BranchError(
                f"cannot check target `{name}` before rebasing: {exc.message}",
                hint="every configured target must answer, so no applied migration is renumbered",
            ) from exc
        finally:
            target.dispose()
        touched = sorted(versions & (set(state.applied) | set(state.failed)))
        if touched:
            raise BranchError(
                f"version {touched[0]} of this branch is applied on target `{name}`; "
                "rebasing would renumber a migration that already ran",
                hint="undo it there first, or merge the branches with `ferry merge` instead",
            )


def _new_name(script: Script, version: Version) -> str:
    prefix = script.name[0]
    return f"{prefix}{version}__{script.name.split('__', 1)[1]}"


def _rename(script: Script, version: Version) -> str:
    target = script.path.with_name(_new_name(script, version))
    script.path.rename(target)
    return target.name


def _rewrite(script: Script, version: Version, branch: str, parents: list[Version]) -> str:
    text = script.path.read_text(encoding="utf-8")
    text = _REQUIRES_LINE.sub("", text)
    requires = _directive(script.language, "ferry:requires " + ", ".join(map(str, parents)))
    if _BRANCH_LINE.search(text):
        text = _BRANCH_LINE.sub(lambda m: m.group(0) + "\n" + requires, text, count=1)
    else:
        text = _directive(script.language, f"ferry:branch {branch}") + "\n" + requires + "\n" + text
    target = script.path.with_name(_new_name(script, version))
    target.write_text(text, encoding="utf-8")
    script.path.unlink()
    return target.name
