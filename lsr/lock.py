"""One writer per output: ``.NAME.lock`` beside the target, flock'ed without waiting.

A second writer of NAME (another process, or another thread of this one)
gets a clear error instead of racing on shared temporaries. The kernel drops
the lock when its holder dies: a killed writer never leaves a stale lock.
Within one thread it is reentrant (build_index holds it for the whole run;
the atomic_dir publishing the index takes it again).
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path

from .errors import LsrError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the in-process registry still guards threads
    fcntl = None

_REGISTRY: dict[str, list] = {}  # resolved target -> [owner thread id, depth]
_REGISTRY_LOCK = threading.Lock()


def lock_file(target) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}.lock"


def _busy(target: Path, pid: str, error: type[LsrError]) -> LsrError:
    who = f"pid {pid}" if pid else "pid unknown"
    return error(f"another lsr process ({who}) is writing {target}; wait for it to finish, or write to "
                 "another folder")


def _acquire(target: Path, error: type[LsrError]):
    """Lock ``.NAME.lock``; returns its open descriptor (None where flock does not exist)."""
    if fcntl is None:
        return None
    path = lock_file(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.read(fd, 32).decode("ascii", "replace").strip()
            finally:
                os.close(fd)
            raise _busy(target, pid, error) from None
        # The holder unlinks the file on release: a descriptor opened before that points at a
        # removed file, and locking it proves nothing. Retry on the file now at the path.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            return fd
        os.close(fd)
    raise error(f"could not lock {path} (it keeps being replaced); retry")


@contextmanager
def writer_lock(target, error: type[LsrError] = LsrError):
    """Hold the write lock of ``target`` (a path that need not exist yet) for the ``with`` body."""
    target = Path(target)
    key = str(target.resolve())
    me = threading.get_ident()
    with _REGISTRY_LOCK:
        held = _REGISTRY.get(key)
        if held is not None and held[0] != me:
            raise error(f"another thread of this process is writing {target}; wait for it to finish, or write "
                        "to another folder")
        if held is None:
            fd = _acquire(target, error)  # under the registry lock: two threads never both try flock
            held = _REGISTRY[key] = [me, 0, fd]
        held[1] += 1
    try:
        yield
    finally:
        with _REGISTRY_LOCK:
            held[1] -= 1
            if held[1] == 0:
                del _REGISTRY[key]
                if held[2] is not None:
                    lock_file(target).unlink(missing_ok=True)  # while still locked: see _acquire
                    os.close(held[2])


@contextmanager
def try_writer_lock(target):
    """:func:`writer_lock` that yields False instead of raising when another writer holds it."""
    try:
        cm = writer_lock(target)
        cm.__enter__()
    except (LsrError, OSError):
        yield False
        return
    try:
        yield True
    finally:
        cm.__exit__(None, None, None)
