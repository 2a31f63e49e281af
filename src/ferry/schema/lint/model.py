"""Rules, findings and reports of the migration lint."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SEVERITIES = ("none", "low", "medium", "high")
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

#: A lock or rewrite on fewer rows is brief (low); below HIGH_ROWS it is medium, then high.
LOW_ROWS = 100_000
HIGH_ROWS = 10_000_000
#: An UPDATE or DELETE on a bigger table should run in batches.
LARGE_TABLE_ROWS = 1_000_000
#: Rough throughput behind the estimates, in rows per second.
REWRITE_RATE = 1_000_000
INDEX_RATE = 500_000


@dataclass(frozen=True)
class Rule:
    """A lint rule: its name (as `-- ferry:allow` names it), category and what it catches."""

    name: str
    category: str  # data_loss | downtime | rollback | performance
    summary: str


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("drop-table", "data_loss", "DROP TABLE deletes a table and its rows"),
        Rule("drop-column", "data_loss", "DROP COLUMN discards the column's data"),
        Rule("truncate", "data_loss", "TRUNCATE deletes every row"),
        Rule("delete-without-where", "data_loss", "DELETE without WHERE deletes every row"),
        Rule("update-without-where", "data_loss", "UPDATE without WHERE overwrites every row"),
        Rule("narrowing-type", "data_loss", "a smaller column type truncates or rejects values"),
        Rule("table-rewrite", "downtime", "the statement rewrites or scans the table under lock"),
        Rule("index-without-concurrently", "downtime", "an index build blocks writes"),
        Rule("not-null-without-default", "downtime", "ADD COLUMN NOT NULL without DEFAULT"),
        Rule("constraint-without-not-valid", "downtime", "a new constraint checks every row"),
        Rule("missing-lock-timeout", "downtime", "ALTER TABLE may queue all queries on its lock"),
        Rule("no-undo", "rollback", "a versioned migration has no undo script"),
        Rule("non-transactional-ddl", "rollback", "a failure leaves earlier statements applied"),
        Rule("select-star-in-view", "performance", "a view's SELECT * is frozen at creation"),
        Rule("large-update", "performance", "one UPDATE/DELETE on a large table"),
    )
}


@dataclass(frozen=True)
class Finding:
    """One risk found in one statement (or, for file-level rules, anchored at one)."""

    rule: str
    category: str
    severity: str  # low | medium | high
    file: Path
    line: int
    statement: str
    message: str
    suggestion: str
    table: str | None = None
    rows: int | None = None
    estimate: str | None = None


@dataclass
class LintReport:
    """The findings of `lint_migrations`, in migration order and then by line."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def overall(self) -> str:
        """The highest severity found: none, low, medium or high."""
        return max((f.severity for f in self.findings), key=_RANK.__getitem__, default="none")

    def at_least(self, severity: str) -> list[Finding]:
        """Findings of `severity` or worse (for a CI gate such as `--fail-on medium`)."""
        return [f for f in self.findings if _RANK[f.severity] >= _RANK[severity]]
