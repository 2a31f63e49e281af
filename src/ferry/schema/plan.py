"""What `apply` and `undo` would do, worked out from the files and the history alone."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ferry.config.project import Strategy
from ferry.errors import MigrationFileError, StrategyError, ValidationFailed
from ferry.schema.dag import ancestors, topological_order
from ferry.schema.history import AppliedState, HistoryRow
from ferry.schema.scripts import Migration, MigrationSet, Script
from ferry.schema.version import Version


class Action(StrEnum):
    APPLY = "apply"
    REAPPLY = "reapply"  # a repeatable whose checksum changed
    UNDO = "undo"


@dataclass(frozen=True)
class Step:
    """One script to run. `resume_from` skips statements that already ran (MySQL)."""

    action: Action
    script: Script
    migration: Migration | None
    reason: str
    resume_from: int = 0
    #: The failed history row this step continues, if any.
    resumes: HistoryRow | None = None
    #: Undo of a half-applied migration: tolerate "object does not exist".
    partial_undo: bool = False

    @property
    def label(self) -> str:
        version = self.script.version
        return f"{version} {self.script.description}" if version else self.script.description


@dataclass(frozen=True)
class Problem:
    """A disagreement between files and history, found by `validate`."""

    kind: str  # checksum_mismatch | missing_file | out_of_order | failed | unknown_algorithm
    version: str
    script: str
    detail: str


def find_problems(
    migrations: MigrationSet, state: AppliedState, strategy: Strategy
) -> list[Problem]:
    problems: list[Problem] = []
    for version, row in state.applied.items():
        migration = migrations.get(version)
        if migration is None:
            problems.append(
                Problem(
                    "missing_file",
                    str(version),
                    row.script,
                    f"version {version} is applied but {row.script} is gone",
                )
            )
            continue
        mismatch = _checksum_problem(migration.script, row)
        if mismatch:
            problems.append(mismatch)
    for version, row in state.failed.items():
        problems.append(
            Problem(
                "failed",
                str(version),
                row.script,
                f"version {version} failed after {row.statements_done} of "
                f"{row.statements_total} statements: {row.error or 'unknown error'}",
            )
        )
    if strategy is not Strategy.BRANCHING:
        for migration in out_of_order(migrations, state):
            problems.append(
                Problem(
                    "out_of_order",
                    str(migration.version),
                    migration.script.name,
                    f"version {migration.version} is pending but {state.max_applied} is applied",
                )
            )
    return problems


def _checksum_problem(script: Script, row: HistoryRow) -> Problem | None:
    if row.checksum is None or row.checksum_algorithm is None:
        return None
    try:
        current = script.checksum_with(row.checksum_algorithm)
    except KeyError:
        return Problem(
            "unknown_algorithm",
            str(script.version),
            script.name,
            f"checksum algorithm `{row.checksum_algorithm}` is unknown to this Ferry",
        )
    if current == row.checksum:
        return None
    return Problem(
        "checksum_mismatch",
        str(script.version or ""),
        script.name,
        f"{script.name} changed after it was applied "
        f"(history {row.checksum[:12]}, file {current[:12]})",
    )


def pending(migrations: MigrationSet, state: AppliedState, strategy: Strategy) -> list[Migration]:
    """Versioned migrations not yet applied (above the baseline), in the order they run."""
    order = (
        topological_order(migrations.versioned)
        if strategy is Strategy.BRANCHING
        else migrations.versioned
    )
    return [
        m
        for m in order
        if m.version not in state.applied and (state.baseline is None or m.version > state.baseline)
    ]


def out_of_order(migrations: MigrationSet, state: AppliedState) -> list[Migration]:
    top = state.max_applied
    if top is None:
        return []
    return [
        m
        for m in pending(migrations, state, Strategy.VERSIONED)
        if m.version < top and m.version not in state.failed
    ]


def plan_apply(
    migrations: MigrationSet,
    state: AppliedState,
    strategy: Strategy,
    *,
    to: Version | None = None,
    allow_out_of_order: bool = False,
) -> list[Step]:
    """The steps of `ferry apply`.

    Raises:
        ValidationFailed: applied scripts changed or vanished.
        StrategyError: out-of-order migrations the strategy or the flags do not allow.
    """
    blocking = [
        p
        for p in find_problems(migrations, state, strategy)
        if p.kind in ("checksum_mismatch", "missing_file", "unknown_algorithm")
    ]
    if blocking:
        raise ValidationFailed(
            "history and files disagree: " + "; ".join(p.detail for p in blocking),
            hint="restore the original files, or run `ferry repair` if the change was deliberate",
        )
    if to is not None and to not in migrations.by_version:
        raise StrategyError(
            f"there is no migration with version {to}", hint="`ferry status` lists the versions"
        )
    late = out_of_order(migrations, state) if strategy is not Strategy.BRANCHING else []
    if to is not None:
        late = [m for m in late if m.version <= to]
    if late:
        names = ", ".join(str(m.version) for m in late)
        if strategy is Strategy.FORWARD_ONLY:
            raise StrategyError(
                f"versions {names} are older than the applied {state.max_applied}, "
                "and the forward_only strategy never runs migrations out of order",
                hint="give them versions above the latest applied one",
            )
        if not allow_out_of_order:
            raise StrategyError(
                f"versions {names} are older than the applied {state.max_applied}",
                hint="run them anyway with `ferry apply --out-of-order`, "
                "or renumber them above the latest applied version",
            )
    todo = pending(migrations, state, strategy)
    if to is not None:
        if strategy is Strategy.BRANCHING:
            wanted = ancestors(migrations, to)
            todo = [m for m in todo if m.version in wanted]
        else:
            todo = [m for m in todo if m.version <= to]
    steps = [_apply_step(m, state) for m in todo]
    steps.extend(_repeatable_steps(migrations, state))
    return steps


def _apply_step(migration: Migration, state: AppliedState) -> Step:
    failed = state.failed.get(migration.version)
    if failed is None:
        return Step(Action.APPLY, migration.script, migration, "pending")
    if failed.statements_done > 0:
        return Step(
            Action.APPLY,
            migration.script,
            migration,
            f"resume after failure: {failed.statements_done} of "
            f"{failed.statements_total} statements ran",
            resume_from=failed.statements_done,
            resumes=failed,
        )
    return Step(Action.APPLY, migration.script, migration, "retry after failure", resumes=failed)


def _repeatable_steps(migrations: MigrationSet, state: AppliedState) -> list[Step]:
    steps = []
    for script in migrations.repeatable:
        row = state.repeatable.get(script.description)
        if row is None:
            steps.append(Step(Action.APPLY, script, None, "new repeatable"))
            continue
        try:
            same = row.checksum == script.checksum_with(row.checksum_algorithm or "")
        except KeyError:
            same = False
        if not same:
            steps.append(Step(Action.REAPPLY, script, None, "checksum changed"))
    return steps


def plan_undo(
    migrations: MigrationSet,
    state: AppliedState,
    strategy: Strategy,
    *,
    to: Version | None = None,
    steps: int | None = None,
    only: set[Version] | None = None,
) -> list[Step]:
    """The steps of `ferry undo`: newest first, `steps` of them, down to version `to`, or
    exactly the versions in `only` (rolling back one run).

    Raises:
        StrategyError: undo under forward_only, or both/neither bounds given wrongly.
        MigrationFileError: a migration to undo has no undo script.
    """
    if strategy is Strategy.FORWARD_ONLY:
        raise StrategyError(
            "the forward_only strategy never undoes migrations",
            hint="write a new migration that reverses the change, "
            'or set migrations.strategy = "versioned"',
        )
    if to is not None and steps is not None:
        raise StrategyError("give either --to or --steps, not both")
    if steps is not None and steps < 1:
        raise StrategyError(f"--steps must be 1 or more, got {steps}")
    # Half-applied migrations count as applied at the rank of their failed row.
    live: dict[Version, HistoryRow] = dict(state.applied)
    for version, row in state.failed.items():
        if (not row.type.is_undo and row.statements_done > 0) or row.type.is_undo:
            live[version] = row
    newest_first = sorted(live.items(), key=lambda item: item[1].installed_rank, reverse=True)
    if to is not None:
        if to != Version("0") and to not in migrations.by_version and to != state.baseline:
            raise StrategyError(f"there is no migration with version {to}")
        keep = ancestors(migrations, to) if strategy is Strategy.BRANCHING else None
        chosen = [
            (v, r) for v, r in newest_first if (v not in keep if keep is not None else v > to)
        ]
    elif only is not None:
        chosen = [(v, r) for v, r in newest_first if v in only]
    else:
        chosen = newest_first[: 1 if steps is None else steps]
    plan: list[Step] = []
    for version, row in chosen:
        migration = migrations.get(version)
        if migration is None:
            raise MigrationFileError(
                f"version {version} is applied but its file is gone; cannot undo it",
                file=Path(row.script),
                hint="restore the file, or run `ferry repair` to forget it",
            )
        if migration.undo is None:
            raise MigrationFileError(
                f"version {version} has no undo script",
                file=migration.script.path.with_name(
                    f"U{version}__{migration.script.path.name.split('__', 1)[1]}"
                ),
                hint="write this undo script (it runs in reverse), then try again",
            )
        partial = not row.success and not row.type.is_undo
        resume = row.statements_done if (not row.success and row.type.is_undo) else 0
        reason = "applied"
        if partial:
            reason = f"half applied ({row.statements_done} of {row.statements_total} statements)"
        elif resume:
            reason = f"resume undo after failure: {resume} statements ran"
        plan.append(
            Step(
                Action.UNDO,
                migration.undo,
                migration,
                reason,
                resume_from=resume,
                resumes=row if not row.success else None,
                partial_undo=partial,
            )
        )
    return plan
