"""Listing an app's dumps and resolving a user's source name safely."""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SHARED_DATA
from reel_tui.config import AppConfig
from reel_tui.dumpfile import DumpFormat
from reel_tui.sources import Source, SourceError, list_sources, resolve_source

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample-data" / "dumps"
PAGILA = SHARED_DATA / "pagila/pagila-schema.sql"
SAKILA = SHARED_DATA / "sakila/sakila-mv-schema.sql"

SQLITE_DUMP = "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t (x);\nCOMMIT;\n"


def make_app(
    tmp_path: Path,
    source: Path | None = None,
    sources_dir: Path | None = None,
    name: str = "shop",
) -> AppConfig:
    return AppConfig(
        name=name,
        driver="sqlite",
        database=str(tmp_path / "target.sqlite3"),
        source=source,
        sources_dir=sources_dir,
    )


def put(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def sqlite_db(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    return path


@functools.cache
def packed(sample: Path, compression: str) -> bytes:
    """A real sample, compressed once per run: these dumps are rebuilt for every test."""
    compress = {"gzip": gzip.compress, "xz": lzma.compress, "bz2": bz2.compress}[compression]
    return compress(sample.read_bytes())


def names(sources: list[Source]) -> list[str]:
    return [source.name for source in sources]


def by_name(sources: list[Source]) -> dict[str, Source]:
    return {source.name: source for source in sources}


@pytest.fixture
def dumps(tmp_path: Path) -> Path:
    """A dumps folder with every kind of dump, and things that are not dumps."""
    root = tmp_path / "dumps"
    put(root / "seed.sql", SQLITE_DUMP)
    put(root / "latest", packed(PAGILA, "gzip"))  # gzip, no extension
    put(root / "disguised.sql", gzip.compress(SQLITE_DUMP.encode()))  # .sql, really gzip
    put(root / "mysql" / "sakila.sql.xz", packed(SAKILA, "xz"))
    put(root / "mysql" / "sakila.sql.bz2", packed(SAKILA, "bz2"))
    put(root / "pg" / "pagila.sql", PAGILA.read_bytes())
    put(root / "pg" / "custom.dump", b"PGDMP\x01\x0e\x00\x04\x08" + bytes(300))
    put(root / "pg" / "nightly" / "toc.dat", b"PGDMP\x01\x0e" + bytes(100))
    put(root / "pg" / "nightly" / "3001.dat.gz", gzip.compress(b"1\tx\n\\.\n"))
    put(root / "pg" / "nightly" / "3002.dat.gz", gzip.compress(b"2\ty\n\\.\n"))
    sqlite_db(root / "snapshots" / "app.db")
    put(root / "2024" / "01" / "02" / "deep.sql", "INSERT INTO t VALUES (1);\n")
    # Not dumps: prose, hidden files and folders, junk with dump-like suffixes.
    put(root / "README.md", "# Shop dumps\n\nUse the newest one. Ask Ada before deleting.\n")
    put(root / "notes.txt", "Select the seed dump for demos.\n")
    put(root / ".DS_Store", b"\x00\x00\x00\x01Bud1" + bytes(100))
    put(root / ".hidden.sql", SQLITE_DUMP)
    put(root / ".git" / "HEAD", "ref: refs/heads/main\n")
    put(root / ".git" / "objects" / "stray.sql", SQLITE_DUMP)
    put(root / "Thumbs.db", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200))
    put(root / "logs.tar.gz", gzip.compress(b"app.log" + bytes(505) + b"GET / 200\n"))
    put(root / "EMPTY", b"")
    return root


EXPECTED = {
    "seed.sql": DumpFormat("sql", "none", "sqlite"),
    "2024/01/02/deep.sql": DumpFormat("sql", "none", "sql"),
    "disguised.sql": DumpFormat("sql", "gzip", "sqlite"),
    "latest": DumpFormat("sql", "gzip", "postgres"),
    "mysql/sakila.sql.bz2": DumpFormat("sql", "bz2", "mysql"),
    "mysql/sakila.sql.xz": DumpFormat("sql", "xz", "mysql"),
    "pg/custom.dump": DumpFormat("pg-custom", "none", "postgres"),
    "pg/nightly": DumpFormat("pg-directory", "none", "postgres"),
    "pg/pagila.sql": DumpFormat("sql", "none", "postgres"),
    "snapshots/app.db": DumpFormat("sqlite-db", "none", "sqlite"),
}


# --- listing ---------------------------------------------------------------------


def test_lists_every_dump_default_first_then_by_name(tmp_path: Path, dumps: Path) -> None:
    sources = list_sources(make_app(tmp_path, dumps / "seed.sql", dumps))
    assert names(sources) == ["seed.sql", *sorted(set(EXPECTED) - {"seed.sql"})]
    assert [s.is_default for s in sources] == [True] + [False] * (len(EXPECTED) - 1)


def test_formats_are_detected_from_content(tmp_path: Path, dumps: Path) -> None:
    sources = by_name(list_sources(make_app(tmp_path, dumps / "seed.sql", dumps)))
    assert {name: source.format for name, source in sources.items()} == EXPECTED


def test_size_modified_and_path_describe_the_file(tmp_path: Path, dumps: Path) -> None:
    os.utime(dumps / "latest", (1_700_000_000, 1_700_000_000))
    for source in list_sources(make_app(tmp_path, dumps / "seed.sql", dumps)):
        assert source.path == (dumps / source.name).resolve()
        assert source.path.is_absolute()
        info = source.path.stat()
        assert source.modified == info.st_mtime
        if source.path.is_file():
            assert source.size == info.st_size > 0
    assert by_name(list_sources(make_app(tmp_path, None, dumps)))["latest"].modified == 1.7e9


def test_a_pg_directory_is_one_source_sized_by_its_files(tmp_path: Path, dumps: Path) -> None:
    sources = list_sources(make_app(tmp_path, None, dumps))
    nightly = by_name(sources)["pg/nightly"]
    files = [dumps / "pg" / "nightly" / n for n in ("toc.dat", "3001.dat.gz", "3002.dat.gz")]
    assert nightly.size == sum(f.stat().st_size for f in files)
    assert not any(name.startswith("pg/nightly/") for name in names(sources))


def test_things_that_are_not_dumps_are_not_listed(tmp_path: Path, dumps: Path) -> None:
    listed = set(names(list_sources(make_app(tmp_path, None, dumps))))
    assert listed == set(EXPECTED)
    for name in ("README.md", "notes.txt", ".DS_Store", ".hidden.sql", ".git/HEAD",
                 ".git/objects/stray.sql", "Thumbs.db", "logs.tar.gz", "EMPTY"):  # fmt: skip
        assert name not in listed


def test_a_broken_file_named_like_a_dump_is_listed_as_unknown(tmp_path: Path) -> None:
    """Better shown (and refused when loaded) than silently missing from the list."""
    root = tmp_path / "dumps"
    put(root / "broken.sql.gz", b"\x1f\x8b" + b"not really gzip" * 10)
    put(root / "mystery.dump", b"\x00\x01\x02" * 50)
    sources = by_name(list_sources(make_app(tmp_path, None, root)))
    assert sources["broken.sql.gz"].format == DumpFormat("unknown", "gzip")
    assert sources["mystery.dump"].format == DumpFormat("unknown")


def test_no_default_means_nothing_is_marked_default(tmp_path: Path, dumps: Path) -> None:
    sources = list_sources(make_app(tmp_path, None, dumps))
    assert names(sources) == sorted(EXPECTED)
    assert not any(source.is_default for source in sources)


def test_a_nested_default_keeps_its_relative_name_and_is_listed_once(
    tmp_path: Path, dumps: Path
) -> None:
    sources = list_sources(make_app(tmp_path, dumps / "pg" / "pagila.sql", dumps))
    assert sources[0].name == "pg/pagila.sql"
    assert sources[0].is_default
    assert names(sources).count("pg/pagila.sql") == 1
    assert sum(s.is_default for s in sources) == 1


def test_a_pg_directory_can_be_the_default(tmp_path: Path, dumps: Path) -> None:
    sources = list_sources(make_app(tmp_path, dumps / "pg" / "nightly", dumps))
    assert sources[0].name == "pg/nightly"
    assert sources[0].is_default
    assert sources[0].format.container == "pg-directory"


def test_a_default_given_by_a_non_canonical_path_is_recognised(tmp_path: Path, dumps: Path) -> None:
    default = dumps / "pg" / ".." / "seed.sql"
    sources = list_sources(make_app(tmp_path, default, dumps))
    assert names(sources).count("seed.sql") == 1
    assert sources[0].name == "seed.sql"
    assert sources[0].is_default


def test_a_default_inside_the_folder_is_named_relatively_even_if_not_found_by_the_walk(
    tmp_path: Path, dumps: Path
) -> None:
    """A default the walk skips (no dump-like name or content) still gets a stable name."""
    default = put(dumps / "pg" / "tonight", "Use whatever.\n")
    sources = list_sources(make_app(tmp_path, default, dumps))
    assert sources[0].name == "pg/tonight"
    assert sources[0].is_default
    assert sources[0].format == DumpFormat("unknown")


def test_a_default_outside_the_folder_is_listed_by_file_name(tmp_path: Path, dumps: Path) -> None:
    default = put(tmp_path / "elsewhere" / "golden.sql", SQLITE_DUMP)
    sources = list_sources(make_app(tmp_path, default, dumps))
    assert sources[0] == Source(
        "golden.sql",
        default.resolve(),
        default.stat().st_size,
        default.stat().st_mtime,
        DumpFormat("sql", "none", "sqlite"),
        is_default=True,
    )
    assert names(sources)[1:] == sorted(EXPECTED)


def test_a_default_outside_with_a_clashing_name_is_listed_by_its_path(
    tmp_path: Path, dumps: Path
) -> None:
    default = put(tmp_path / "elsewhere" / "seed.sql", SQLITE_DUMP)
    sources = list_sources(make_app(tmp_path, default, dumps))
    assert sources[0].name == str(default)
    assert sources[0].path == default.resolve()
    assert by_name(sources)["seed.sql"].path == (dumps / "seed.sql").resolve()
    assert len(set(names(sources))) == len(sources)


def test_only_a_dbsource(tmp_path: Path) -> None:
    default = put(tmp_path / "seed.sql.gz", gzip.compress(SQLITE_DUMP.encode()))
    sources = list_sources(make_app(tmp_path, default, None))
    assert names(sources) == ["seed.sql.gz"]
    assert sources[0].is_default
    assert sources[0].format == DumpFormat("sql", "gzip", "sqlite")


def test_missing_paths_list_nothing(tmp_path: Path) -> None:
    app = make_app(tmp_path, tmp_path / "gone.sql", tmp_path / "no-such-folder")
    assert list_sources(app) == []
    assert list_sources(make_app(tmp_path)) == []


def test_a_missing_folder_still_lists_the_default(tmp_path: Path) -> None:
    default = put(tmp_path / "seed.sql", SQLITE_DUMP)
    sources = list_sources(make_app(tmp_path, default, tmp_path / "no-such-folder"))
    assert names(sources) == ["seed.sql"]


def test_a_hidden_folder_can_itself_be_the_sources_folder(tmp_path: Path) -> None:
    root = tmp_path / ".local" / "dumps"
    put(root / "a.sql", SQLITE_DUMP)
    assert names(list_sources(make_app(tmp_path, None, root))) == ["a.sql"]


def test_names_do_not_depend_on_the_working_directory(
    tmp_path: Path, dumps: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path, dumps / "seed.sql", dumps)
    monkeypatch.chdir(tmp_path)
    here = names(list_sources(app))
    monkeypatch.chdir(dumps / "pg")
    assert names(list_sources(app)) == here


def test_the_project_sample_dumps(tmp_path: Path) -> None:
    shop = SAMPLES / "shop"
    sources = list_sources(make_app(tmp_path, shop / "seed.sql.gz", shop))
    assert [(s.name, s.format, s.is_default) for s in sources] == [
        ("seed.sql.gz", DumpFormat("sql", "gzip", "sqlite"), True),
        ("demo/small.sql.xz", DumpFormat("sql", "xz", "sqlite"), False),
        ("demo/snapshot.sqlite3", DumpFormat("sqlite-db", "none", "sqlite"), False),
    ]
    blog = SAMPLES / "blog"
    sources = list_sources(make_app(tmp_path, blog / "seed.sql", blog, name="blog"))
    assert names(sources) == ["seed.sql", "three-posts.sql"]


def test_a_folder_that_cannot_be_looked_into_does_not_stop_the_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_dump -Fd folders are 0700: stat inside another user's one raises EACCES.

    Simulated (the tests may run as root, who can read everything): ``is_file``
    raises PermissionError below ``locked/``, as it does for a non-owner.
    """
    root = tmp_path / "dumps"
    put(root / "open.sql", SQLITE_DUMP)
    put(root / "locked" / "toc.dat", b"PGDMP" + bytes(40))
    put(root / "other" / "locked.sql", SQLITE_DUMP)
    real_is_file = Path.is_file

    def is_file(self: Path) -> bool:
        if "locked" in self.parts or self.name == "locked.sql":
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", is_file)
    assert names(list_sources(make_app(tmp_path, None, root))) == ["open.sql"]


def test_a_dump_deleted_during_the_listing_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reel_tui import sources as sources_module

    root = tmp_path / "dumps"
    put(root / "kept.sql", SQLITE_DUMP)
    real_walk = sources_module._walk
    monkeypatch.setattr(
        sources_module, "_walk", lambda folder: [*real_walk(folder), folder / "vanished.sql"]
    )
    assert names(list_sources(make_app(tmp_path, None, root))) == ["kept.sql"]


# --- symlinks --------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Dumps in a folder that is not the app's."""
    folder = tmp_path / "outside"
    put(folder / "secret.sql", SQLITE_DUMP)
    put(folder / "nested" / "more.sql", SQLITE_DUMP)
    put(folder / "pgdir" / "toc.dat", b"PGDMP" + bytes(50))
    return folder


@pytest.fixture
def linked(tmp_path: Path, outside: Path) -> Path:
    """A dumps folder with symlinks leading out of it, and one leading within it."""
    root = tmp_path / "dumps"
    put(root / "real.sql", SQLITE_DUMP)
    (root / "out.sql").symlink_to(outside / "secret.sql")
    (root / "outdir").symlink_to(outside / "nested", target_is_directory=True)
    (root / "outpg").symlink_to(outside / "pgdir", target_is_directory=True)
    (root / "passwd.sql").symlink_to("/etc/passwd")
    (root / "dangling.sql").symlink_to(outside / "not-there.sql")
    (root / "latest.sql").symlink_to("real.sql")
    return root


def test_symlinks_leading_outside_are_not_listed(tmp_path: Path, linked: Path) -> None:
    sources = list_sources(make_app(tmp_path, None, linked))
    assert names(sources) == ["real.sql"]
    assert all(source.path.is_relative_to(linked.resolve()) for source in sources)


def test_a_symlink_within_the_folder_lists_its_target_once(tmp_path: Path, linked: Path) -> None:
    sources = list_sources(make_app(tmp_path, None, linked))
    assert [s.path for s in sources] == [(linked / "real.sql").resolve()]


def test_a_symlinked_sources_folder_is_followed(tmp_path: Path, dumps: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(dumps, target_is_directory=True)
    sources = list_sources(make_app(tmp_path, alias / "seed.sql", alias))
    assert names(sources) == names(list_sources(make_app(tmp_path, dumps / "seed.sql", dumps)))
    assert sources[0].is_default
    assert resolve_source(make_app(tmp_path, None, alias), "pg/pagila.sql").format.flavor == (
        "postgres"
    )


# --- resolving names ---------------------------------------------------------------------


def test_none_resolves_to_the_default(tmp_path: Path, dumps: Path) -> None:
    app = make_app(tmp_path, dumps / "seed.sql", dumps)
    source = resolve_source(app, None)
    assert source.is_default
    assert source.name == "seed.sql"
    assert resolve_source(app) == source


def test_names_resolve_to_their_source(tmp_path: Path, dumps: Path) -> None:
    app = make_app(tmp_path, dumps / "seed.sql", dumps)
    for name, expected in EXPECTED.items():
        source = resolve_source(app, name)
        assert source.name == name
        assert source.format == expected
        assert source.path == (dumps / name).resolve()


def test_a_path_to_a_listed_source_resolves_to_it(tmp_path: Path, dumps: Path) -> None:
    app = make_app(tmp_path, dumps / "seed.sql", dumps)
    deep = resolve_source(app, "2024/01/02/deep.sql")
    assert resolve_source(app, str(dumps / "2024" / "01" / "02" / "deep.sql")) == deep
    assert resolve_source(app, "2024/01/../01/02/deep.sql") == deep
    assert resolve_source(app, "./2024/01/02/deep.sql") == deep


def test_a_symlink_within_the_folder_resolves_to_its_target(tmp_path: Path, linked: Path) -> None:
    app = make_app(tmp_path, None, linked)
    assert resolve_source(app, "latest.sql") == resolve_source(app, "real.sql")


def test_an_outside_default_resolves_by_name_and_by_path(tmp_path: Path, dumps: Path) -> None:
    default = put(tmp_path / "elsewhere" / "golden.sql", SQLITE_DUMP)
    app = make_app(tmp_path, default, dumps)
    assert resolve_source(app, "golden.sql").is_default
    assert resolve_source(app, str(default)).is_default
    assert resolve_source(app, None).path == default.resolve()


def assert_refused(app: AppConfig, name: str) -> str:
    with pytest.raises(SourceError) as caught:
        resolve_source(app, name)
    message = str(caught.value)
    assert message.startswith(f"app {app.name!r}: ")
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "../outside/secret.sql",
        "pg/../../outside/secret.sql",
        "/etc/passwd",
        "/etc/hostname",
        "out.sql",
        "outdir/more.sql",
        "outpg",
        "passwd.sql",
        "dangling.sql",
    ],
)
def test_names_leading_outside_are_refused(tmp_path: Path, linked: Path, name: str) -> None:
    message = assert_refused(make_app(tmp_path, linked / "real.sql", linked), name)
    assert f"source {name!r} is outside the app's sources" in message
    assert "refused" in message
    assert str(linked) in message


