"""Split SQL migration scripts into individual statements.

One forward pass over the text, jumping between "interesting" characters with a compiled
regex, so the cost is linear in the input size. The scanner knows enough of each dialect's
lexical rules (strings, quoted identifiers, comments, dollar quotes, the MySQL client's
``DELIMITER`` command and ``BEGIN ... END`` bodies of stored routines and triggers) to
find the statement boundaries that real migration files use; it does not parse SQL.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal, NoReturn

__all__ = ["Dialect", "SplitError", "Statement", "split_sql"]

Dialect = Literal["postgresql", "mysql", "sqlite", "generic"]

_DIALECTS = frozenset({"postgresql", "mysql", "sqlite", "generic"})


@dataclass(frozen=True)
class Statement:
    """One statement of a script.

    ``sql`` is the statement text stripped of surrounding white space and without its
    terminating delimiter; comments before its first token are not included, comments
    inside it are. ``line`` is the 1-based line on which its first token starts.
    """

    sql: str
    line: int


class SplitError(ValueError):
    """A string, quoted identifier, block comment or dollar quote is never closed.

    ``line`` is the 1-based line on which the unterminated construct starts.
    """

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


# Possessive quantifiers (3.11+) make an unterminated literal fail outright instead of
# backtracking into accepting the first half of a doubled quote as the closing quote.
_SQ = re.compile(r"'[^']*+(?:''[^']*+)*+'")
_SQ_BACKSLASH = re.compile(r"'[^'\\]*+(?:(?:''|\\.)[^'\\]*+)*+'", re.S)
_DQ = re.compile(r'"[^"]*+(?:""[^"]*+)*+"')
_DQ_BACKSLASH = re.compile(r'"[^"\\]*+(?:(?:""|\\.)[^"\\]*+)*+"', re.S)
_BACKTICK = re.compile(r"`[^`]*+(?:``[^`]*+)*+`")
_COMMENT_EDGE = re.compile(r"/\*|\*/")
_NONSPACE = re.compile(r"\S")

# White space and comments between the words of a statement header.
_GAP = r"(?:\s|--[^\n]*+|/\*(?:[^*]|\*(?!/))*+\*/)"
_SEP = _GAP + "++"
_OPT = _GAP + "*+"
_USER = r"""(?:'[^']*'|"[^"]*"|`[^`]*`|[\w.%$-]+(?:\(\))?)"""

# Statements whose BEGIN/CASE ... END blocks may contain the ';' delimiter.
_BODY_START = re.compile(
    rf"CREATE{_SEP}(?:OR{_SEP}REPLACE{_SEP})?"
    rf"(?:DEFINER{_OPT}={_OPT}{_USER}(?:{_OPT}@{_OPT}{_USER})?{_SEP})?"
    rf"(?:(?:AGGREGATE|TEMP|TEMPORARY|CONSTRAINT){_SEP})?"
    r"(?:TRIGGER|PROCEDURE|FUNCTION|EVENT)(?![\w$])"
    rf"|BEGIN{_SEP}NOT{_SEP}ATOMIC(?![\w$])",
    re.I,
)
# END followed by one of these closes a construct that never opened a block; FOR is
# MariaDB's FOR ... END FOR loop. END CASE closes a CASE.
_AFTER_END = re.compile(rf"{_OPT}(IF|LOOP|WHILE|REPEAT|FOR|CASE)(?![\w$])", re.I)
_DELIMITER = re.compile(r"DELIMITER[ \t]+(\S+)[^\n]*", re.I)


@functools.lru_cache(maxsize=32)
def _scanner(dialect: str, delimiter: str) -> re.Pattern[str]:
    """The pattern finding the next character that matters in a statement."""
    parts = [f"(?P<delim>{re.escape(delimiter)})"]  # first: a custom delimiter wins ties
    parts.append("(?P<quote>['\"])" if dialect == "postgresql" else "(?P<quote>['\"`])")
    if dialect == "mysql":
        # MySQL needs white space after '--' (so '5--3' is arithmetic) and knows '#'.
        parts.append(r"(?P<line>--(?!\S)|#)")
    else:
        parts.append("(?P<line>--)")
    parts.append(r"(?P<block>/\*)")
    if dialect in ("postgresql", "generic"):
        # No identifier character before: '$' may occur inside PostgreSQL identifiers.
        parts.append(r"(?P<dollar>(?<![\w$])\$(?:[^\W\d]\w*)?\$)")
        parts.append(r"(?P<estr>(?<![\w$])[Ee](?='))")
    # Not after '.', so a column like NEW.end is not a keyword.
    parts.append(r"(?P<kw>(?<![\w$.])(?i:BEGIN|CASE|END)(?![\w$]))")
    return re.compile("|".join(parts))


def split_sql(text: str, dialect: Dialect = "generic") -> list[Statement]:
    """Split a SQL script into statements.

    Statements end at ``;`` (or the delimiter set by a MySQL ``DELIMITER`` line in the
    ``mysql`` and ``generic`` dialects) outside strings, quoted identifiers, comments,
    dollar quotes and ``BEGIN ... END`` bodies of ``CREATE TRIGGER/PROCEDURE/FUNCTION/EVENT``
    and ``BEGIN NOT ATOMIC`` statements. A final statement needs no terminator. Empty and
    comment-only chunks are dropped, but MySQL executable comments (``/*!...*/``) count as
    statement text in the ``mysql`` and ``generic`` dialects.

    Raises:
        SplitError: a string, quoted identifier, block comment or dollar quote is
            unterminated.
        ValueError: ``dialect`` is not one of the supported dialects.
    """
    if dialect not in _DIALECTS:
        raise ValueError(f"unknown SQL dialect: {dialect!r}")
    return _Splitter(text, dialect).run()


