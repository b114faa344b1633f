"""Atomic writes: every file and folder lsr writes appears whole or not at all.

A write goes to a temporary name beside its target and is renamed into
place (``os.replace`` is atomic on POSIX and Windows within one folder), so
a killed process leaves the old file, or a temporary that no reader looks
at, never a half-written file under the real name.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

from .errors import LsrError


def _tmp_name(path: Path) -> Path:
    # Process and thread in the name: two writers of one target never share a temporary.
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")


@contextmanager
def atomic_file(path, mode: str = "w", **kwargs):
    """Open a temporary file for writing (text is UTF-8 unless ``encoding`` says otherwise); on success
    it is flushed to disk and replaces ``path``, so after a crash the file is the old one or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the data reaches the disk before the rename makes it the file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(path):
    """Yield a temporary path for a writer that opens files itself (numpy, pyarrow); renamed on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path, text: str) -> Path:
    with atomic_file(path, "w") as f:
        f.write(text)
    return Path(path)


def write_json(path, obj, indent: int | None = 2, **kwargs) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, **kwargs))


@contextmanager
def atomic_dir(target, overwrite: bool = False, error: type[LsrError] = LsrError):
    """Yield a temporary folder; on success it replaces ``target`` (a folder) in one rename.

    Refuses an existing ``target`` unless ``overwrite`` (raising ``error``, so an
    index writer reports an index error). The old folder is
    moved aside before the new one is renamed in, then deleted, so a crash
    between the two renames leaves the old folder under a hidden name, never
    a mixture of both.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise error(f"{target} already exists (pass overwrite=True / --overwrite to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
