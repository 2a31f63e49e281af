"""What a Python migration's `upgrade(ctx)` / `downgrade(ctx)` receives."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, CursorResult, text


@dataclass
class MigrationContext:
    """The connection (inside the migration's transaction where the database has one),
    the dialect name, the placeholders and a logger.
    """

    connection: Connection
    dialect: str
    placeholders: dict[str, str]
    log: logging.Logger

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> CursorResult[Any]:
        """Run SQL with `:name` bound parameters (values are never formatted into SQL)."""
        return self.connection.execute(text(sql), params or {})
