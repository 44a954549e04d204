"""MySQL engine fidelity on a database built to be hard, round-tripped through mysqldump:
after a rewind the target equals what the mysql client makes of the same dump."""

from __future__ import annotations

import os
import subprocess

import pytest
from my_tools import fingerprint, messages, mysql_reference, rewind
from mysql_server import MysqlServer

from reel_tui.jobs import JobState

SOURCE = "hard_src"
REFERENCE = "hard_ref"
SCHEMA = [
    "CREATE TABLE `parents;` (`id` int PRIMARY KEY, `name` varchar(10)) ENGINE=InnoDB",
    """CREATE TABLE `order items` (
        `id` int NOT NULL AUTO_INCREMENT PRIMARY KEY,
        `select` varchar(50) NOT NULL,
        `from` text,
        `émoji ü` varchar(20),
        `data` longblob,
        `doc` json,
        `state` enum('new;old','it''s','back\\\\slash') NOT NULL DEFAULT 'new;old',
        `total` decimal(10,2),
        `double total` decimal(11,2) GENERATED ALWAYS AS (`total` * 2) STORED,
        `upper select` varchar(50) GENERATED ALWAYS AS (upper(`select`)) VIRTUAL,
        `parent id` int,
        CONSTRAINT `fk parent` FOREIGN KEY (`parent id`) REFERENCES `parents;` (`id`)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TRIGGER `bi;x` BEFORE INSERT ON `order items` FOR EACH ROW BEGIN
        -- a comment; kept
        SET NEW.`from` = CONCAT('a;b', IFNULL(NEW.`from`, ''));
    END""",
    """CREATE PROCEDURE `p;1`(IN n INT) BEGIN
        DECLARE x INT DEFAULT 1; # hash comment; kept
        SELECT 'x;y', n; /* block; comment */
    END""",
    "CREATE FUNCTION `twice`(n INT) RETURNS int DETERMINISTIC RETURN n * 2",
    "CREATE VIEW `v items` AS SELECT `select`, `émoji ü`, twice(`id`) AS t FROM `order items`",
    "CREATE EVENT `tidy;up` ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE "
    "DO DELETE FROM `parents;` WHERE 1 = 0",
]
ROWS = [
    ("plain", None, "😀 ok", b"\x00'\"\\\n\r\x1a\xff\xfe;-- /*", '{"a": "b;c", "d": [1, 2]}',
     "it's", "10.50", 1),
    ("binary", "x", "emoji 🎉", bytes(range(256)) * 4, None, "back\\slash", None, None),
    ("big", "y" * 1000, None, os.urandom(3 * 1024 * 1024), '{"k": "\\\\ \\" \'"}', "new;old",
     "0.01", 2),
]  # fmt: skip


@pytest.fixture(scope="module")
def hard_dumps(mysql_server: MysqlServer, tmp_path_factory: pytest.TempPathFactory):
    """The hard database, its mysqldump (plain and --databases), and the client's reference."""
    folder = tmp_path_factory.mktemp("hard")
    mysql_server.execute(f"DROP DATABASE IF EXISTS {SOURCE}")
    mysql_server.execute(f"CREATE DATABASE {SOURCE} CHARACTER SET utf8mb4")
    conn = mysql_server.connect(SOURCE)
    try:
        with conn.cursor() as cur:
            for sql in SCHEMA:
                cur.execute(sql)
            cur.execute("INSERT INTO `parents;` VALUES (1, 'one'), (2, 'two')")
            for row in ROWS:
                cur.execute(
                    "INSERT INTO `order items` (`select`, `from`, `émoji ü`, `data`, `doc`, "
                    "`state`, `total`, `parent id`) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    row,
                )
    finally:
        conn.close()
    dumps = {}
    for name, extra in (("hard.sql", [SOURCE]), ("hard-databases.sql", ["--databases", SOURCE])):
        with open(folder / name, "wb") as out:
            subprocess.run(["mysqldump", *mysql_server.client_args(), "--routines", "--triggers",
                            "--events", *extra], stdout=out, env=mysql_server.client_env(),
                           check=True)  # fmt: skip
        dumps[name] = folder / name
    mysql_server.execute(f"DROP DATABASE IF EXISTS {REFERENCE}")
    mysql_reference(mysql_server, dumps["hard.sql"], REFERENCE)
    yield dumps, fingerprint(mysql_server, REFERENCE)
    for db in (SOURCE, REFERENCE):
        mysql_server.execute(f"DROP DATABASE IF EXISTS {db}")


def test_the_dump_holds_raw_binary_bytes(hard_dumps):
    dumps, _ = hard_dumps
    raw = dumps["hard.sql"].read_bytes()
    assert raw.startswith(b"/*M!999999\\- enable the sandbox mode */")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


@pytest.mark.parametrize("name", ["hard.sql", "hard-databases.sql"])
def test_hard_database_equals_the_mysql_client(mysql_server, my_config, my_dbname, history,
                                               hard_dumps, name):  # fmt: skip
    dumps, reference = hard_dumps
    config = my_config()
    (config.parent / "dumps" / name).write_bytes(dumps[name].read_bytes())
    job = rewind(config, history, name)
    assert job.state is JobState.SUCCEEDED, job.error
    found = fingerprint(mysql_server, my_dbname)
    assert sorted(found) == sorted(reference)
    for key, value in reference.items():
        assert found[key] == value, key
    [(size,)] = mysql_server.execute(
        "SELECT LENGTH(`data`) FROM `order items` WHERE `select` = 'big'", my_dbname
    )
    assert size == 3 * 1024 * 1024
    if name == "hard-databases.sql":
        assert f"the dump names its own database {SOURCE}: loading it into " \
               f"{my_dbname}__reel_staging" in messages(job)  # fmt: skip
    assert mysql_server.execute(f"SELECT COUNT(*) FROM {SOURCE}.`order items`") == [(3,)]
