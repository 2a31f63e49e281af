"""Tests for the SQL statement splitter."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferry.schema.splitter import Dialect, SplitError, Statement, split_sql

ALL_DIALECTS: list[Dialect] = ["postgresql", "mysql", "sqlite", "generic"]


def sqls(text: str, dialect: Dialect = "generic") -> list[str]:
    return [s.sql for s in split_sql(text, dialect)]


def lines(text: str, dialect: Dialect = "generic") -> list[int]:
    return [s.line for s in split_sql(text, dialect)]


# --- basics -----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_splits_on_semicolon_and_keeps_unterminated_last(dialect: Dialect) -> None:
    assert split_sql("SELECT 1;\nSELECT 2;\nSELECT 3", dialect) == [
        Statement("SELECT 1", 1),
        Statement("SELECT 2", 2),
        Statement("SELECT 3", 3),
    ]


def test_statement_is_frozen() -> None:
    st_ = Statement("SELECT 1", 1)
    with pytest.raises(AttributeError):
        st_.sql = "x"  # type: ignore[misc]


def test_strips_whitespace_and_drops_empty_statements() -> None:
    assert sqls("  ;;\n\n  SELECT 1  ;  ;\t\n;SELECT 2\n\n") == ["SELECT 1", "SELECT 2"]


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
@pytest.mark.parametrize("text", ["", "   \n\t\r\n", ";;;", "-- a\n/* b */\n-- c"])
def test_nothing_to_run_gives_empty_list(dialect: Dialect, text: str) -> None:
    assert split_sql(text, dialect) == []


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_comment_only_file(dialect: Dialect) -> None:
    text = "-- migration 12\n-- nothing to do; really\n/* block;\n comment */\n"
    assert split_sql(text, dialect) == []


def test_comment_only_chunks_are_dropped() -> None:
    assert sqls("SELECT 1; -- done\n/* trailing; */ ;\n-- end") == ["SELECT 1"]


def test_leading_comments_excluded_inner_comments_kept() -> None:
    text = "-- header\n/* about t */\nSELECT a, -- the a\n  b /* the b; */ FROM t;\n"
    assert split_sql(text) == [Statement("SELECT a, -- the a\n  b /* the b; */ FROM t", 3)]


def test_comment_on_same_line_before_statement() -> None:
    assert split_sql("/* c */ SELECT 1;") == [Statement("SELECT 1", 1)]


def test_unknown_dialect_rejected() -> None:
    with pytest.raises(ValueError, match="dialect"):
        split_sql("SELECT 1", "oracle")  # type: ignore[arg-type]


# --- strings and identifiers -------------------------------------------------------------


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_single_quoted_string_with_doubled_quote(dialect: Dialect) -> None:
    text = "INSERT INTO t VALUES ('it''s; fine', ';');\nSELECT ''';'''"
    assert sqls(text, dialect) == ["INSERT INTO t VALUES ('it''s; fine', ';')", "SELECT ''';'''"]


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite", "generic"])
def test_backslash_is_not_an_escape_in_standard_strings(dialect: Dialect) -> None:
    assert sqls("SELECT 'C:\\'; SELECT 2", dialect) == ["SELECT 'C:\\'", "SELECT 2"]


def test_mysql_backslash_escaped_quote_containing_semicolon() -> None:
    text = "SELECT 'it\\'s; fine'; SELECT \"say \\\"hi\\\"; now\"; SELECT '\\\\'; SELECT 4"
    assert sqls(text, "mysql") == [
        "SELECT 'it\\'s; fine'",
        'SELECT "say \\"hi\\"; now"',
        "SELECT '\\\\'",
        "SELECT 4",
    ]


def test_mysql_mixes_doubled_and_backslash_escapes() -> None:
    assert sqls("SELECT 'a''b\\';c';SELECT 2", "mysql") == ["SELECT 'a''b\\';c'", "SELECT 2"]


@pytest.mark.parametrize("prefix", ["E", "e"])
def test_postgresql_e_string_honours_backslash(prefix: str) -> None:
    text = f"SELECT {prefix}'it\\'s; \\\\'; SELECT 2"
    assert sqls(text, "postgresql") == [f"SELECT {prefix}'it\\'s; \\\\'", "SELECT 2"]


def test_identifier_ending_in_e_is_not_an_e_string() -> None:
    # 'name' + string would be odd SQL, but "somee'..." must not switch escape rules.
    assert sqls("SELECT some'\\'; SELECT 2", "postgresql") == ["SELECT some'\\'", "SELECT 2"]


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite", "generic"])
def test_double_quoted_identifier(dialect: Dialect) -> None:
    text = 'CREATE TABLE "a;b" ("x""; y" int);SELECT 1'
    assert sqls(text, dialect) == ['CREATE TABLE "a;b" ("x""; y" int)', "SELECT 1"]


@pytest.mark.parametrize("dialect", ["mysql", "sqlite", "generic"])
def test_backtick_identifier(dialect: Dialect) -> None:
    assert sqls("SELECT `a;b`, `c``;d` FROM t; SELECT 2", dialect) == [
        "SELECT `a;b`, `c``;d` FROM t",
        "SELECT 2",
    ]


def test_backticks_are_plain_text_in_postgresql() -> None:
    assert sqls("SELECT `a;b`", "postgresql") == ["SELECT `a", "b`"]


def test_multiline_string_keeps_line_numbers() -> None:
    text = "INSERT INTO t VALUES ('line1;\nline2;\r\nline3');\nSELECT 2;"
    assert split_sql(text) == [
        Statement("INSERT INTO t VALUES ('line1;\nline2;\r\nline3')", 1),
        Statement("SELECT 2", 4),
    ]


# --- comments ------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_line_comment_hides_semicolon(dialect: Dialect) -> None:
    assert sqls("SELECT 1 -- not; the end\n, 2;SELECT 3", dialect) == [
        "SELECT 1 -- not; the end\n, 2",
        "SELECT 3",
    ]


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_block_comment_hides_semicolon(dialect: Dialect) -> None:
    assert sqls("SELECT /* a; b */ 1; SELECT 2", dialect) == ["SELECT /* a; b */ 1", "SELECT 2"]


def test_mysql_hash_comment() -> None:
    assert sqls("SELECT 1 # no; split\n;SELECT 2", "mysql") == ["SELECT 1 # no; split", "SELECT 2"]
    assert sqls("# comment only; here\n", "mysql") == []


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite", "generic"])
def test_hash_is_not_a_comment_outside_mysql(dialect: Dialect) -> None:
    assert sqls("SELECT 1 # x; SELECT 2", dialect) == ["SELECT 1 # x", "SELECT 2"]


def test_mysql_double_dash_needs_whitespace() -> None:
    assert sqls("SELECT 5--3;\nSELECT 2; --\nSELECT 3 --\t;\n;", "mysql") == [
        "SELECT 5--3",
        "SELECT 2",
        "SELECT 3 --\t;",
    ]


def test_postgresql_block_comments_nest() -> None:
    text = "/* outer /* inner; */ still comment; */ SELECT 1; /*/ x; */ SELECT 2"
    assert split_sql(text, "postgresql") == [Statement("SELECT 1", 1), Statement("SELECT 2", 1)]


def test_block_comments_do_not_nest_outside_postgresql() -> None:
    text = "/* outer /* inner; */ SELECT 1;"
    assert sqls(text, "generic") == ["SELECT 1"]


@pytest.mark.parametrize("dialect", ["mysql", "generic"])
def test_mysql_executable_comment_is_a_statement(dialect: Dialect) -> None:
    text = (
        "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n"
        "/*!40101 SET NAMES utf8 */;\n"
        "/* plain comment */;\n"
        "CREATE TABLE t (a int) /*!50100 ENGINE=InnoDB; */;\n"
    )
    assert split_sql(text, dialect) == [
        Statement("/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */", 1),
        Statement("/*!40101 SET NAMES utf8 */", 2),
        Statement("CREATE TABLE t (a int) /*!50100 ENGINE=InnoDB; */", 4),
    ]


# --- dollar quotes ---------------------------------------------------------------------------


def test_postgresql_dollar_quotes() -> None:
    text = (
        "CREATE FUNCTION f() RETURNS trigger AS $$\n"
        "BEGIN\n  NEW.a := 'x;'; RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\n"
        "DO $body$ BEGIN PERFORM 1; PERFORM $$;$$; END $body$;\n"
        "SELECT $q_1$ it's; $x$ $q_1$;"
    )
    assert split_sql(text, "postgresql") == [
        Statement(
            "CREATE FUNCTION f() RETURNS trigger AS $$\n"
            "BEGIN\n  NEW.a := 'x;'; RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql",
            1,
        ),
        Statement("DO $body$ BEGIN PERFORM 1; PERFORM $$;$$; END $body$", 6),
        Statement("SELECT $q_1$ it's; $x$ $q_1$", 7),
    ]


def test_positional_parameters_are_not_dollar_quotes() -> None:
    text = "PREPARE p AS SELECT $1, $2 WHERE a = $1;\nEXECUTE p(1, 2);"
    assert sqls(text, "postgresql") == [
        "PREPARE p AS SELECT $1, $2 WHERE a = $1",
        "EXECUTE p(1, 2)",
    ]


def test_dollar_inside_identifier_is_not_a_quote() -> None:
    assert sqls("SELECT a$b$ FROM t; SELECT 2", "postgresql") == ["SELECT a$b$ FROM t", "SELECT 2"]


def test_dollar_quotes_are_plain_text_in_mysql() -> None:
    assert sqls("SELECT $$a;b$$", "mysql") == ["SELECT $$a", "b$$"]


# --- DELIMITER ------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["mysql", "generic"])
@pytest.mark.parametrize("delim", ["//", "$$", ";;", "GO"])
def test_delimiter_command(dialect: Dialect, delim: str) -> None:
    text = (
        "SELECT 0;\n"
        f"DELIMITER {delim}\n"
        "CREATE PROCEDURE p()\nBEGIN\n  SELECT 1;\n  SELECT 2;\n"
        f"END {delim}\n"
        f"CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 1{delim}\n"
        "DELIMITER ;\n"
        "SELECT 3;\n"
    )
    assert split_sql(text, dialect) == [
        Statement("SELECT 0", 1),
        Statement("CREATE PROCEDURE p()\nBEGIN\n  SELECT 1;\n  SELECT 2;\nEND", 3),
        Statement("CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 1", 8),
        Statement("SELECT 3", 10),
    ]


def test_delimiter_is_case_insensitive_and_may_be_indented() -> None:
    text = "  delimiter //\nSELECT 1; SELECT 2 //\n\tDeLiMiTeR ;\nSELECT 3;"
    assert split_sql(text, "mysql") == [
        Statement("SELECT 1; SELECT 2", 2),
        Statement("SELECT 3", 4),
    ]


def test_delimiter_custom_ends_even_inside_unbalanced_block() -> None:
    text = "DELIMITER //\nCREATE PROCEDURE p() BEGIN SELECT 1; //\nSELECT 2 //"
    assert sqls(text, "mysql") == ["CREATE PROCEDURE p() BEGIN SELECT 1;", "SELECT 2"]


def test_delimiter_inside_string_or_comment_ignored() -> None:
    text = "DELIMITER $$\nSELECT '$$', /* $$ */ 1 -- $$\n$$\nDELIMITER ;"
    assert sqls(text, "mysql") == ["SELECT '$$', /* $$ */ 1 -- $$"]


def test_delimiter_word_inside_a_statement_is_a_column() -> None:
    text = "CREATE TABLE t (\n  id int,\n  delimiter varchar(10)\n);\nSELECT 1;"
    assert sqls(text, "mysql") == [
        "CREATE TABLE t (\n  id int,\n  delimiter varchar(10)\n)",
        "SELECT 1",
    ]


def test_delimiter_not_at_line_start_is_not_a_command() -> None:
    assert sqls("/* x */ DELIMITER //\nSELECT 1;", "mysql") == ["DELIMITER //\nSELECT 1"]


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_delimiter_not_recognised_in_other_dialects(dialect: Dialect) -> None:
    assert sqls("DELIMITER //\nSELECT 1;", dialect) == ["DELIMITER //\nSELECT 1"]


def test_delimiter_lines_with_crlf() -> None:
    text = "DELIMITER //\r\nSELECT 1 //\r\n\r\nDELIMITER ;\r\nSELECT 2;\r\n"
    assert split_sql(text, "mysql") == [Statement("SELECT 1", 2), Statement("SELECT 2", 5)]


# --- BEGIN ... END bodies ---------------------------------------------------------------------


def test_sqlite_trigger_is_one_statement() -> None:
    text = (
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO b VALUES (1); "
        "UPDATE c SET x=1; END;\nSELECT 2;"
    )
    assert split_sql(text, "sqlite") == [
        Statement(
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO b VALUES (1); "
            "UPDATE c SET x=1; END",
            1,
        ),
        Statement("SELECT 2", 2),
    ]


def test_sqlite_temp_trigger_if_not_exists_with_case() -> None:
    text = (
        "CREATE TEMP TRIGGER IF NOT EXISTS t BEFORE UPDATE ON a\nBEGIN\n"
        "  SELECT CASE WHEN NEW.x < 0 THEN RAISE(ABORT, 'neg; no') END;\n"
        "  UPDATE a SET y = NEW.end WHERE id = NEW.id;\nEND;\nSELECT 2"
    )
    assert sqls(text, "sqlite") == [text.split(";\nSELECT")[0], "SELECT 2"]


def test_mysql_procedure_without_delimiter() -> None:
    text = "CREATE PROCEDURE p() BEGIN DECLARE x INT; IF x THEN SELECT 1; END IF; END;SELECT 2"
    assert sqls(text, "mysql") == [
        "CREATE PROCEDURE p() BEGIN DECLARE x INT; IF x THEN SELECT 1; END IF; END",
        "SELECT 2",
    ]


def test_mysql_procedure_with_every_block_kind() -> None:
    body = (
        "CREATE OR REPLACE DEFINER = `root`@`localhost` PROCEDURE p(n INT)\n"
        "BEGIN\n"
        "  DECLARE i INT DEFAULT 0;\n"
        "  DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN SET i = -1; END;\n"
        "  lbl: LOOP SET i = i + 1; IF i > n THEN LEAVE lbl; END IF; END LOOP lbl;\n"
        "  WHILE i > 0 DO SET i = i - 1; END WHILE;\n"
        "  REPEAT SET i = i + 1; UNTIL i > 3 END REPEAT;\n"
        "  CASE i WHEN 1 THEN SELECT 1; ELSE SELECT 2; END CASE;\n"
        "  SET i = CASE WHEN i > 1 THEN 1 ELSE 0 END;\n"
        "  FOR j IN 1..3 DO SELECT j; END FOR;\n"
        "END"
    )
    assert sqls(body + ";\nSELECT 9;", "mysql") == [body, "SELECT 9"]


@pytest.mark.parametrize(
    "header",
    [
        "CREATE FUNCTION f() RETURNS INT",
        "create function f() returns int",
        "CREATE DEFINER=root@localhost FUNCTION f() RETURNS INT",
        "CREATE DEFINER='admin'@'%' AGGREGATE FUNCTION f() RETURNS INT",
        "CREATE DEFINER = CURRENT_USER() TRIGGER t BEFORE INSERT ON x FOR EACH ROW",
        "CREATE /* why */ OR REPLACE\n  EVENT e ON SCHEDULE EVERY 1 DAY DO",
    ],
)
def test_routine_headers_enable_block_tracking(header: str) -> None:
    stmt = f"{header} BEGIN SELECT 1; SELECT 2; END"
    assert sqls(f"{stmt};\nSELECT 3", "mysql") == [stmt, "SELECT 3"]


def test_mariadb_begin_not_atomic() -> None:
    text = "BEGIN NOT ATOMIC\n  DECLARE x INT;\n  SELECT x;\nEND;\nSELECT 2;"
    assert sqls(text, "mysql") == [
        "BEGIN NOT ATOMIC\n  DECLARE x INT;\n  SELECT x;\nEND",
        "SELECT 2",
    ]


def test_postgresql_begin_atomic() -> None:
    text = (
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n"
        "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql\nBEGIN ATOMIC\n"
        "  INSERT INTO t VALUES (CASE WHEN true THEN 1 END);\n  SELECT 2;\nEND;\n"
    )
    assert split_sql(text, "postgresql") == [
        Statement("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END", 1),
        Statement(
            "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql\nBEGIN ATOMIC\n"
            "  INSERT INTO t VALUES (CASE WHEN true THEN 1 END);\n  SELECT 2;\nEND",
            2,
        ),
    ]


def test_postgresql_function_returning_case_expression() -> None:
    text = "CREATE FUNCTION f(x int) RETURNS int RETURN CASE WHEN x > 0 THEN 1 END; SELECT 2"
    assert sqls(text, "postgresql") == [
        "CREATE FUNCTION f(x int) RETURNS int RETURN CASE WHEN x > 0 THEN 1 END",
        "SELECT 2",
    ]


def test_routine_without_block_ends_at_semicolon() -> None:
    text = "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 1; SELECT 2"
    assert sqls(text, "mysql") == [
        "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 1",
        "SELECT 2",
    ]


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_transaction_control_is_ordinary(dialect: Dialect) -> None:
    text = "BEGIN;\nCREATE TABLE t (a int);\nEND;\nBEGIN TRANSACTION; COMMIT;"
    assert sqls(text, dialect) == [
        "BEGIN",
        "CREATE TABLE t (a int)",
        "END",
        "BEGIN TRANSACTION",
        "COMMIT",
    ]


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_case_in_plain_select_is_harmless(dialect: Dialect) -> None:
    text = "SELECT CASE WHEN a THEN 1 ELSE 2 END FROM t;SELECT CASE x WHEN 1 THEN 2 END;SELECT 3"
    assert sqls(text, dialect) == [
        "SELECT CASE WHEN a THEN 1 ELSE 2 END FROM t",
        "SELECT CASE x WHEN 1 THEN 2 END",
        "SELECT 3",
    ]


def test_block_keywords_in_strings_and_comments_are_ignored() -> None:
    text = (
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n"
        "  INSERT INTO log VALUES ('BEGIN'); -- BEGIN CASE\n"
        '  UPDATE "end" SET x = 1; /* END; */\n'
        "END;\nSELECT 2"
    )
    assert len(split_sql(text, "sqlite")) == 2


def test_unbalanced_body_runs_to_end_of_file() -> None:
    assert sqls("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2;", "sqlite") == [
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2;"
    ]


# --- line numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_line_numbers(newline: str) -> None:
    text = newline.join(
        [
            "-- header",  # 1
            "",  # 2
            "SELECT 1;",  # 3
            "/* multi",  # 4
            "   line; */ SELECT 'a",  # 5
            "b';",  # 6
            "",  # 7
            "  SELECT 3; SELECT 4",  # 8
            ";",  # 9
        ]
    )
    assert split_sql(text) == [
        Statement("SELECT 1", 3),
        Statement(f"SELECT 'a{newline}b'", 5),
        Statement("SELECT 3", 8),
        Statement("SELECT 4", 8),
    ]


def test_line_numbers_after_dollar_quote_and_mysql_comments() -> None:
    pg = "SELECT $$\n;\n$$;\n\nSELECT 2;"
    assert lines(pg, "postgresql") == [1, 5]
    my = "# one\n# two\nSELECT 1; -- three\n/*!40101 X */;\n\n\nSELECT 2"
    assert lines(my, "mysql") == [3, 4, 7]


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dialect", "what", "line"),
    [
        ("SELECT 1;\nSELECT 'abc''d;\n;\n", "generic", "string literal", 2),
        ("SELECT 1;\r\n\r\nSELECT 'it\\'s;", "mysql", "string literal", 3),
        ("\nSELECT E'x\\'", "postgresql", "string literal", 2),
        ('SELECT 1;\nSELECT "a;\n', "postgresql", "quoted identifier", 2),
        ('SELECT "a\\";\n', "mysql", "string literal", 1),
        ("SELECT `a;\n", "sqlite", "quoted identifier", 1),
        ("SELECT 1;\n\n/* never closed;\nSELECT 2;", "generic", "block comment", 3),
        ("SELECT 1;\n/* a /* b */ ;\n", "postgresql", "block comment", 2),
        ("\n\n\nSELECT /*!40101 1;", "mysql", "block comment", 4),
        ("SELECT 1;\nDO $x$ BEGIN; $$ END;\n", "postgresql", "dollar-quoted string", 2),
    ],
)
def test_unterminated_constructs_raise(text: str, dialect: Dialect, what: str, line: int) -> None:
    with pytest.raises(SplitError) as info:
        split_sql(text, dialect)
    assert info.value.line == line
    assert str(info.value) == f"unterminated {what} starting at line {line}"
    assert isinstance(info.value, ValueError)


def test_split_error_line_attribute() -> None:
    err = SplitError("unterminated string literal starting at line 12", 12)
    assert err.line == 12
    assert str(err) == "unterminated string literal starting at line 12"


# --- performance -----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_ten_thousand_statements_split_quickly(dialect: Dialect) -> None:
    text = "".join(
        f"-- row {i}\nINSERT INTO t (a, b) VALUES ({i}, 'it''s; {i}') /* c; */;\n"
        for i in range(10_000)
    )
    started = time.perf_counter()
    result = split_sql(text, dialect)
    elapsed = time.perf_counter() - started
    assert len(result) == 10_000
    assert result[-1] == Statement(
        "INSERT INTO t (a, b) VALUES (9999, 'it''s; 9999') /* c; */", 20_000
    )
    # The bound only catches a quadratic scan (minutes), not a loaded
    # machine (speed itself is measured by benchmarks, not tests).
    assert elapsed < 10.0


def test_long_bodies_and_literals_are_linear() -> None:
    body = "CREATE TRIGGER t AFTER INSERT ON a BEGIN " + "UPDATE b SET x = 1; " * 20_000 + "END"
    literal = "SELECT '" + "x''y;" * 50_000 + "'"
    started = time.perf_counter()
    assert sqls(f"{body};\n{literal};", "sqlite") == [body, literal]
    assert time.perf_counter() - started < 1.0


# --- properties -------------------------------------------------------------------------------

TOKENS = ["SELECT", "INSERT", "INTO", "FROM", "WHERE", "t", "a1", "col_x", "42", "(", ")"]
TOKENS += [",", "=", "+", "*", "<>", "3.5", "NULL"]
# No backslash (dialects disagree about it), no '$'; newlines exercise line counting.
LITERAL_TEXT = st.text(alphabet="ab ;'\"-/*#\n`", max_size=12)
COMMENT_TEXT = st.text(alphabet="ab ;'\"-#`", max_size=12)

string_literal = LITERAL_TEXT.map(lambda s: "'" + s.replace("'", "''") + "'")
inner_comment = COMMENT_TEXT.map(lambda s: f"/* {s} */")
piece = st.one_of(st.sampled_from(TOKENS), string_literal)
statement = st.tuples(
    piece, st.lists(st.one_of(piece, piece, inner_comment), max_size=6), piece
).map(lambda p: " ".join([p[0], *p[1], p[2]]))
leading_comment = st.one_of(
    COMMENT_TEXT.map(lambda s: f"-- {s}\n"),
    COMMENT_TEXT.map(lambda s: f"/* {s}\n{s} */\n"),
)


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.lists(leading_comment, max_size=2), statement), max_size=8),
    st.sampled_from(ALL_DIALECTS),
    st.booleans(),
    st.sampled_from(["\n", "\r\n"]),
)
def test_property_roundtrip_of_generated_statements(
    items: list[tuple[list[str], str]], dialect: Dialect, terminate_last: bool, newline: str
) -> None:
    text = ""
    expected: list[Statement] = []
    for index, (comments, sql) in enumerate(items):
        text += "".join(c.replace("\n", newline) for c in comments)
        expected.append(Statement(sql, text.count("\n") + 1))
        text += sql
        if index < len(items) - 1 or terminate_last:
            text += ";" + newline
    assert split_sql(text, dialect) == expected


PLAIN_WORDS = ["BEGIN", "END", "CASE", "CREATE", "TRIGGER", "PROCEDURE", "IF", "LOOP", "ATOMIC"]
plain_text = st.lists(
    st.one_of(st.text(alphabet="abXY01 ;\n\t\r(),.=<>", max_size=10), st.sampled_from(PLAIN_WORDS)),
    max_size=30,
).map(" ".join)


@settings(max_examples=300)
@given(plain_text, st.sampled_from(ALL_DIALECTS))
def test_property_plain_text_never_raises_and_loses_nothing(text: str, dialect: Dialect) -> None:
    result = split_sql(text, dialect)

    def significant(s: str) -> str:
        return "".join(ch for ch in s if not ch.isspace() and ch != ";")

    assert significant("".join(s.sql for s in result)) == significant(text)
    pos = 0
    for s in result:
        assert s.sql
        assert s.sql == s.sql.strip()
        # Only white space and ';' separate statements here, so the first match is the one.
        pos = text.index(s.sql, pos)
        assert s.line == text.count("\n", 0, pos) + 1
        pos += len(s.sql)