class _Splitter:
    """State of one split: the pending statement, delimiter and block depth."""

    def __init__(self, text: str, dialect: str) -> None:
        self.text = text
        self.dialect = dialect
        self.mysql = dialect == "mysql"
        self.mysql_client = dialect in ("mysql", "generic")  # DELIMITER and /*! ... */
        self.delimiter = ";"
        self.pattern = _scanner(dialect, ";")
        self.out: list[Statement] = []
        self.start: int | None = None  # index of the pending statement's first token
        self.body = False  # pending statement may hold ';' inside BEGIN ... END
        self.depth = 0
        self._line_pos = 0
        self._line_no = 1

    def line_at(self, pos: int) -> int:
        """1-based line of ``pos``; positions are asked for in increasing order."""
        if pos < self._line_pos:  # not expected, but stay correct rather than fast
            return self.text.count("\n", 0, pos) + 1
        self._line_no += self.text.count("\n", self._line_pos, pos)
        self._line_pos = pos
        return self._line_no

    def run(self) -> list[Statement]:
        text = self.text
        n = len(text)
        i = 0
        while i < n:
            m = self.pattern.search(text, i)
            p = n if m is None else m.start()
            if self.start is None:
                first = _NONSPACE.search(text, i, p)
                if first is not None:
                    resume = self._delimiter_command(first.start())
                    if resume is not None:
                        i = resume
                        continue
                    self._open(first.start())
            if m is None:
                break
            i = self._handle(m)
        if self.start is not None:
            self._close(n)
        return self.out

    def _handle(self, m: re.Match[str]) -> int:
        """Act on one scanner match; returns where scanning resumes."""
        text, p, kind = self.text, m.start(), m.lastgroup
        if kind == "delim":
            # Block depth only shields ';': a custom delimiter always ends the statement,
            # as it does in the mysql client.
            if self.depth == 0 or self.delimiter != ";":
                self._close(p)
            return m.end()
        if kind == "line":
            eol = text.find("\n", p)
            return len(text) if eol < 0 else eol
        if kind == "block":
            return self._block_comment(p)
        if self.start is None:
            self._open(p)
        if kind == "quote":
            q = m.group("quote")
            if q == "'":
                return self._skip(_SQ_BACKSLASH if self.mysql else _SQ, p, "string literal")
            if q == '"' and self.mysql:
                return self._skip(_DQ_BACKSLASH, p, "string literal")
            return self._skip(_DQ if q == '"' else _BACKTICK, p, "quoted identifier")
        if kind == "estr":
            return self._skip(_SQ_BACKSLASH, m.end(), "string literal")
        if kind == "dollar":
            tag = m.group("dollar")
            end = text.find(tag, m.end())
            if end < 0:
                self._fail("dollar-quoted string", p)
            return end + len(tag)
        return self._keyword(m)

    def _keyword(self, m: re.Match[str]) -> int:
        """Track BEGIN/CASE ... END nesting inside routine and trigger bodies."""
        if not self.body:
            return m.end()
        if m.group("kw").upper() != "END":
            self.depth += 1
            return m.end()
        after = _AFTER_END.match(self.text, m.end())
        if after is None:
            self.depth = max(0, self.depth - 1)
            return m.end()
        if after.group(1).upper() == "CASE":
            self.depth = max(0, self.depth - 1)
        return after.end()  # skip the word so END CASE's CASE does not open a block

    def _block_comment(self, p: int) -> int:
        text = self.text
        if self.mysql_client and text.startswith("/*!", p):
            # Executable comment: the mysql client sends it to the server, so it is SQL.
            if self.start is None:
                self._open(p)
        elif self.dialect == "postgresql":
            depth = 0
            for edge in _COMMENT_EDGE.finditer(text, p):
                depth += 1 if edge.group() == "/*" else -1
                if depth == 0:
                    return edge.end()
            self._fail("block comment", p)
        end = text.find("*/", p + 2)
        if end < 0:
            self._fail("block comment", p)
        return end + 2

    def _skip(self, pattern: re.Pattern[str], p: int, what: str) -> int:
        m = pattern.match(self.text, p)
        if m is None:
            self._fail(what, p)
        return m.end()

    def _fail(self, what: str, p: int) -> NoReturn:
        line = self.line_at(p)
        raise SplitError(f"unterminated {what} starting at line {line}", line)

    def _delimiter_command(self, s: int) -> int | None:
        """If a mysql-client DELIMITER line starts at ``s``, apply it and return its end."""
        if not self.mysql_client:
            return None
        m = _DELIMITER.match(self.text, s)
        if m is None or self.text[self.text.rfind("\n", 0, s) + 1 : s].strip():
            return None
        self.delimiter = m.group(1)
        self.pattern = _scanner(self.dialect, self.delimiter)
        return m.end()

    def _open(self, s: int) -> None:
        self.start = s
        self.body = _BODY_START.match(self.text, s) is not None
        self.depth = 0

    def _close(self, end: int) -> None:
        if self.start is not None:
            sql = self.text[self.start : end].strip()
            self.out.append(Statement(sql, self.line_at(self.start)))
        self.start = None
        self.body = False
        self.depth = 0
