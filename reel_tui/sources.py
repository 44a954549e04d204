"""An app's dump files: finding them, describing them, and resolving a name safely.

A source is named by its path relative to the app's ``dbsources`` folder, so
names are stable whatever the working directory. A name the user gives must
match one of the listed sources: paths that lead outside the configured
folder (``..``, absolute paths, symlinks pointing elsewhere) are refused.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from reel_tui.config import AppConfig
from reel_tui.dumpfile import DumpFormat, detect_format

# Names that say "dump": listed even when the content is not recognised, so a
# broken dump shows up (as unknown) instead of vanishing from the list. Generic
# suffixes (.gz, .tar, .db: logs.tar.gz, Thumbs.db) are listed only by content.
DUMP_SUFFIXES = (
    ".sql", ".sql.gz", ".sql.xz", ".sql.bz2", ".dump", ".pgdump", ".backup",
    ".sqlite", ".sqlite3",
)  # fmt: skip


class SourceError(Exception):
    """A named source does not exist, is outside the app's sources, or cannot be read."""


@dataclass(frozen=True)
class Source:
    """One dump file (or pg_dump directory) an app can be rewound to."""

    name: str
    path: Path
    size: int
    modified: float
    format: DumpFormat
    is_default: bool = False
    stored: str | None = None
    """The key of the snapshot or undo copy this source is (see reel_tui.cache), named
    ``@NAME``; None for a dump file."""


def list_sources(app: AppConfig) -> list[Source]:
    """The app's ``dbsource`` first, then every dump under ``dbsources`` by name.

    Files whose content is not a dump (a README beside the dumps) and hidden
    files are left out, as are symlinks that lead outside the folder.
    """
    found = []
    for name, path, is_default in _candidates(app):
        with contextlib.suppress(OSError):  # deleted since the folder was walked
            found.append(_describe(name, path, is_default=is_default))
    return found


def source_names(app: AppConfig) -> list[str]:
    """The names of the app's dump sources, in listing order, without reading any dump's
    content (but generic-suffix files', sniffed to be listed): the only names the HTTP API
    accepts, so a name from a URL can never be a path."""
    return [name for name, _, _ in _candidates(app)]


def _candidates(app: AppConfig) -> list[tuple[str, Path, bool]]:
    """(name, resolved path, is default) of every source, in listing order; cheap: no
    dump is read, except files with a generic suffix, which are sniffed to be listed."""
    found: dict[Path, tuple[str, Path, bool]] = {}
    default = app.source.resolve() if app.source and app.source.exists() else None
    root = app.sources_dir.resolve() if app.sources_dir and app.sources_dir.is_dir() else None
    if root:
        for path in _walk(root):
            found[path] = (path.relative_to(root).as_posix(), path, path == default)
    if default and default not in found:
        if root and default != root and _inside(default, root):
            name = default.relative_to(root).as_posix()
        else:
            name = default.name
        if any(entry[0] == name for entry in found.values()):
            name = str(app.source)
        found[default] = (name, default, True)
    return sorted(found.values(), key=lambda entry: (not entry[2], entry[0]))


def _walk(root: Path) -> list[Path]:
    """Dump files and pg_dump directories under root, resolved, never outside it."""
    paths: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in list(dirs):
            candidate = here / name
            if _is_pg_directory(candidate):
                dirs.remove(name)
                if _inside(candidate.resolve(), root):
                    paths.append(candidate.resolve())
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = (here / name).resolve()
            try:
                if path.is_file() and _inside(path, root) and _is_dump(path):
                    paths.append(path)
            except OSError:  # not ours to read (another user's 0700 folder), or gone
                continue
    return paths


def _is_pg_directory(path: Path) -> bool:
    """A pg_dump directory-format dump; False for a folder we may not look into.

    pg_dump -Fd makes its folder 0700, so another user's dump must not stop the
    listing: ``is_file`` raises PermissionError rather than returning False.
    """
    try:
        return (path / "toc.dat").is_file()
    except OSError:
        return False


def _is_dump(path: Path) -> bool:
    """Named like a dump, or not empty and recognised as one by content."""
    if path.name.lower().endswith(DUMP_SUFFIXES):
        return True
    try:
        return path.stat().st_size > 0 and detect_format(path).container != "unknown"
    except OSError:
        return False


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _describe(name: str, path: Path, *, is_default: bool) -> Source:
    info = path.stat()
    size = info.st_size
    if path.is_dir():
        try:
            size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        except OSError:  # an unreadable pg_dump folder: its size is unknown
            size = 0
    try:
        dump_format = detect_format(path)
    except OSError:
        dump_format = DumpFormat("unknown")
    return Source(name, path, size, info.st_mtime, dump_format, is_default)


def resolve_source(app: AppConfig, name: str | None = None) -> Source:
    """The source called ``name``, or the app's default (``dbsource``) when None.

    Only that source's file is read (to tell its format), not every dump's.

    Raises:
        SourceError: no such source, no default, or a path outside the app's sources.
    """
    candidates = _candidates(app)
    names = [entry[0] for entry in candidates]
    match = None
    if name is None:
        match = next((entry for entry in candidates if entry[2]), None)
        if match is None and app.source is not None:
            raise SourceError(f"app {app.name!r}: dbsource not found: {app.source}")
        if match is None:
            raise SourceError(
                f"app {app.name!r} has no dbsource: name a source with --source ({_choices(names)})"
            )
    else:
        real = _real_path(app, name)
        match = next((entry for entry in candidates if entry[0] == name), None) or next(
            (entry for entry in candidates if real is not None and entry[1] == real), None
        )
    if match is not None:
        try:
            return _describe(match[0], match[1], is_default=match[2])
        except OSError as exc:
            raise SourceError(f"app {app.name!r}: source {match[0]!r}: {exc.strerror}") from None
    assert name is not None
    if _escapes(app, name):
        raise SourceError(
            f"app {app.name!r}: source {name!r} is outside the app's sources "
            f"(dbsources = {app.sources_dir}); refused"
        )
    import difflib  # only for a name that was not found

    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" ({_choices(names)})"
    raise SourceError(f"app {app.name!r}: no source named {name!r}{hint}")


def _real_path(app: AppConfig, name: str) -> Path | None:
    """Where ``name`` leads, symlinks followed: relative names are under ``dbsources``.

    Lets a user give a path (absolute, or with ``..``) to a listed source; only
    a path that ends at a listed source is accepted. None when it cannot lead
    anywhere (no ``dbsources`` for a relative name, a NUL byte).
    """
    path = Path(name)
    if not path.is_absolute():
        if app.sources_dir is None:
            return None
        path = app.sources_dir / path
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return None


def _escapes(app: AppConfig, name: str) -> bool:
    """True when ``name`` is a path that leads outside the app's sources folder.

    Symlinks are followed even when dangling, so a link to a file elsewhere is
    refused as such rather than reported as missing.
    """
    if app.sources_dir is None:
        return Path(name).is_absolute() or ".." in Path(name).parts
    real = _real_path(app, name)
    return real is not None and not _inside(real, app.sources_dir.resolve())


def _choices(names: list[str]) -> str:
    if not names:
        return "it has none"
    shown = ", ".join(names[:8])
    more = f", … {len(names) - 8} more" if len(names) > 8 else ""
    return f"available: {shown}{more}"
