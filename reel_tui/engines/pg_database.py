"""The target database's own properties: read them, and give them to its replacement.

A rewind replaces a whole database, so everything that belongs to the
database rather than to its content must be carried over by hand: owner,
encoding, collation, tablespace, connection limit, ``ALTER DATABASE … SET``
and ``ALTER ROLE … IN DATABASE … SET`` settings, privileges and the comment.
Encoding and collation are fixed at ``CREATE DATABASE``; settings are given
only after the load, so a setting such as ``default_transaction_read_only``
cannot break the load itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg2

from reel_tui.engines.base import RewindContext
from reel_tui.engines.pg_conn import Connection, ident, literal

LIST_SETTINGS = frozenset(
    {"search_path", "temp_tablespaces", "session_preload_libraries", "local_preload_libraries"}
)
"""Settings whose value is a list: each element is quoted on its own, as pg_dump does."""
_PRIVILEGE_NAMES = {"C": "CREATE", "T": "TEMPORARY", "c": "CONNECT"}
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_ACL_ITEM = re.compile(r'^((?:"(?:[^"]|"")*"|[^=])*)=([A-Za-z*]*)/(.+)$')


@dataclass(frozen=True)
class DatabaseInfo:
    """What a database is, apart from its content."""

    name: str
    owner: str
    encoding: str
    collate: str
    ctype: str
    locale_provider: str = "c"
    icu_locale: str | None = None
    tablespace: str = "pg_default"
    connection_limit: int = -1
    allow_connections: bool = True
    comment: str | None = None
    acl: list[str] | None = None
    settings: list[str] = field(default_factory=list)
    role_settings: list[tuple[str, list[str]]] = field(default_factory=list)


def read_database(conn: Connection, name: str) -> DatabaseInfo | None:
    """The database's properties, or None if there is no database of that name."""
    version = conn.server_version
    icu = "d.daticulocale" if 150000 <= version < 170000 else (
        "d.datlocale" if version >= 170000 else "NULL")  # fmt: skip
    provider = "d.datlocprovider" if version >= 150000 else "'c'"
    with conn.cursor() as cur:
        cur.execute(
            f"""SELECT d.oid, pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding),
                       d.datcollate, d.datctype, {provider}, {icu}, t.spcname,
                       d.datconnlimit, d.datallowconn, shobj_description(d.oid, 'pg_database'),
                       d.datacl::text[]
                FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace
                WHERE d.datname = %s""",
            (name,),
        )
        row = cur.fetchone()
        if row is None:
            return None
        oid = row[0]
        cur.execute(
            """SELECT COALESCE(pg_get_userbyid(NULLIF(setrole, 0)), ''), setconfig
               FROM pg_db_role_setting WHERE setdatabase = %s ORDER BY 1""",
            (oid,),
        )
        settings = cur.fetchall()
    return DatabaseInfo(
        name, row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
        row[10], row[11],
        settings=next((s for role, s in settings if role == ""), []),
        role_settings=[(role, s) for role, s in settings if role],
    )  # fmt: skip


def create_database(
    conn: Connection, name: str, like: DatabaseInfo | None, ctx: RewindContext
) -> None:
    """CREATE DATABASE ``name`` with the encoding, collation and owner of ``like``."""
    options = ["TEMPLATE template0"]
    if like is not None:
        options += [f"ENCODING {literal(like.encoding)}", f"LC_COLLATE {literal(like.collate)}",
                    f"LC_CTYPE {literal(like.ctype)}"]  # fmt: skip
        if like.locale_provider == "i" and like.icu_locale:
            options += ["LOCALE_PROVIDER icu", f"ICU_LOCALE {literal(like.icu_locale)}"]
        if like.tablespace != "pg_default":
            options.append(f"TABLESPACE {ident(like.tablespace)}")
    statement = f"CREATE DATABASE {ident(name)} " + " ".join(options)
    with conn.cursor() as cur:
        if like is None:
            cur.execute(statement)
            return
        try:
            cur.execute(f"{statement} OWNER {ident(like.owner)}")
        except psycopg2.errors.InsufficientPrivilege:
            cur.execute(statement)
            ctx.log(f"cannot give the new database to {like.owner} (not a member of that "
                    "role): it will be owned by the user reel connects as", "warning")  # fmt: skip


def give_properties(conn: Connection, name: str, like: DatabaseInfo, ctx: RewindContext) -> None:
    """Settings, privileges and connection limit of ``like`` onto database ``name``."""
    db = ident(name)
    with conn.cursor() as cur:
        for setting in like.settings:
            _keep(cur, f"ALTER DATABASE {db} SET {_setting_sql(setting)}", setting, ctx)
        for role, settings in like.role_settings:
            for setting in settings:
                statement = f"ALTER ROLE {ident(role)} IN DATABASE {db} SET {_setting_sql(setting)}"
                _keep(cur, statement, f"{setting} for {role}", ctx)
        if like.connection_limit != -1:
            cur.execute(f"ALTER DATABASE {db} CONNECTION LIMIT {int(like.connection_limit)}")
        if like.acl is not None:
            _give_privileges(cur, db, like)
            cur.execute("SELECT datacl::text[] FROM pg_database WHERE datname = %s", (name,))
            now = cur.fetchone()[0] or []
            if sorted(now) != sorted(like.acl):
                ctx.log(f"privileges differ from the old database's: {now} instead of "
                        f"{like.acl}", "warning")  # fmt: skip


def _keep(cur: psycopg2.extensions.cursor, statement: str, what: str, ctx: RewindContext) -> None:
    """Run one setting's statement; a setting this role may not make is a warning, not a
    reason to refuse the rewind (the maintenance connection is in autocommit)."""
    try:
        cur.execute(statement)
    except psycopg2.Error as exc:
        ctx.log(f"could not keep the database setting {what}: {exc.diag.message_primary}",
                "warning")  # fmt: skip


def _give_privileges(cur: psycopg2.extensions.cursor, db: str, like: DatabaseInfo) -> None:
    cur.execute(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
    cur.execute(f"REVOKE ALL ON DATABASE {db} FROM {ident(like.owner)}")
    for item in like.acl or []:
        match = _ACL_ITEM.match(item)
        if not match:
            continue
        grantee = match.group(1)
        grantee_sql = "PUBLIC" if grantee == "" else ident(_unquote_role(grantee))
        plain, granted = [], []
        privileges = match.group(2)
        for index, char in enumerate(privileges):
            if char in _PRIVILEGE_NAMES:
                with_option = privileges[index + 1 : index + 2] == "*"
                (granted if with_option else plain).append(_PRIVILEGE_NAMES[char])
        if plain:
            cur.execute(f"GRANT {', '.join(plain)} ON DATABASE {db} TO {grantee_sql}")
        if granted:
            cur.execute(f"GRANT {', '.join(granted)} ON DATABASE {db} TO {grantee_sql} "
                        "WITH GRANT OPTION")  # fmt: skip


def _unquote_role(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name


def _setting_sql(setting: str) -> str:
    """``name TO value`` from a stored ``name=value``; list settings element by element."""
    name, _, value = setting.partition("=")
    name_sql = name if _SETTING_NAME.match(name) else ident(name)
    if name.lower() in LIST_SETTINGS:
        items = [_unquote_role(item.strip()) for item in _split_list(value)]
        return f"{name_sql} TO " + ", ".join(literal(item) for item in items)
    return f"{name_sql} TO {literal(value)}"


def _split_list(value: str) -> list[str]:
    """Split a stored list setting at commas outside double quotes."""
    items, current, quoted = [], "", False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [item for item in items if item.strip()]
