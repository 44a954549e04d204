"""Loading a mysqldump / mariadb-dump script into one connection, streaming, without mysql.

Statements go to the server in batches of about :data:`BATCH_BYTES` as one
multi-statement query (``CLIENT_MULTI_STATEMENTS``); the server runs them in
order and stops at the first error, and since every statement gives exactly
one result, the number of results read before the error names the failing
statement and its line, without running anything twice. Statements are sent
as the file's bytes (binary strings included), on a utf8mb4 connection; the
dump's own ``SET NAMES`` then applies, as with the mysql client.

The dump's own database (``CREATE DATABASE`` / ``USE`` of ``mysqldump
--databases``) is mapped to the schema being loaded; a second database is
refused before any statement for it runs. Qualified names that use the target's
name or the one in mysqldump's header (a trigger created as ``shop.t``) are
mapped too: as written they would reach into the live target during the load.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pymysql

from reel_tui.dumpfile import DumpError, DumpReader
from reel_tui.engines import mysql_rewrite as rewrite
from reel_tui.engines.base import RewindContext, RewindError
from reel_tui.engines.mysql_conn import Connection, error_code, message
from reel_tui.engines.mysql_parallel import Sent, Workers
from reel_tui.engines.mysql_prefetch import Prefetch
from reel_tui.engines.mysql_script import ClientCommand, ScriptError, ScriptSplitter, Statement
from reel_tui.engines.mysql_stream import Rows, ScriptStream
from reel_tui.sources import Source

BATCH_BYTES = 512 * 1024
PREFETCH = 4
"""Statements split ahead on the reader thread (a mysqldump one is ~1 MB: memory)."""
NO_BACKSLASH_ESCAPES = 512
"""SERVER_STATUS_NO_BACKSLASH_ESCAPES: the server says backslashes are literal."""
EMPTY_QUERY = 1065
LOST = (2006, 2013, 2014, 2055)
_INSERT = re.compile(
    r"(?:INSERT|REPLACE)\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*"
    r"(?:INTO\s+)?(`(?:[^`]|``)+`(?:\.`(?:[^`]|``)+`)?|[^\s(]+)",
    re.I,
)
_SQL_MODE = re.compile(r"\bsql_mode\b", re.I)
_SETS_SESSION = re.compile(r"(?:/\*M?!\d*\s*)?SET\s", re.I)
"""A SET (plain or versioned): what the workers' sessions must replay."""
_TABLE_LOCKS = re.compile(r"(?:LOCK|UNLOCK)\s+TABLES?\b", re.I)
_TEMPORARY = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?TEMPORARY\b", re.I)
_PARALLEL_SAFE = """SELECT t.ENGINE, t.TABLE_TYPE,
    (SELECT COUNT(*) FROM information_schema.STATISTICS s WHERE s.TABLE_SCHEMA = t.TABLE_SCHEMA
     AND s.TABLE_NAME = t.TABLE_NAME AND s.INDEX_NAME = 'PRIMARY'),
    (SELECT COUNT(*) FROM information_schema.TRIGGERS g
     WHERE g.EVENT_OBJECT_SCHEMA = t.TABLE_SCHEMA AND g.EVENT_OBJECT_TABLE = t.TABLE_NAME)
    FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_NAME = %s"""
"""Engine, type, primary key or not, how many triggers: see :meth:`ScriptLoader._parallel`."""
_DUMP_HEADER = re.compile(r"-- (MySQL|MariaDB) dump ")
_HEADER_DATABASE = re.compile(r"-- Host: .*\bDatabase: (\S+)\s*$")


@dataclass(frozen=True)
class Pending:
    """A statement in the batch: its bytes as sent, where it starts, and whether it inserts."""

    sql: bytes
    line: int
    inserts: bool


@dataclass
class LoadResult:
    """What a load did: for the log, for the swap and for tests."""

    statements: int = 0
    dump_database: str | None = None
    """The database the dump names for itself (mysqldump --databases), if any."""
    database_options: str = ""
    """Character set / collation of the dump's CREATE DATABASE."""
    definers_stripped: dict[str, int] = field(default_factory=dict)


