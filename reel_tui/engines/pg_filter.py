"""Which statements of a plain dump reel sends, and what it tells the user about them.

pg_dump output made on another machine carries ownership and privileges for
roles that may not exist here, database-level statements for a database
reel does not load into (``pg_dump -C``), and its own transaction control.
Each rule here mirrors a pg_restore option or what loading into a staging
database makes unnecessary; the engine logs every kind of statement it drops
once, so nothing is skipped silently.

The dump's transaction control is never sent: plain ``BEGIN;`` / ``COMMIT;``
(and their synonyms) are skipped, and any other form (``COMMIT AND CHAIN``,
``BEGIN ISOLATION LEVEL …``, ``SAVEPOINT``, ``PREPARE TRANSACTION``) is refused,
as it would commit a half-done in-place rewind, or leave a staging load in a
transaction that is never committed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reel_tui.config import AppConfig

_ROLE = r'(?:"(?:[^"]|"")+"|[\w$]+)'
_OWNER = re.compile(rf"ALTER\s+.+\s+OWNER\s+TO\s+{_ROLE}\s*;\Z", re.I | re.S)
_SESSION_AUTH = re.compile(r"SET\s+SESSION\s+AUTHORIZATION\b", re.I)
_PRIVILEGES = re.compile(r"(?:GRANT|REVOKE|ALTER\s+DEFAULT\s+PRIVILEGES)\b", re.I)
_TRANSACTION = re.compile(
    r"(?:BEGIN|COMMIT|END|START\s+TRANSACTION|ABORT|ROLLBACK)\b(?:\s+(?:WORK|TRANSACTION))?\s*;\Z",
    re.I,
)
_TRANSACTION_CONTROL = re.compile(
    r"(?:COMMIT|END|ROLLBACK|ABORT|BEGIN|START|SAVEPOINT|RELEASE|PREPARE\s+TRANSACTION)\b", re.I
)
"""Statements that end, start or cut up a transaction: never sent to the server."""
_CONTROL_HEADS = (
    "COMMIT",
    "END",
    "ROLLBA",
    "ABORT",
    "BEGIN",
    "START",
    "SAVEPO",
    "RELEAS",
    "PREPAR",
)
_COMMENT = re.compile(r"/\*.*?\*/|--[^\n]*", re.S)
_CREATE_DATABASE = re.compile(r"(?:CREATE|DROP)\s+DATABASE\b", re.I)
_DATABASE_LEVEL = re.compile(
    r"(?:ALTER\s+DATABASE|COMMENT\s+ON\s+DATABASE|SECURITY\s+LABEL\s+ON\s+DATABASE)\b|"
    r"(?:GRANT|REVOKE)\b[^;]*?\bON\s+DATABASE\b",
    re.I,
)
_CLIENT_ENCODING = re.compile(r"SET\s+client_encoding\s*(?:=|TO)\s*'?([\w-]+)'?\s*;\Z", re.I)

REASONS = {
    "owner": "ownership statements (skip_owner = true)",
    "privileges": "GRANT / REVOKE statements (skip_privileges = true)",
    "transaction": "the dump's own BEGIN / COMMIT (reel-tui loads it in a transaction of its own)",
    "create-database": "CREATE / DROP DATABASE (pg_dump -C): loading into the app's database",
    "database-level": "settings, comment and privileges of the dump's database "
    "(the rewound database keeps its own)",
    "client-encoding": "SET client_encoding (reel reads dumps as UTF-8)",
}


class UnsupportedEncoding(Exception):
    """The dump sets a client_encoding other than UTF-8."""


class TransactionControl(Exception):
    """The dump holds transaction control reel-tui cannot just skip (``COMMIT AND CHAIN``,
    ``BEGIN ISOLATION LEVEL …``, ``SAVEPOINT``, ``PREPARE TRANSACTION``, …).

    Sent, it would end or split the transaction reel loads in (in place: commit a
    half-done rewind) or leave one open that is never committed (staging database).
    """


@dataclass(frozen=True)
class StatementFilter:
    """Decides, per statement, whether to send it; ``skip()`` returns a REASONS key or None."""

    skip_owner: bool = False
    skip_privileges: bool = False

    @classmethod
    def for_app(cls, app: AppConfig) -> StatementFilter:
        return cls(app.skip_owner, app.skip_privileges)

    def skip(self, text: str) -> str | None:
        """Why ``text`` (a statement from its first code character) is not sent, or None."""
        head = text[:6].upper()
        if head.startswith("ALTER"):
            if self.skip_owner and "OWNER" in text[-200:].upper() and _OWNER.match(text):
                return "owner"
            if _DATABASE_LEVEL.match(text):
                return "database-level"
            if self.skip_privileges and _PRIVILEGES.match(text):
                return "privileges"
            return None
        if head.startswith(("GRANT", "REVOKE")):
            if _DATABASE_LEVEL.match(text):
                return "database-level"
            return "privileges" if self.skip_privileges else None
        if head.startswith(("SET", "SET ")):
            if self.skip_owner and _SESSION_AUTH.match(text):
                return "owner"
            encoding = _CLIENT_ENCODING.match(text)
            if encoding:
                if encoding.group(1).replace("-", "").upper() not in ("UTF8", "UNICODE"):
                    raise UnsupportedEncoding(encoding.group(1))
                return "client-encoding"
            return None
        if head.startswith(("CREATE", "DROP")) and _CREATE_DATABASE.match(text):
            return "create-database"
        if head.startswith("COMMEN") or head.startswith("SECURI"):
            return "database-level" if _DATABASE_LEVEL.match(text) else None
        if head.startswith(_CONTROL_HEADS):
            code = _COMMENT.sub(" ", text).strip()
            if _TRANSACTION.match(code):
                return "transaction"
            if _TRANSACTION_CONTROL.match(code):
                raise TransactionControl(text)
        return None
