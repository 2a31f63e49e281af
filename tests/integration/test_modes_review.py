"""Review of `ferry copy`'s extraction and load modes: samples, incremental windows, upserts,
streams and error limits, at their edges (intervals that are no whole number, keys in step
with the interval, link tables, duplicates within a batch, unique keys of created tables,
columns a spec names that do not exist, ties on the cursor, few rows over the error rate).

Each test builds its source with plain SQL in fresh databases; `Pair.copy` checks the
report's balance read = written + rejected + filtered + deduped on every run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ferry.data.state import Counts
from ferry.data.transform import DataError
from ferry.errors import ConfigError
from tests.integration.test_copy import Pair, counts_of, make_pair, timestamp_type

pytestmark = pytest.mark.integration

PG, MY, LITE = "postgresql", "mysql", "sqlite"
SHORT = {PG: "pg", MY: "mariadb", LITE: "sqlite"}
#: Each server as the target, fed by the other.
CROSS = [(MY, PG), (PG, MY)]


def pair_id(pair: tuple[str, str]) -> str:
    return f"{SHORT[pair[0]]}-to-{SHORT[pair[1]]}"


def _numbers(pair: Pair, n: int, *, step: int = 1) -> None:
    pair.source_sql("CREATE TABLE nums (id INTEGER PRIMARY KEY, v INTEGER)")
    pair.source_sql(
        "INSERT INTO nums VALUES (:i, :v)", [{"i": i * step, "v": i} for i in range(1, n + 1)]
    )


def _sample_job(sample: str, load: str = "") -> str:
    return f"tables:\n  nums:\n    mode: sample\n    sample: {sample}\n" + load


# ------------------------------------------------------------------------------ samples


@pytest.mark.parametrize("dialects", CROSS, ids=pair_id)
@pytest.mark.parametrize("percent", [75, 60, 40, 100])
def test_systematic_sample_keeps_its_percent_when_the_interval_is_no_whole_number(
    dialects: tuple[str, str], tmp_path: Path, percent: int
) -> None:
    """75 % used to round its interval 1.33 to 1 and keep every row; 40 % kept 50 %."""
    with make_pair(dialects, tmp_path) as pair:
        _numbers(pair, 200)

        report = pair.copy(
            _sample_job(f"{{method: systematic, percent: {percent}}}", "load: {batch_size: 50}\n")
        )

        kept = percent * 2
        assert counts_of(report)["nums"] == Counts(read=200, written=kept, filtered=200 - kept)
        ids = [i for (i,) in pair.rows("nums", "id")]
        # Evenly spread: every window of 20 consecutive ids keeps its share.
        for low in range(0, 200, 20):
            assert sum(low < i <= low + 20 for i in ids) == percent // 5, low


@pytest.mark.parametrize("dialects", [(PG, MY), (LITE, LITE)], ids=pair_id)
def test_systematic_sample_of_rows_asks_for_most_of_the_table(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """`rows: 300` of 400 rows used to keep all 400 (interval round(1.33) = 1)."""
    with make_pair(dialects, tmp_path) as pair:
        _numbers(pair, 400)

        report = pair.copy(_sample_job("{method: systematic, rows: 300}"))

        assert counts_of(report)["nums"] == Counts(read=400, written=300, filtered=100)


@pytest.mark.parametrize(
    ("step", "percent"),
    [(10, 10), (3, 33.3334), (2, 50)],
    ids=["by10-10pct", "by3-third", "by2-half"],
)
def test_systematic_sample_of_keys_in_step_with_the_interval(
    tmp_path: Path, step: int, percent: float
) -> None:
    """Ids 10, 20, 30 ... sampled at 10 % used to keep every row (each id % 10 == 0); ids
    1, 4, 7 ... (a Galera cluster's auto_increment_increment = 3) at a third kept none."""
    with make_pair((PG, MY), tmp_path) as pair:
        pair.source_sql("CREATE TABLE nums (id INTEGER PRIMARY KEY, v INTEGER)")
        pair.source_sql(
            "INSERT INTO nums VALUES (:i, :v)",
            [{"i": 1 + i * step, "v": i} for i in range(300)],
        )

        job = _sample_job(f"{{method: systematic, percent: {percent}}}", "load: {batch_size: 75}\n")
        report = pair.copy(job)

        written = counts_of(report)["nums"].written
        assert abs(written - 300 * percent / 100) <= 4  # at most one row per chunk off
        first = pair.rows("nums")
        # Decided from the seed: the same rows again.
        pair.target = f"sqlite:///{tmp_path / 'again.db'}"
        again = pair.copy(job)
        assert counts_of(again) == counts_of(report)
        assert pair.rows("nums") == first


@pytest.mark.parametrize("dialects", [(MY, PG), (LITE, LITE)], ids=pair_id)
def test_stratified_sample_with_a_null_stratum_and_the_whole_table(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql("CREATE TABLE nums (id INTEGER PRIMARY KEY, grp VARCHAR(5), v INTEGER)")
        rows = [
            {"i": i, "g": None if i % 10 == 0 else "a" if i % 2 else "b"} for i in range(1, 101)
        ]
        pair.source_sql("INSERT INTO nums VALUES (:i, :g, 0)", rows)

        report = pair.copy(_sample_job("{method: stratified, by: grp, percent: 20}"))

        groups = [g for (g,) in pair.rows("nums", "grp")]
        assert groups.count(None) >= 1  # the NULL stratum keeps a row too
        assert counts_of(report)["nums"].written == len(groups)

        pair.target = f"sqlite:///{tmp_path / 'all.db'}"
        whole = pair.copy(_sample_job("{method: stratified, by: grp, percent: 100}"))
        assert counts_of(whole)["nums"] == Counts(read=100, written=100)


@pytest.mark.parametrize("dialects", [(PG, PG), (MY, PG)], ids=pair_id)
def test_stratified_sample_by_a_float_column_gives_each_stratum_its_share(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """Strata found by their values, not their text: a float 1.0 is '1.0' to Python and
    '1' to Arrow, so every stratum had fallen back to the overall share."""
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql("CREATE TABLE nums (id INTEGER PRIMARY KEY, f DOUBLE PRECISION)")
        rows = [{"i": i, "f": float(i // 2)} for i in range(2, 82)]  # 40 strata of 2 rows
        rows += [{"i": i, "f": 0.0} for i in range(100, 300)]  # and one of 200
        pair.source_sql("INSERT INTO nums VALUES (:i, :f)", rows)

        pair.copy(_sample_job("{method: stratified, by: f, percent: 10}"))

        kept = [f for (f,) in pair.rows("nums", "f")]
        # A stratum of two keeps round(0.2) -> 1 row: its anchor, and no drawn row more.
        assert sorted(f for f in kept if f) == [float(n) for n in range(1, 41)]
        assert 10 <= kept.count(0.0) <= 30


@pytest.mark.parametrize("dialects", [(MY, PG), (PG, MY), (LITE, LITE)], ids=pair_id)
def test_stratified_sample_on_a_composite_key_keeps_a_row_of_every_small_stratum(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """A composite key had no anchors (MIN() takes one column): a stratum of four rows
    at 10 % wants one row and drew each at 1/4, so about a third of them came out empty."""
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql(
            "CREATE TABLE pairs (a INTEGER NOT NULL, b VARCHAR(8) NOT NULL, grp VARCHAR(5), "
            "PRIMARY KEY (a, b))"
        )
        # 30 strata of 4 rows: keys (s, 'k0') .. (s, 'k3'); and one of 200 rows.
        rows = [{"a": i // 4, "b": f"k{3 - i % 4}", "g": f"s{i // 4}"} for i in range(120)]
        rows += [{"a": 100 + i // 2, "b": f"k{i % 2}", "g": "big"} for i in range(200)]
        pair.source_sql("INSERT INTO pairs VALUES (:a, :b, :g)", rows)

        job = "tables:\n  pairs:\n    mode: sample\n    sample: {method: stratified, by: grp, "
        report = pair.copy(job + "percent: 10, seed: 7}\n")

        kept = pair.rows("pairs", "grp", "a", "b")
        small = sorted((g, a, b) for g, a, b in kept if g != "big")
        # Each keeps exactly its one row: its smallest key.
        assert small == sorted((f"s{s}", s, "k0") for s in range(30))
        big = [(a, b) for g, a, b in kept if g == "big"]
        assert (100, "k0") in big  # the big stratum's anchor
        assert 5 <= len(big) <= 40
        assert counts_of(report)["pairs"].written == len(kept)


def test_sample_of_an_unknown_strata_column_is_a_config_error(tmp_path: Path) -> None:
    with make_pair((LITE, LITE), tmp_path) as pair:
        _numbers(pair, 10)

        with pytest.raises(ConfigError, match=r"(?s)tables\.nums\.sample\.by.*`grp`.*id, v"):
            pair.copy(_sample_job("{method: stratified, by: grp, percent: 10}"))

        assert "nums" not in pair.target_tables()


# ------------------------------------------------------------------------- incremental


def test_incremental_with_an_unknown_cursor_is_a_config_error(tmp_path: Path) -> None:
    """A misspelt cursor used to end the run with a bare KeyError."""
    with make_pair((LITE, LITE), tmp_path) as pair:
        _numbers(pair, 10)

        with pytest.raises(ConfigError, match=r"(?s)tables\.nums\.cursor.*`updated`.*id, v"):
            pair.copy("tables:\n  nums:\n    mode: incremental\n    cursor: updated\n")


def test_incremental_row_tied_with_the_last_cursor_value_is_copied_later(
    tmp_path: Path,
) -> None:
    """MariaDB's DATETIME keeps whole seconds: a row written in the second a run read the
    cursor's maximum carries that maximum, and `cursor > last` never takes it."""
    with make_pair((MY, PG), tmp_path) as pair:
        ts = timestamp_type(pair.source_dialect)
        pair.source_sql(f"CREATE TABLE events (id INTEGER PRIMARY KEY, v INTEGER, at {ts} NULL)")
        t0 = datetime(2024, 5, 1, 12, 0, 0)
        pair.source_sql(
            "INSERT INTO events VALUES (:i, :i, :t)",
            [{"i": i, "t": t0 + timedelta(minutes=i)} for i in range(1, 4)],
        )
        job = "tables:\n  events:\n    mode: incremental\n    cursor: at\n"
        pair.copy(job)
        # Committed just after the run read the maximum, in the same second.
        pair.source_sql("INSERT INTO events VALUES (4, 4, :t)", [{"t": t0 + timedelta(minutes=3)}])
        pair.copy(job)
        pair.source_sql("INSERT INTO events VALUES (5, 5, :t)", [{"t": t0 + timedelta(minutes=10)}])

        pair.copy(job)

        assert [i for (i,) in pair.rows("events", "id")] == [1, 2, 3, 4, 5]


# ------------------------------------------------------------------------------ upsert


@pytest.mark.parametrize("dialects", [(MY, PG), (PG, MY), (LITE, LITE)], ids=pair_id)
def test_upsert_update_into_a_table_whose_columns_are_all_its_key(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """A link table: nothing to update, and PostgreSQL and SQLite used to stop the run
    with a bare ValueError ("set parameter dictionary must not be empty")."""
    with make_pair(dialects, tmp_path) as pair:
        for sql in (pair.source_sql, pair.target_sql):
            sql("CREATE TABLE links (a INTEGER NOT NULL, b INTEGER NOT NULL, PRIMARY KEY (a, b))")
        pair.source_sql("INSERT INTO links VALUES (1, 1), (1, 2), (2, 1)")
        pair.target_sql("INSERT INTO links VALUES (1, 1), (5, 5)")

        report = pair.copy("load: {strategy: upsert, on_conflict: update}\n")

        assert counts_of(report)["links"] == Counts(read=3, written=3)
        assert pair.rows("links") == [(1, 1), (1, 2), (2, 1), (5, 5)]
        assert pair.rejects() == []


@pytest.mark.parametrize("dialects", [(PG, MY), (MY, PG), (LITE, LITE)], ids=pair_id)
def test_upsert_ignore_counts_a_key_twice_in_one_batch_once(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """MariaDB used to count both rows of a conflict key seen twice in a batch as written
    (the second is skipped by ON DUPLICATE KEY), PostgreSQL one written, one skipped."""
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql("CREATE TABLE tags (id INTEGER PRIMARY KEY, code VARCHAR(10), n INTEGER)")
        pair.source_sql(
            "INSERT INTO tags VALUES (1, 'a', 1), (2, 'b', 2), (3, 'a', 3), (4, NULL, 4), "
            "(5, NULL, 5), (6, 'z', 6)"
        )
        pair.target_sql(
            "CREATE TABLE tags (id INTEGER PRIMARY KEY, code VARCHAR(10) UNIQUE, n INTEGER)"
        )
        pair.target_sql("INSERT INTO tags VALUES (60, 'z', 0)")

        report = pair.copy(
            "tables:\n  tags:\n    conflict: [code]\n"
            "load: {strategy: upsert, on_conflict: ignore}\n"
        )

        # 'a' twice: one written; 'z' there already; NULLs never conflict.
        assert counts_of(report)["tags"] == Counts(read=6, written=4, deduped=2)
        assert pair.rows("tags") == [
            (1, "a", 1),
            (2, "b", 2),
            (4, None, 4),
            (5, None, 5),
            (60, "z", 0),
        ]


@pytest.mark.parametrize("dialects", CROSS, ids=pair_id)
def test_upsert_on_a_unique_column_into_a_table_the_copy_creates(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    """The unique key was built after the data, so PostgreSQL refused every row (no
    constraint matches ON CONFLICT) and the run still completed, all rows rejected."""
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql(
            "CREATE TABLE tags (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL, n INTEGER, "
            "CONSTRAINT tags_code_uq UNIQUE (code))"
        )
        pair.source_sql("INSERT INTO tags VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)")
        job = "tables:\n  tags:\n    conflict: [code]\nload: {strategy: upsert}\n"

        report = pair.copy(job)

        assert counts_of(report)["tags"] == Counts(read=3, written=3)
        assert pair.rejects() == []
        # Another job into the now existing table updates by the code: no duplicates.
        pair.source_sql("UPDATE tags SET n = 20 WHERE id = 2")
        again = pair.copy("name: again\n" + job)
        assert pair.rows("tags") == [(1, "a", 1), (2, "b", 20), (3, "c", 3)]
        assert again.status == "completed"


@pytest.mark.parametrize("dialects", [(PG, MY), (MY, PG), (LITE, LITE)], ids=pair_id)
@pytest.mark.parametrize("mode", ["update", "ignore", "fail"])
def test_upsert_on_columns_that_are_no_unique_key_of_the_target_is_a_config_error(
    dialects: tuple[str, str], tmp_path: Path, mode: str
) -> None:
    """PostgreSQL rejected every row; MariaDB, and `fail` everywhere, wrote duplicates."""
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql("CREATE TABLE tags (id INTEGER PRIMARY KEY, code VARCHAR(10), n INTEGER)")
        pair.source_sql("INSERT INTO tags VALUES (1, 'a', 1), (2, 'b', 2)")
        pair.target_sql("CREATE TABLE tags (id INTEGER PRIMARY KEY, code VARCHAR(10), n INTEGER)")
        pair.target_sql("INSERT INTO tags VALUES (10, 'a', 0)")

        with pytest.raises(
            ConfigError, match=r"tables\.tags\.conflict.*`code` are not .* unique key"
        ):
            pair.copy(
                "tables:\n  tags:\n    conflict: [code]\n"
                f"load: {{strategy: upsert, on_conflict: {mode}}}\n"
            )

        assert pair.rows("tags") == [(10, "a", 0)]


def test_upsert_on_a_source_name_that_columns_renamed_names_the_target_columns(
    tmp_path: Path,
) -> None:
    with make_pair((PG, PG), tmp_path) as pair:
        pair.source_sql("CREATE TABLE tags (id INTEGER PRIMARY KEY, code VARCHAR(10))")
        pair.source_sql("INSERT INTO tags VALUES (1, 'a')")

        with pytest.raises(
            ConfigError, match=r"(?s)`id` is not in target.*after `columns:`.*tag_id"
        ):
            pair.copy(
                "tables:\n  tags:\n    columns: {id: tag_id, code: code}\n    conflict: [id]\n"
                "load: {strategy: upsert}\n"
            )


# ------------------------------------------------------------------------------ stream


def test_stream_with_dedupe_keep_last_is_a_config_error(tmp_path: Path) -> None:
    """A stream reads in key order: `keep: last` silently kept the first duplicate."""
    with make_pair((LITE, LITE), tmp_path) as pair:
        pair.source_sql("CREATE TABLE people (id INTEGER PRIMARY KEY, email VARCHAR(40))")
        pair.source_sql("INSERT INTO people VALUES (1, 'a@x.org'), (2, 'b@x.org'), (3, 'a@x.org')")
        job = "tables:\n  people:\n    dedupe: {on: [email], keep: last}\n"

        with pytest.raises(ConfigError, match=r"tables\.people\.dedupe\.keep.*cannot stream"):
            pair.copy(job + "load: {strategy: stream}\n")

        pair.copy(job)  # a bulk load keeps the last
        assert pair.rows("people") == [(2, "b@x.org"), (3, "a@x.org")]


# ------------------------------------------------------------------------ error limits


@pytest.mark.parametrize("dialects", CROSS, ids=pair_id)
def test_report_balances_with_filters_dedupe_rule_and_load_rejects_together(
    dialects: tuple[str, str], tmp_path: Path
) -> None:
    with make_pair(dialects, tmp_path) as pair:
        pair.source_sql(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, email VARCHAR(40), name VARCHAR(10), "
            "n INTEGER)"
        )
        pair.source_sql(
            "INSERT INTO people VALUES (:i, :e, :m, :n)",
            [
                {"i": 1, "e": "a@x.org", "m": "a", "n": 1},
                {"i": 2, "e": "bad", "m": "b", "n": 1},  # rejected: e-mail
                {"i": 3, "e": "c@x.org", "m": None, "n": 1},  # filtered: NULL name
                {"i": 4, "e": "a@x.org", "m": "d", "n": 1},  # de-duplicated
                {"i": 5, "e": "e@x.org", "m": "e", "n": -1},  # refused by the target's CHECK
                {"i": 6, "e": "f@x.org", "m": "f", "n": 1},
                {"i": 7, "e": "bad2", "m": None, "n": 1},  # filtered first: not rejected
            ],
        )
        pair.target_sql(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, email VARCHAR(40), name VARCHAR(10), "
            "n INTEGER, CONSTRAINT n_positive CHECK (n >= 0))"
        )

        report = pair.copy(
            "tables:\n  people:\n    nulls: {name: remove}\n    validate: {email: email}\n"
            "    dedupe: {on: [email]}\nload: {batch_size: 3}\nerrors: {max_errors: 5}\n"
        )

        assert counts_of(report)["people"] == Counts(
            read=7, written=2, rejected=2, filtered=2, deduped=1
        )
        assert [r[0] for r in pair.rows("people", "id")] == [1, 6]
        assert sorted((k, r) for _, k, r, _, _ in pair.rejects()) == [
            ([2], "validate:email:email"),
            ([5], "load"),
        ]


def test_error_rate_the_job_sets_stops_a_small_run_at_its_end(tmp_path: Path) -> None:
    """Too few rows for the mid-run check (1,000): a rate the job sets still fails the run
    at its end, before any key is built; the default rate waits for 1,000 rows."""
    with make_pair((PG, MY), tmp_path) as pair:
        pair.source_sql("CREATE TABLE people (id INTEGER PRIMARY KEY, email VARCHAR(40))")
        pair.source_sql(
            "INSERT INTO people VALUES (:i, :e)",
            [{"i": i, "e": "bad" if i % 5 < 2 else f"p{i}@example.com"} for i in range(1, 51)],
        )
        rules = "tables:\n  people:\n    validate: {email: email}\n"

        with pytest.raises(DataError, match=r"20 of 50 rows rejected \(40\.0%\).*max_error_rate"):
            pair.copy(rules + "errors:\n  max_error_rate: 0.25\n")

        # The table the failed run made is dropped: copied afresh, not resumed into nothing.
        pair.target_sql("DROP TABLE people")
        report = pair.copy(rules)

        assert report.status == "completed"
        assert report.tables[0].counts.rejected == 20
        assert any("`people` is gone" in w for w in report.warnings)
        assert len(pair.rows("people", "id")) == 30
        assert len(pair.rejects()) == 20  # the failed run's rejects went with the table
