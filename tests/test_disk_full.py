"""A full disk under a SQLite target or the state directory, caused for real with a
file-size limit (RLIMIT_FSIZE) on the headless reel-tui process: writes past it fail
with EFBIG (Python ignores SIGXFSZ), as they would with ENOSPC on a full disk."""

from __future__ import annotations

import os
import resource
import sqlite3
import subprocess
from pathlib import Path

from conftest import REEL, big_dump, file_hash

LIMIT = 4 * 1024 * 1024


def limited(limit: int):  # type: ignore[no-untyped-def]
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def run(args: list[str], env: dict[str, str], limit: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REEL, *args], capture_output=True, text=True, env=env,
                          preexec_fn=limited(limit), timeout=120)  # fmt: skip


def test_full_disk_during_a_sqlite_load_leaves_the_target_and_no_temp_file(blog, tmp_path):
    env = {**os.environ, "REEL_STATE_DIR": str(tmp_path / "state")}
    config = str(blog.path)
    target = Path(blog.apps["blog"].database)
    assert subprocess.run([*REEL, "-c", config, "--rewind", "-q"], env=env).returncode == 0
    before = file_hash(target)
    big_dump(blog.apps["blog"].sources_dir / "big.sql", 200_000)  # about 20 MB loaded
    result = run(["-c", config, "--rewind", "--source", "big.sql", "-q"], env, LIMIT)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "cannot write the loaded copy in" in errors[0], result.stderr
    assert "is the disk full" in errors[0]
    assert "Traceback" not in result.stderr
    assert file_hash(target) == before
    assert not list(target.parent.glob(f".{target.name}.reel-*.tmp*"))
    # and without the limit the same rewind goes through
    assert subprocess.run([*REEL, "-c", config, "--rewind", "--source", "big.sql", "-q"],
                          env=env).returncode == 0  # fmt: skip


def test_full_state_directory_refuses_before_touching_the_target_and_heals(blog, tmp_path):
    """A state directory that cannot grow (SQLite's shared-memory file for the history
    cannot be written) stops the rewind with one line, exit 2, before the target is
    touched; the next run with room works on the same state directory."""
    env = {**os.environ, "REEL_STATE_DIR": str(tmp_path / "state")}
    config = str(blog.path)
    target = Path(blog.apps["blog"].database)
    assert subprocess.run([*REEL, "-c", config, "--rewind", "-q"], env=env).returncode == 0
    before = file_hash(target)
    result = run(["-c", config, "--rewind", "--source", "other.sql"], env, 200)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "job history" in result.stderr
    assert file_hash(target) == before
    after = subprocess.run([*REEL, "-c", config, "--rewind", "--source", "other.sql", "-q"],
                           env=env, capture_output=True, text=True)  # fmt: skip
    assert after.returncode == 0, after.stderr
    assert file_hash(target) != before


def in_own_mount_namespace(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (sh) in a mount namespace of its own: what it mounts (a tiny tmpfs)
    exists for it alone and goes away with it, whatever happens to the test. As root a
    plain ``unshare --mount``; else as the user's own root in a user namespace."""
    unshare = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    return subprocess.run([*unshare, "sh", "-euc", script], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip


def test_full_cache_directory_beside_a_sqlite_target(blog, tmp_path):
    """The cached copies' folder beside the target on a file system of its own that is full
    (a 64 KB tmpfs): the rewind still goes through (the copy is only a speed-up, said in a
    warning), and what was written of the copy is removed, not left to keep the disk full."""
    env = {**os.environ, "REEL_STATE_DIR": str(tmp_path / "state")}
    config = str(blog.path)
    target = Path(blog.apps["blog"].database)
    cache = target.parent / f".{target.name}.reel-cache"
    cache.mkdir()
    big_dump(blog.apps["blog"].sources_dir / "big.sql", 5_000)  # about 500 KB loaded
    reel = " ".join([*REEL, "-c", config, "--rewind", "--source", "big.sql"])
    result = in_own_mount_namespace(
        f"mount -t tmpfs -o size=64k tmpfs {cache}\n"
        f"{reel}\n"  # a first rewind: the loaded file becomes the target, the copy is a copy
        f"echo cache: $(ls -A {cache})\n"
        f"{reel}\n",  # and again: the target exists, the copy would be a link to another fs
        env,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if "WARNING" in line]
    assert len(warnings) == 3, output
    assert "could not keep a cached copy: [Errno 28] No space left on device" in warnings[0]
    assert "could not keep a cached copy" in warnings[1]
    assert "no undo copy: cannot copy" in warnings[2]  # the undo copy lives there too
    assert "cache:" in output.splitlines(), output  # nothing left in the full folder
    assert not list(target.parent.glob(f".{target.name}.reel-*.tmp*"))
    assert sqlite3.connect(target).execute("SELECT count(*) FROM events").fetchone() == (5000,)
