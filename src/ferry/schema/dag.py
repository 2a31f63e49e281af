"""The version graph. Linear strategies chain versions; `branching` reads directives.

Under `branching`, a migration's parents are its `-- ferry:requires` versions, or else the
previous version on its own branch. Several heads are several branches.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from ferry.errors import BranchError, MigrationFileError
from ferry.schema.scripts import DEFAULT_BRANCH, Migration, MigrationSet
from ferry.schema.version import Version


def link(migrations: MigrationSet, *, branching: bool) -> None:
    """Set each migration's branch and parents in place.

    Raises:
        MigrationFileError: a `requires` naming an unknown version, or a branch whose first
            migration requires nothing.
        BranchError: the requirements form a cycle.
    """
    last_on_branch: dict[str, Version] = {}
    previous: Version | None = None
    for migration in migrations.versioned:
        directives = migration.script.directives
        if not branching:
            migration.branch = DEFAULT_BRANCH
            migration.parents = (previous,) if previous is not None else ()
            previous = migration.version
            continue
        if directives.requires:
            for required in directives.requires:
                if required not in migrations.by_version:
                    raise MigrationFileError(
                        f"requires version {required}, which no migration has",
                        file=migration.script.path,
                        hint="fix the `-- ferry:requires` line",
                    )
            first_parent = migrations.by_version[directives.requires[0]]
            migration.branch = directives.branch or first_parent.branch
            migration.parents = directives.requires
        else:
            migration.branch = directives.branch or DEFAULT_BRANCH
            before = last_on_branch.get(migration.branch)
            if before is None and migration.branch != DEFAULT_BRANCH:
                raise MigrationFileError(
                    f"first migration of branch `{migration.branch}` says what it builds on",
                    file=migration.script.path,
                    hint="add `-- ferry:requires <version>` naming the version it branches from",
                )
            migration.parents = (before,) if before is not None else ()
        last_on_branch[migration.branch] = migration.version
    topological_order(migrations.versioned)  # raises on a cycle


def topological_order(migrations: Iterable[Migration]) -> list[Migration]:
    """Parents before children; among ready ones, the lowest version first."""
    nodes = {m.version: m for m in migrations}
    waiting = {v: sum(1 for p in m.parents if p in nodes) for v, m in nodes.items()}
    children: dict[Version, list[Version]] = {v: [] for v in nodes}
    for version, migration in nodes.items():
        for parent in migration.parents:
            if parent in nodes:
                children[parent].append(version)
    ready = [v for v, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[Migration] = []
    while ready:
        version = heapq.heappop(ready)
        order.append(nodes[version])
        for child in children[version]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    if len(order) != len(nodes):
        stuck = sorted(v for v, n in waiting.items() if n > 0)
        raise BranchError(
            "the `requires` directives form a cycle among versions "
            + ", ".join(str(v) for v in stuck),
            hint="a migration can only require versions that do not depend on it",
        )
    return order


def heads(migrations: MigrationSet) -> list[Migration]:
    """Migrations nothing builds on, lowest version first."""
    has_child = {p for m in migrations.versioned for p in m.parents}
    return [m for m in migrations.versioned if m.version not in has_child]


def ancestors(migrations: MigrationSet, version: Version) -> set[Version]:
    """The version and everything it builds on."""
    seen: set[Version] = set()
    stack = [version]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        migration = migrations.get(current)
        if migration is not None:
            stack.extend(migration.parents)
    return seen