class ScriptLoader:
    """Runs one dump into ``conn``, whose default database is ``schema``."""

    def __init__(
        self,
        source: Source,
        conn: Connection,
        ctx: RewindContext,
        schema: str,
        definers: str = "auto",
        accounts: frozenset[tuple[str, str]] = frozenset(),
        workers: Workers | None = None,
        target: str | None = None,
    ) -> None:
        self.source = source
        self.conn = conn
        self.ctx = ctx
        self.schema = schema
        self.definers = definers
        self.accounts = accounts
        self.result = LoadResult()
        self.batch: list[Pending] = []
        self.batch_bytes = 0
        self.table: str | None = None
        self.rows = 0
        self.reader: DumpReader | None = None
        self.splitter: ScriptSplitter | None = None
        self.dump_kind: str | None = None
        self.completed = False
        self.prefetch: Prefetch[Statement | ClientCommand | Rows] | None = None
        self.workers = workers
        self.parallel: list[Sent] = []
        """The batch being filled for the workers."""
        self.parallel_bytes = 0
        self.parallel_table: str | None = None
        """The table whose rows the workers are loading (None between such runs)."""
        self.temporary = False
        """The dump made a temporary table: per-session, so workers could not see it."""
        self.aliases = {target} if target else set()
        """Other names of the dump's database in qualified names (``CREATE TRIGGER
        shop.t … ON shop.orders``, as SHOW CREATE keeps what the user wrote): the target,
        and the database mysqldump names in its header. Loaded as written, they would
        reach into the live target (or another database) while loading into staging."""

    def run(self) -> LoadResult:
        self.ctx.log(f"loading {self.source.path} ({self.source.format.describe()})")
        try:
            with DumpReader(self.source.path, self.source.format, mysql_client=True) as reader:
                self.reader = reader
                self.splitter = ScriptSplitter(ScriptStream(reader, self._watch))
                with Prefetch(iter(self.splitter), PREFETCH, _sets_sql_mode) as items:
                    self.prefetch = items
                    for item in items:
                        if isinstance(item, ClientCommand):
                            self._command(item)
                        elif isinstance(item, Rows):
                            self._add_rows(item)
                        else:
                            self._unless_cut_short(item)
                            self._add(item)
                    self._barrier()
                    self._flush()
        except ScriptError as exc:
            raise RewindError(f"{self.source.path}:{exc.line}: {exc}") from None
        except DumpError as exc:
            raise RewindError(str(exc)) from None
        self._note_table(None)
        if self.result.statements == 0:
            raise RewindError(f"{self.source.path}: the dump holds no SQL statements")
        if self.dump_kind and not self.completed:
            raise RewindError(
                f"{self.source.path}: this {self.dump_kind} dump has no '-- Dump completed' "
                "line at its end: it was cut short (truncated file?)"
            )
        for who, count in self.result.definers_stripped.items():
            self.ctx.log(f"DEFINER={who} names no account here: {count} object(s) are "
                         "defined by the user reel connects as instead", "warning")  # fmt: skip
        self.ctx.log(f"loaded {self.result.statements:,} statements")
        return self.result

    def _unless_cut_short(self, statement: Statement) -> None:
        """A mysqldump / mariadb-dump file ends every statement with its delimiter: one that
        ends without it was cut short, and is not sent (the client would send it, and a
        cut multi-row INSERT ending at a row would load fewer rows without an error)."""
        if self.dump_kind and not statement.delimited:
            raise RewindError(
                f"{self.source.path}:{statement.line}: this {self.dump_kind} dump ends inside "
                f"a statement (truncated file?): {statement.text.split(chr(10), 1)[0][:80]}"
            )

    def _watch(self, line: str) -> None:
        """Note the dump header and its "Dump completed" trailer."""
        if line.startswith("--") and self.reader is not None:
            if self.reader.line_number <= 5 and _DUMP_HEADER.match(line):
                self.dump_kind = line.split()[1]
            elif self.reader.line_number <= 8 and (named := _HEADER_DATABASE.match(line)):
                self.aliases.add(named.group(1))
            elif line.startswith("-- Dump completed"):
                self.completed = True

    def _command(self, command: ClientCommand) -> None:
        if command.name == "sandbox":
            self.ctx.log("mariadb-dump sandbox mode line: reel runs no client commands anyway")

    def _where(self, line: int) -> str:
        return f"{self.source.path}:{line}"

    def _add_rows(self, rows: Rows) -> None:
        """A plain multi-row INSERT: its bytes go as they are, unless they may name the
        dump's own database, which the text path maps."""
        own = self.result.dump_database
        if own is not None and own.encode("utf-8", "surrogateescape") in rows.sql:
            self._add(Statement(rows.text, rows.line))
            return
        self._note_table(rows.table)
        if self.parallel_table == rows.table or self._parallel(rows.table):
            self._hand_out(Sent(rows.sql, rows.line))
            return
        self._queue(Pending(rows.sql, rows.line, inserts=True))

    def _parallel(self, table: str) -> bool:
        """Whether the workers may load this run of ``table``'s rows (starting the run):
        an InnoDB base table with a primary key and no triggers, row order then being
        the key's, and no temporary table that a worker's session would not see."""
        if self.workers is None or self.temporary or "." in table:
            return False
        self._barrier()
        self._flush()  # its CREATE TABLE, DISABLE KEYS, SETs
        with self.conn.cursor() as cur:
            cur.execute(_PARALLEL_SAFE, (table,))
            found = cur.fetchone()
        if found is None:
            return False
        engine, kind, primary, triggers = found
        if str(engine).lower() != "innodb" or kind != "BASE TABLE" or not primary or triggers:
            return False
        self.parallel_table = table
        self.ctx.log(f"data: {table} over {self.workers.size} connections")
        return True

    def _hand_out(self, sent: Sent) -> None:
        assert self.workers is not None
        self.parallel.append(sent)
        self.parallel_bytes += len(sent.sql)
        if self.parallel_bytes >= BATCH_BYTES:
            self._submit()

    def _submit(self) -> None:
        assert self.workers is not None
        self.ctx.check_cancelled()
        if self.parallel:
            batch, self.parallel, self.parallel_bytes = self.parallel, [], 0
            with self._cancel_first():
                self.workers.submit(batch)
        if self.reader is not None:
            self.ctx.progress(bytes_read=self.reader.bytes_read, statements=self.result.statements)

    @contextlib.contextmanager
    def _cancel_first(self) -> Iterator[None]:
        """A worker's error after a cancel (its statement was killed) is the cancel."""
        try:
            yield
        except RewindError:
            self.ctx.check_cancelled()
            raise

    def _barrier(self) -> None:
        """End the workers' run: everything handed out has run (or its error is raised)."""
        if self.workers is None or self.parallel_table is None:
            return
        self._submit()
        with self._cancel_first():
            statements, rows = self.workers.wait()
        self.result.statements += statements
        self.rows += rows
        self.parallel_table = None

    def _queue(self, pending: Pending) -> None:
        self.batch.append(pending)
        self.batch_bytes += len(pending.sql)
        if self.batch_bytes >= BATCH_BYTES:
            self._flush()

    def _add(self, statement: Statement) -> None:
        self._barrier()
        text = statement.text
        database = rewrite.database_statement(text)
        if database is not None:
            self._database(database, statement.line)
            return
        own = self.result.dump_database
        escapes = self.splitter.backslash_escapes if self.splitter else True
        if own is not None and own in text:
            text = rewrite.rename_schema(text, own, self.schema, escapes)
        if text[:7].upper() not in ("INSERT ", "REPLACE"):  # mysqldump's rows are unqualified
            for alias in self.aliases - {own, self.schema}:
                text = rewrite.rename_schema(text, alias, self.schema, escapes)
        if text[:1] in ("C", "c", "/"):
            text = self._definer(text)
        insert = _INSERT.match(text) if text[:7].upper() in ("INSERT ", "REPLACE") else None
        if insert:
            self._note_table(insert.group(1).replace("`", ""))
        inserts = text[:7].upper() in ("INSERT ", "REPLACE")
        sql = text.encode("utf-8", "surrogateescape")  # the file's own bytes
        if self.workers is not None and self._for_workers(text, sql):
            return
        if not _sets_sql_mode(statement):
            self._queue(Pending(sql, statement.line, inserts))
        else:
            self.batch.append(Pending(sql, statement.line, inserts))
            self._flush()
            if self.splitter is not None:
                self.splitter.backslash_escapes = not (
                    self.conn.server_status & NO_BACKSLASH_ESCAPES
                )
            if self.prefetch is not None:
                self.prefetch.resume()

    def _for_workers(self, text: str, sql: bytes) -> bool:
        """Note what the workers' sessions need; True for a statement to leave out.

        ``LOCK TABLES`` is left out with workers (it would block them until UNLOCK; it
        only speeds up MyISAM, and nothing else sees the staging schema)."""
        assert self.workers is not None
        if _TABLE_LOCKS.match(text):
            return True
        if _SETS_SESSION.match(text):
            self.workers.session(sql)
        elif _TEMPORARY.match(text):
            self.temporary = True
        return False

    def _database(self, database: rewrite.DatabaseStatement, line: int) -> None:
        """Map the dump's own database to ours; refuse a second one before it is touched."""
        own = self.result.dump_database
        if own is None:
            self.result.dump_database = own = database.name
            self.ctx.log(f"the dump names its own database {own}: loading it into {self.schema}")
        if database.name != own:
            raise RewindError(
                f"{self._where(line)}: the dump holds more than one database ({own} and "
                f"{database.name}); reel-tui rewinds one database per app (dump each "
                "database on its own). Nothing was changed"
            )
        if database.kind == "create" and database.options:
            self._flush()
            options = database.options.replace("IF NOT EXISTS", "").strip()
            self._execute(f"ALTER DATABASE {rewrite.quote(self.schema)} {options}")
            self.result.database_options = options

    def _definer(self, text: str) -> str:
        if self.definers == "keep" or rewrite.definition_kind(text) is None:
            return text
        written = rewrite.definer(text)
        if written is None:
            return text
        if self.definers == "auto":
            account = rewrite.account(written)
            if account is None or account in self.accounts:
                return text
            stripped = self.result.definers_stripped
            stripped[written] = stripped.get(written, 0) + 1
        return rewrite.strip_definer(text)

    def _note_table(self, table: str | None) -> None:
        if table == self.table:
            return
        if self.table is not None:
            self._barrier()
            self._flush()  # so its rows are counted
            self.ctx.log(f"data: {self.table} {self.rows:,} rows")
        self.table, self.rows = table, 0
        if table is not None:
            self.ctx.progress(detail=f"data: {table}")

    def _execute(self, sql: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql)

    def _flush(self) -> None:
        self.ctx.check_cancelled()
        batch, self.batch, self.batch_bytes = self.batch, [], 0
        while batch:
            done = self._run(batch)
            batch = batch[done:]
        if self.reader is not None:
            self.ctx.progress(bytes_read=self.reader.bytes_read, statements=self.result.statements)

    def _run(self, batch: list[Pending]) -> int:
        """Send ``batch`` as one query; return how many statements ran (all, or past an
        empty one the server skips); raise RewindError naming the one that failed."""
        done = 0
        cur = self.conn.cursor()
        try:
            cur.execute(b";\n".join(s.sql for s in batch))
            while True:
                self._count(batch[done], cur.rowcount)
                done += 1
                if not cur.nextset():
                    break
        except pymysql.Error as exc:
            self.ctx.check_cancelled()
            failed = batch[min(done, len(batch) - 1)]
            if error_code(exc) == EMPTY_QUERY:
                self.result.statements += 1
                return done + 1
            if error_code(exc) in LOST:
                raise RewindError(f"{self._where(failed.line)}: lost the connection to the "
                                  f"server: {message(exc)}") from None  # fmt: skip
            raise RewindError(
                f"{self._where(failed.line)}: {message(exc)} in: {first_line(failed.sql)}"
            ) from None
        finally:
            cur.close()
        return done

    def _count(self, statement: Pending, rowcount: int) -> None:
        self.result.statements += 1
        if rowcount > 0 and statement.inserts:
            self.rows += rowcount


def _sets_sql_mode(item: Statement | ClientCommand | Rows) -> bool:
    """A statement that may change sql_mode (and with it, whether backslashes escape)."""
    if not isinstance(item, Statement):
        return False
    text = item.text
    return text[:3].upper() in ("SET", "/*!") and bool(_SQL_MODE.search(text[:300]))


def first_line(sql: bytes) -> str:
    """A statement's first line, cut to 80 characters, for one-line errors."""
    first = sql[:400].strip().split(b"\n", 1)[0].decode("utf-8", "replace")
    return first if len(first) <= 80 else first[:77] + "..."
