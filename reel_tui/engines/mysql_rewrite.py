"""What the MySQL loader changes in a dump's statements, and only that.

* Database-level statements (``CREATE DATABASE`` / ``DROP DATABASE`` /
  ``USE``, also inside versioned comments) are recognised, so a dump that
  names its own database loads into the app's staging schema instead.
* References to the dump's own database inside statements (``sakila.film`` in
  a view body) follow it to the schema reel loads into: only identifiers
  followed by a dot are rewritten, never text inside strings or comments, so
  data rows are left exactly as they are.
* ``DEFINER=`` clauses in the head of a CREATE statement can be removed, so
  the object belongs to the user reel connects as.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass


def _name_char(ascii_class: str) -> str:
    r"""The characters of an unquoted MySQL identifier: ``[{ascii_class}]`` plus
    U+0080-U+FFFF (MySQL allows no supplementary characters in identifiers).

    Written as one negated class of the other ASCII characters and the supplementary
    planes: ``re`` compiles a range up to U+FFFF by filling a table in Python, ~5-20 ms a
    class that every reel-tui process paid at start-up; this one takes microseconds and
    matches as fast (a class, not an alternation: it scans whole INSERT statements)."""
    inside = re.compile(f"[{ascii_class}]")
    others = "".join(re.escape(chr(c)) for c in range(128) if not inside.fullmatch(chr(c)))
    return rf"[^{others}\U00010000-\U0010ffff]"


def _on_first_use(pattern: str, flags: int = 0) -> Callable[[], re.Pattern[str]]:
    """The compiled ``pattern``, compiled when first asked for.

    Compiling this module's patterns took about 7 ms of every reel-tui start, and only
    loading a dump (or a definition naming its schema) uses them: a warm rewind does not.
    """
    return functools.cache(lambda: re.compile(pattern, flags))


_NAME_CHAR = _name_char(r"\w$")
_NAME_OR_QUALIFIER_CHAR = _name_char(r"\w$.`")
_VERSIONED = _on_first_use(r"/\*M?!\d*|\*/")
_DATABASE = _on_first_use(
    r"\s*(?:(CREATE|DROP)\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?|(USE)\s+)"
    rf"(`(?:[^`]|``)+`|{_NAME_CHAR}+)\s*(.*)$",
    re.I | re.S,
)
_DB_HEAD = _on_first_use(r"\s*(?:/\*M?!\d*\s*)?(?:CREATE|DROP|USE)\b", re.I)
_QUALIFIER_PATTERN = (
    r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|#[^\n]*|--[\x00-\x20][^\n]*|"
    r"/\*(?![M!]|M!)(?:[^*]|\*(?!/))*\*/|"
    rf"`((?:[^`]|``)*)`(?=\s*\.)|(?<!{_NAME_OR_QUALIFIER_CHAR})({_NAME_CHAR}+)(?=\s*\.)"
)
_QUALIFIER = _on_first_use(_QUALIFIER_PATTERN, re.S)
_QUALIFIER_NO_ESCAPES = _on_first_use(
    _QUALIFIER_PATTERN.replace(r"(?:[^'\\]|\\.|'')", "(?:[^']|'')").replace(
        r"(?:[^\"\\]|\\.|\"\")", '(?:[^"]|"")'
    ),
    re.S,
)
_SEP = r"(?:\s|/\*M?!\d*|\*/)+"
_USER_PART = r"(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|[\w$.%-]+)"
_ACCOUNT = rf"(?:CURRENT_USER(?:\s*\(\s*\))?|{_USER_PART}(?:\s*@\s*{_USER_PART})?)"
_DEFINITION = _on_first_use(
    rf"(?:\s|/\*M?!\d*|\*/)*CREATE{_SEP}(?:OR{_SEP}REPLACE{_SEP})?"
    rf"(?:ALGORITHM\s*=\s*\w+{_SEP})?(?:DEFINER\s*=\s*{_ACCOUNT}{_SEP})?"
    rf"(?:SQL{_SEP}SECURITY{_SEP}\w+{_SEP})?(?:AGGREGATE{_SEP})?"
    r"(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT)\b",
    re.I,
)
_DEFINER = _on_first_use(rf"\bDEFINER\s*=\s*({_ACCOUNT})", re.I)


@dataclass(frozen=True)
class DatabaseStatement:
    """``CREATE DATABASE``, ``DROP DATABASE`` or ``USE``, and the database it names."""

    kind: str
    """"create", "drop" or "use"."""
    name: str
    options: str = ""
    """What follows the name in CREATE DATABASE (character set, collation), normalised."""


def database_statement(text: str) -> DatabaseStatement | None:
    """The database-level statement ``text`` is, or None for any other statement."""
    if len(text) > 2000 or not _DB_HEAD().match(text):
        return None
    plain = _VERSIONED().sub(" ", text)
    match = _DATABASE().match(plain)
    if match is None:
        return None
    kind = (match.group(1) or match.group(2)).lower()
    name = match.group(3)
    if name.startswith("`"):
        name = name[1:-1].replace("``", "`")
    options = " ".join(match.group(4).split()) if kind == "create" else ""
    if kind == "use" and match.group(4).strip():
        return None
    return DatabaseStatement(kind, name, options)


def quote(name: str) -> str:
    """``name`` as a backticked identifier."""
    return "`" + name.replace("`", "``") + "`"


def rename_schema(text: str, old: str, new: str, backslash_escapes: bool = True) -> str:
    """``text`` with qualifiers ``old.`` / ```old`.`` turned into ```new`.``.

    Strings and comments are left alone, so data is never changed.
    """
    if old not in text:
        return text
    pattern = _QUALIFIER() if backslash_escapes else _QUALIFIER_NO_ESCAPES()

    def replace(match: re.Match[str]) -> str:
        quoted, bare = match.group(1), match.group(2)
        if quoted is not None and quoted.replace("``", "`") == old:
            return quote(new)
        if bare is not None and bare == old:
            return quote(new)
        return match.group()

    return pattern.sub(replace, text)


def definition_kind(text: str) -> str | None:
    """ "view", "trigger", "procedure", "function" or "event" for a CREATE of one."""
    if "CREATE" not in text[:200].upper():
        return None
    match = _DEFINITION().match(text[:2000])
    return match.group(1).lower() if match else None


def definer(text: str) -> str | None:
    """The account in the DEFINER clause of a CREATE statement's head, as written."""
    head = _head(text)
    match = _DEFINER().search(head) if head is not None else None
    return match.group(1) if match else None


def strip_definer(text: str) -> str:
    """``text`` without the DEFINER clause in its head (the object gets the current user)."""
    head = _head(text)
    if head is None:
        return text
    match = _DEFINER().search(head)
    if match is None:
        return text
    return text[: match.start()] + text[match.end() :]


def _head(text: str) -> str | None:
    match = _DEFINITION().match(text[:2000])
    return text[: match.start(1)] if match else None


def account(user_host: str) -> tuple[str, str] | None:
    """(user, host) from ```u`@`h``` / ``'u'@'h'`` / ``u@h``; None for CURRENT_USER."""
    if user_host.upper().startswith("CURRENT_USER"):
        return None
    parts = re.findall(_USER_PART, user_host)
    names = [_unquote(part) for part in parts]
    return (names[0], names[1] if len(names) > 1 else "%")


def _unquote(part: str) -> str:
    if part[:1] in "`'\"" and len(part) >= 2:
        inner = part[1:-1]
        return inner.replace(part[0] * 2, part[0]).replace("\\'", "'")
    return part