def test_an_existing_absolute_path_elsewhere_is_refused(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "dumps"
    put(root / "a.sql", SQLITE_DUMP)
    message = assert_refused(make_app(tmp_path, None, root), str(outside / "secret.sql"))
    assert "is outside the app's sources" in message


def test_paths_are_refused_when_there_is_no_sources_folder(tmp_path: Path) -> None:
    default = put(tmp_path / "seed.sql", SQLITE_DUMP)
    app = make_app(tmp_path, default, None)
    for name in ("../etc/passwd", "/etc/passwd", str(tmp_path / "other.sql")):
        assert "is outside the app's sources" in assert_refused(app, name)
    assert resolve_source(app, str(default)).is_default


def test_an_unknown_name_gets_a_did_you_mean_hint(tmp_path: Path, dumps: Path) -> None:
    message = assert_refused(make_app(tmp_path, dumps / "seed.sql", dumps), "pg/pagila.sq")
    assert message == "app 'shop': no source named 'pg/pagila.sq' (did you mean 'pg/pagila.sql'?)"


def test_an_unknown_name_without_a_close_match_lists_the_choices(tmp_path: Path) -> None:
    root = tmp_path / "dumps"
    put(root / "a.sql", SQLITE_DUMP)
    put(root / "b.sql", SQLITE_DUMP)
    message = assert_refused(make_app(tmp_path, None, root), "zzzzzzzz")
    assert message == "app 'shop': no source named 'zzzzzzzz' (available: a.sql, b.sql)"


def test_a_long_choice_list_is_cut_short(tmp_path: Path) -> None:
    root = tmp_path / "dumps"
    for n in range(11):
        put(root / f"dump-{n:02}.sql", SQLITE_DUMP)
    message = assert_refused(make_app(tmp_path, None, root), "qqqqqqqqqqqq")
    assert "available: dump-00.sql, " in message
    assert "dump-07.sql, … 3 more)" in message
    assert "dump-08.sql" not in message


@pytest.mark.parametrize(
    "name", ["README.md", ".hidden.sql", ".git/objects/stray.sql", "pg", "pg/nightly/toc.dat", ""]
)
def test_files_inside_that_are_not_sources_are_unknown_not_outside(
    tmp_path: Path, dumps: Path, name: str
) -> None:
    message = assert_refused(make_app(tmp_path, None, dumps), name)
    assert f"no source named {name!r}" in message
    assert "outside" not in message


@pytest.mark.parametrize("name", ["bad\nname.sql", "nul\x00byte.sql", "tab\tname", "ü" * 300])
def test_odd_names_give_a_one_line_source_error(tmp_path: Path, dumps: Path, name: str) -> None:
    message = assert_refused(make_app(tmp_path, None, dumps), name)
    assert "no source named" in message


def test_no_default_and_no_name(tmp_path: Path, dumps: Path) -> None:
    message = assert_refused_default(make_app(tmp_path, None, dumps))
    assert message.startswith("app 'shop' has no dbsource: name a source with --source")
    assert "available: 2024/01/02/deep.sql, disguised.sql" in message


def test_no_default_and_no_sources_at_all(tmp_path: Path) -> None:
    message = assert_refused_default(make_app(tmp_path, None, tmp_path / "nothing-here"))
    assert message == "app 'shop' has no dbsource: name a source with --source (it has none)"


def test_a_missing_default_is_reported(tmp_path: Path, dumps: Path) -> None:
    gone = tmp_path / "gone.sql"
    message = assert_refused_default(make_app(tmp_path, gone, dumps))
    assert message == f"app 'shop': dbsource not found: {gone}"


def assert_refused_default(app: AppConfig) -> str:
    with pytest.raises(SourceError) as caught:
        resolve_source(app, None)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_source_deleted_after_listing_is_no_longer_resolved(tmp_path: Path, dumps: Path) -> None:
    app = make_app(tmp_path, None, dumps)
    assert resolve_source(app, "pg/nightly").format.container == "pg-directory"
    shutil.rmtree(dumps / "pg" / "nightly")
    assert "no source named" in assert_refused(app, "pg/nightly")


# --- property: whatever the name, the answer is a listed source or a SourceError ------------

NAME_PARTS = st.sampled_from(
    ["..", ".", "", "/", "seed.sql", "out.sql", "outdir", "more.sql", "real.sql", "latest.sql",
     "etc", "passwd", "outside", "secret.sql", "dumps", "~", "\x00", "\n", "pg"]
)  # fmt: skip


@given(
    parts=st.lists(st.one_of(NAME_PARTS, st.text(max_size=6)), max_size=6),
    absolute=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_any_name_gives_a_listed_source_or_a_source_error(
    linked_for_property: tuple[AppConfig, list[Source]], parts: list[str], absolute: bool
) -> None:
    app, listed = linked_for_property
    name = "/".join(parts)
    if absolute:
        name = str(app.sources_dir) + "/" + name
    try:
        source = resolve_source(app, name)
    except SourceError as exc:
        assert str(exc).startswith("app 'shop'")
        assert "\n" not in str(exc)
    else:
        assert source in listed
        assert source.path.is_relative_to(app.sources_dir.resolve())  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def linked_for_property(tmp_path_factory: pytest.TempPathFactory) -> tuple[AppConfig, list[Source]]:
    base = tmp_path_factory.mktemp("property")
    outside = base / "outside"
    put(outside / "secret.sql", SQLITE_DUMP)
    put(outside / "nested" / "more.sql", SQLITE_DUMP)
    root = base / "dumps"
    put(root / "real.sql", SQLITE_DUMP)
    put(root / "pg" / "seed.sql", SQLITE_DUMP)
    (root / "out.sql").symlink_to(outside / "secret.sql")
    (root / "outdir").symlink_to(outside / "nested", target_is_directory=True)
    (root / "latest.sql").symlink_to("real.sql")
    app = make_app(base, root / "real.sql", root)
    listed = list_sources(app)
    assert names(listed) == ["real.sql", "pg/seed.sql"]
    return app, listed
