"""Ferry's own bookkeeping tables: never part of the user's schema or data."""

FERRY_TABLES = frozenset(
    {
        "schema_migrations",
        "migration_branches",
        "migration_checkpoints",
        "ferry_rejects",
        "ferry_deferred",
        "ferry_delta_log",
        "ferry_runs",
        "ferry_schema_snapshot",
    }
)
