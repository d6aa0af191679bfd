"""Overwrites of a local folder that readers never see half done: the folder is a link to its current version.

``events`` is a symlink to a hidden sibling ``.v<time>-<id>.events``. An overwrite writes the new version
beside it, then replaces the link with one ``os.replace`` (atomic on POSIX file systems). A reader that
resolves the link first (:func:`current`, as ``read_table`` does) lists the files of one complete
version. The previous version, and any replaced less than five minutes ago, is kept, so a read that
resolved it before a swap still finds its files; older ones are deleted by the next write. Spark, pandas
and pyarrow follow the link, so ``spark.read.parquet("events")`` keeps working (only a resolved read is
safe during a concurrent swap).

Why a link rather than two renames (``events`` -> old, new -> ``events``): between the renames there is
no table, and a crash there leaves none. The version tag comes first in the name so that code matching
``.events.*`` as leftovers of the earlier layout (MultiEval's clean-up) leaves versions alone. Local
(and POSIX-mounted) disks only: object stores use Delta, whose transaction log gives the same guarantee.
Named Parquet tables reuse the versions (:func:`replace`, with a catalog switch instead of the link).

After a crash: staging folders (``.events.writing-<pid>-<id>``) whose process is gone are deleted by the
next write; a missing ``events`` with a ``.events.old-*`` folder beside it (left by the earlier
rename-based layout, or by the first overwrite of such a folder) is restored by the next read or write.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import DataFrame

_VERSION = re.compile(r"\.v(?P<stamp>\d{20})-[0-9a-f]{8}\.(?P<base>.+)")
# What else may sit beside a target ``events``, after a ``.events.`` prefix.
_STAGING = re.compile(r"writing-(?:(?P<pid>\d+)-)?[0-9a-f]{8}")  # no pid: the earlier layout's
_LEFTOVER = re.compile(r"(?P<kind>old|link)-[0-9a-f]{8}")
# A replaced version stays this long, for reads that resolved it before the swap (beyond the previous one,
# which always stays: back-to-back overwrites could otherwise delete a version under a running read).
_GRACE_S = 300


def current(target: Path) -> Path:
    """The folder (or file) holding ``target``'s current version; restores a ``target`` lost in a crash."""
    if not os.path.lexists(target) and target.parent.is_dir():
        with _locked(target.parent):
            _restore(target)
    return Path(os.path.realpath(target))


def overwrite(df: DataFrame, target: Path, fmt: str) -> None:
    """Write ``df`` as the new version of the folder ``target`` and switch the link to it."""
    target = Path(os.path.abspath(target))

    def switch(version: Path) -> Path | None:
        _restore(target)
        previous = target.parent / os.readlink(target) if os.path.islink(target) else None
        if os.path.lexists(target) and previous is None:
            # A folder of the earlier layout: moved aside as that layout did, so that a crash before the
            # link leaves what its recovery knows. Its readers read through this path: none to keep.
            target.rename(target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}"))
        link = target.with_name(f".{target.name}.link-{uuid.uuid4().hex[:8]}")
        os.symlink(version.name, link)
        os.replace(link, target)
        return previous

    replace(df, target, fmt, switch)


def replace(df: DataFrame, base: Path, fmt: str, switch: Callable[[Path], Path | None]) -> None:
    """Write ``df`` to a new version beside ``base``, call ``switch(version)`` and delete what is left over.

    ``switch`` makes the new version current and returns the version it replaced (kept for readers that
    are mid-read); it runs under a lock on the folder, so concurrent writers cannot delete each other's
    versions.
    """
    base.parent.mkdir(parents=True, exist_ok=True)
    staging = base.with_name(f".{base.name}.writing-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        df.write.format(fmt).mode("overwrite").save(str(staging))
        if not staging.exists():  # Sail writes no file at all for an empty result
            _write_empty(df, staging, fmt)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    with _locked(base.parent):
        version = base.with_name(f".v{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.{base.name}")
        staging.rename(version)
        previous = switch(version)
        _prune(base, keep={version, previous})


def base_of(location: Path) -> Path:
    """The target a version folder belongs to (``.v<time>-<id>.events`` -> ``events``), else ``location``."""
    found = _VERSION.fullmatch(location.name)
    return location.with_name(found["base"]) if found else location


def _versions(base: Path) -> list[Path]:
    """``base``'s versions, oldest first."""
    found = [(m["stamp"], p) for p in base.parent.iterdir() if (m := _VERSION.fullmatch(p.name))]
    return [path for _, path in sorted(found) if base_of(path) == base]


def _siblings(base: Path, pattern: re.Pattern) -> Iterator[tuple[Path, re.Match]]:
    prefix = f".{base.name}."
    for path in base.parent.iterdir():
        if path.name.startswith(prefix) and (found := pattern.fullmatch(path.name[len(prefix) :])):
            yield path, found


def _restore(target: Path) -> None:
    """Bring back a missing ``target`` from its newest ``.old-*`` folder, if there is one."""
    if os.path.lexists(target):
        return
    retired = [path for path, found in _siblings(target, _LEFTOVER) if found["kind"] == "old"]
    if retired:
        max(retired, key=lambda path: path.stat().st_mtime).rename(target)


def _prune(base: Path, keep: set[Path | None]) -> None:
    """Delete old versions, staging folders of writers that are gone and leftovers of the earlier layout."""
    versions = _versions(base)
    replaced_long_ago = time.time_ns() - _GRACE_S * 10**9
    for older, newer in zip(versions, versions[1:]):
        if older not in keep and int(_VERSION.fullmatch(newer.name)["stamp"]) < replaced_long_ago:
            _remove(older)
    for path, found in _siblings(base, _STAGING):
        if found["pid"] is None or not _alive(int(found["pid"])):
            _remove(path)
    for path, _ in _siblings(base, _LEFTOVER):
        _remove(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, run by another user
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _write_empty(df: DataFrame, folder: Path, fmt: str) -> None:
    """One empty file with ``df``'s columns, as classic Spark writes for an empty result."""
    folder.mkdir()
    if fmt == "parquet":
        import pyarrow.parquet as pq
        from pyspark.sql.pandas.types import to_arrow_schema

        pq.write_table(to_arrow_schema(df.schema).empty_table(), folder / "part-00000.parquet")


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``folder`` itself: serialises swaps across processes and threads."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock
