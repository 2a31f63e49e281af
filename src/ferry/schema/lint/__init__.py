"""Lint and risk assessment of migration SQL, statement by statement (Atlas/Squawk-like).

Each statement is parsed with sqlglot in the target's dialect and checked by rules in four
categories: data_loss, downtime, rollback and performance. A rule also sees what the file did
before the statement (tables it created, columns it added, whether it set ``lock_timeout``)
and, across files, the column types earlier migrations declared, so it can tell a narrowing
type change from a widening one. Severity comes from the table's size when it is known
(:func:`table_sizes`): the same ALTER is harmless on a lookup table and an outage on a
50M-row one.

The linter never raises on SQL it cannot parse: it falls back to the rules a regular
expression can check safely (DROP TABLE, TRUNCATE).

Rules are silenced with ``-- ferry:allow rule[, rule]``: in the file's header (before the
first statement) for the whole file; inside a statement, on the comment lines immediately
above it, or after it on its last line for that statement only.
"""

from ferry.schema.lint.linter import lint_migrations, lint_statements
from ferry.schema.lint.model import RULES, SEVERITIES, Finding, LintReport, Rule
from ferry.schema.lint.sizes import table_sizes
from ferry.schema.lint.sql import ColumnTypes

__all__ = [
    "RULES",
    "SEVERITIES",
    "ColumnTypes",
    "Finding",
    "LintReport",
    "Rule",
    "lint_migrations",
    "lint_statements",
    "table_sizes",
]
