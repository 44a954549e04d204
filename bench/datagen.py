"""Deterministic synthetic data for the benchmark: two tables, sized in MB.

``customers`` (ints, text, a float, a timestamp, a unique index) and ``orders``
(ints, a decimal, a float, text, a timestamp, two indexes, and a foreign key to
``customers``). The same seed and size always give the same rows, so dumps made
on two machines hold the same data.

The size is the data's size as tab-separated text, which is close to the size
of a plain ``pg_dump`` (COPY) of it; other formats come out larger (one INSERT
per row) or a little smaller.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

GEN_VERSION = 1
"""Bump when the rows or the schema change: cached dumps are keyed by it."""

SEED = 20261128
CHUNK = 5000
ORDERS_PER_CUSTOMER = 10

Customer = tuple[int, str, str, float, str]
Order = tuple[int, int, int, str, float, str, str]

_NAMES = """
Ana Bram Chloé Dmitri Eve Farid Grace Hiro Ines Jon Kemal Léa Mia Noor Oskar Priya Quinn Rosa
Sven Tariq
|O'Brien Smith Müller Nakamura García Kowalski Dubois Rossi Jensen Okafor Silva Novak Haddad Larsen
Costa Ivanova
|express standard gift wrapped fragile return exchange backorder priority bulk warehouse courier
invoice discount loyalty voucher café naïve delivered pending cancelled partial refund note customer
asked for a call before delivery
"""
_FIRST, _LAST, _WORDS = (part.split() for part in _NAMES.split("|"))
_EPOCH = datetime(2020, 1, 1)


@dataclass(frozen=True)
class Plan:
    """How many rows of each table make ``size_mb`` of data."""

    size_mb: float
    customers: int
    orders: int


def _timestamp(rng: random.Random) -> str:
    moment = _EPOCH + timedelta(seconds=rng.randrange(0, 5 * 365 * 86400))
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _customer(rng: random.Random, ident: int) -> Customer:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    email = f"{first.lower()}.{ident}@example.com".replace("é", "e")
    return (ident, f"{first} {last}", email, round(rng.uniform(0, 1000), 6), _timestamp(rng))


def _order(rng: random.Random, ident: int, customers: int) -> Order:
    note = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 18)))
    amount = f"{rng.randint(100, 99_999_99) / 100:.2f}"
    return (
        ident,
        rng.randint(1, customers),
        rng.randint(1, 50),
        amount,
        round(rng.uniform(0.01, 80.0), 4),
        note,
        _timestamp(rng),
    )


def _tsv_len(row: tuple[object, ...]) -> int:
    return len("\t".join(str(v) for v in row).encode()) + 1


def plan(size_mb: float) -> Plan:
    """Row counts for ``size_mb`` MB (10^6 bytes) of tab-separated data, from a sample."""
    rng = random.Random(SEED ^ 0x5A5A)
    sample = 2000
    per_customer = sum(_tsv_len(_customer(rng, i + 1)) for i in range(sample)) / sample
    per_order = sum(_tsv_len(_order(rng, i + 1, 1000)) for i in range(sample)) / sample
    per_block = per_customer + ORDERS_PER_CUSTOMER * per_order
    customers = max(1, round(size_mb * 1_000_000 / per_block))
    return Plan(size_mb, customers, customers * ORDERS_PER_CUSTOMER)


def customers(p: Plan) -> Iterator[list[Customer]]:
    """The customers, in chunks of ``CHUNK`` rows."""
    rng = random.Random(SEED)
    for start in range(1, p.customers + 1, CHUNK):
        yield [_customer(rng, i) for i in range(start, min(start + CHUNK, p.customers + 1))]


def orders(p: Plan) -> Iterator[list[Order]]:
    """The orders, in chunks of ``CHUNK`` rows; each names an existing customer."""
    rng = random.Random(SEED + 1)
    for start in range(1, p.orders + 1, CHUNK):
        yield [_order(rng, i, p.customers) for i in range(start, min(start + CHUNK, p.orders + 1))]


SCHEMA = {
    "sqlite": [
        """CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
           email TEXT NOT NULL, score REAL, created_at TEXT NOT NULL)""",
        """CREATE TABLE orders (id INTEGER PRIMARY KEY,
           customer_id INTEGER NOT NULL REFERENCES customers (id), qty INTEGER NOT NULL,
           amount NUMERIC NOT NULL, weight REAL, note TEXT, placed_at TEXT NOT NULL)""",
    ],
    "postgres": [
        """CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL,
           email text NOT NULL, score double precision, created_at timestamp NOT NULL)""",
        """CREATE TABLE orders (id bigint PRIMARY KEY,
           customer_id integer NOT NULL REFERENCES customers (id), qty integer NOT NULL,
           amount numeric(12,2) NOT NULL, weight double precision, note text,
           placed_at timestamp NOT NULL)""",
    ],
    "mysql": [
        """CREATE TABLE customers (id int NOT NULL PRIMARY KEY, name varchar(80) NOT NULL,
           email varchar(120) NOT NULL, score double, created_at datetime NOT NULL)
           ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        """CREATE TABLE orders (id bigint NOT NULL PRIMARY KEY, customer_id int NOT NULL,
           qty int NOT NULL, amount decimal(12,2) NOT NULL, weight double, note text,
           placed_at datetime NOT NULL,
           CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id))
           ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    ],
}
"""Tables first; ``INDEXES`` are built after the rows are in (as a dump would)."""

INDEXES = {
    "sqlite": [
        "CREATE UNIQUE INDEX customers_email_key ON customers (email)",
        "CREATE INDEX orders_customer_id_idx ON orders (customer_id)",
        "CREATE INDEX orders_placed_at_idx ON orders (placed_at)",
    ],
    "postgres": [
        "CREATE UNIQUE INDEX customers_email_key ON customers (email)",
        "CREATE INDEX orders_customer_id_idx ON orders (customer_id)",
        "CREATE INDEX orders_placed_at_idx ON orders (placed_at)",
    ],
    "mysql": [
        "CREATE UNIQUE INDEX customers_email_key ON customers (email)",
        "CREATE INDEX orders_placed_at_idx ON orders (placed_at)",
    ],
}
