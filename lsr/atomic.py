"""Atomic writes: every file and folder lsr writes appears whole or not at all.

A write goes to a temporary name beside its target and is renamed into
place (``os.replace`` is atomic on POSIX and Windows within one folder), so
a killed process leaves the old file, or a temporary that no reader looks
at, never a half-written file under the real name. Data and directories are
fsynced before the rename that publishes them and the parent after it, so a
power loss cannot undo a rename that a caller saw succeed.

A folder (:func:`atomic_dir`) replaces an existing one by exchanging the two
in one ``renameat2(RENAME_EXCHANGE)`` on Linux: there is no moment with
nothing at the path. Where the exchange does not exist (other systems, some
filesystems) the old folder is first renamed aside, then the new one in; a
kill between the two leaves ``.NAME.old-PID`` and a complete
``.NAME.tmp-PID-TID`` that :func:`recover_dir` (called by the next writer,
and by readers that find the path missing) renames back into place.
"""
from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from .errors import LsrError
from .lock import lock_file, try_writer_lock, writer_lock  # noqa: F401 (lock_file: re-exported)

# A foundation module imports nothing of lsr but errors: these two restate lsr.layout.MANIFEST and
# lsr.index.storage.FORMAT (tests/test_safe_writes.py checks they agree).
MANIFEST = "manifest.json"
INDEX_FORMAT = "lsr-index"
_INDEX_FILES = ("vocab.json", "doc_ids.parquet")  # written by every index type (lsr.layout)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _tmp_name(path: Path) -> Path:
    # Process and thread in the name: two writers of one target never share a temporary.
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")


def _fsync(path, directory: bool = False) -> None:
    """Flush ``path`` (a file, or a folder's entries) to the disk."""
    if directory and os.name == "nt":
        return  # Windows cannot open a folder for fsync; NTFS journals its metadata
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder) -> None:
    """fsync every file under ``folder``, then every folder (itself included), deepest first."""
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                _fsync(p)
        _fsync(root, directory=True)


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
    _fsync(path.parent, directory=True)  # and the rename itself survives a power loss


@contextmanager
def atomic_path(path):
    """Yield a temporary path for a writer that opens files itself (numpy, pyarrow); renamed on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent, directory=True)


def write_text(path, text: str) -> Path:
    with atomic_file(path, "w") as f:
        f.write(text)
    return Path(path)


def write_json(path, obj, indent: int | None = 2, **kwargs) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, **kwargs))


# ------------------------------------------------------------------ folders
def _has_commit(path) -> bool:
    """A segmented index's commit point (lsr.index.commit; the name restated: this module imports no lsr)."""
    return any(Path(path).glob("commit-" + "[0-9]" * 8 + ".json"))


def is_lsr_index(path) -> bool:
    """Whether ``path`` is a folder holding lsr's index manifest (format "lsr-index") or commit points."""
    if not (Path(path) / MANIFEST).exists() and Path(path).is_dir() and _has_commit(path):
        return True
    try:
        with open(Path(path) / MANIFEST, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        # A damaged manifest: still lsr's index if lsr's other files are there, so that
        # `lsr index --overwrite` can rebuild it in place.
        return (Path(path) / MANIFEST).is_file() and all((Path(path) / n).is_file() for n in _INDEX_FILES)
    return isinstance(manifest, dict) and manifest.get("format") == INDEX_FORMAT


def check_replaceable(target, replaces: str | None, error: type[LsrError] = LsrError) -> None:
    """Refuse to replace an existing ``target`` that is not what the writer makes (``replaces``:
    "lsr-index"; the name of a file the writer always writes, e.g. "lsr_model.json", which an empty
    folder may lack too; or None for any folder): --overwrite must never delete someone's notes."""
    target = Path(target)
    if replaces is None or not (target.exists() or target.is_symlink()):
        return
    what = "a file" if target.is_file() else "a folder" if target.is_dir() else "something"
    if replaces == INDEX_FORMAT and not is_lsr_index(target):
        raise error(f"{target} is {what} but not an lsr index (no {MANIFEST} with format {INDEX_FORMAT!r}); "
                    "overwrite replaces only an lsr index, so nothing was deleted: choose another output folder "
                    "or remove it yourself")
    if replaces != INDEX_FORMAT and not (target.is_dir() and (not any(target.iterdir())
                                                              or (target / replaces).is_file())):
        raise error(f"{target} is {what} but not one lsr wrote (no {replaces}); overwrite replaces only that, "
                    "so nothing was deleted: choose another output folder or remove it yourself")


def _pid_of(leftover: Path, kind: str) -> int | None:
    """The writer's pid in ``.NAME.tmp-PID-TID`` / ``.NAME.old-PID``."""
    tail = leftover.name.rsplit(f".{kind}-", 1)[-1]
    try:
        return int(tail.split("-")[0])
    except ValueError:
        return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process (or no way to tell): keep its files
    return True


def _leftovers(target: Path, kind: str) -> list[Path]:
    """``.NAME.<kind>-*`` beside ``target`` written by processes that are gone, newest first."""
    pattern = os.path.join(glob.escape(str(target.parent)), glob.escape(f".{target.name}.{kind}-") + "*")
    found = []
    for p in map(Path, glob.glob(pattern)):
        pid = _pid_of(p, kind)
        if pid is not None and not _alive(pid):
            found.append(p)
    return sorted(found, key=lambda p: p.lstat().st_mtime_ns, reverse=True)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def clean_leftovers(target) -> list[Path]:
    """Delete the temporary and ``.old`` folders of ``target`` that dead writers left; returns them."""
    target = Path(target)
    gone = _leftovers(target, "tmp") + _leftovers(target, "old")
    for p in gone:
        _remove(p)
    return gone


def recover(target) -> Path | None:
    """If ``target`` is missing after a swap was killed halfway, put a folder back: the newest complete
    (manifest-holding) temporary of a dead writer (roll forward), else its ``.old`` (roll back). Returns
    the folder renamed into place, or None. The caller holds the target's write lock."""
    target = Path(target)
    if target.exists() or target.is_symlink():
        return None
    complete = [p for p in _leftovers(target, "tmp") if (p / MANIFEST).is_file() or _has_commit(p)]
    for choice in complete + _leftovers(target, "old"):
        try:
            os.rename(choice, target)
        except OSError:
            continue  # another process won the race: fine, something is in place
        _fsync(target.parent, directory=True)
        return choice
    return None


def recover_dir(path) -> bool:
    """For readers that find ``path`` missing: repair an interrupted swap (see :func:`recover`) unless a
    live writer holds the path's lock. True when a folder was put back."""
    path = Path(path)
    if path.exists() or not path.parent.is_dir():
        return False
    try:
        with try_writer_lock(path) as locked:
            return bool(locked and recover(path) is not None)
    except OSError:
        return False  # a read-only location: nothing a reader can repair


def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None  # glibc older than 2.28, musl
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` atomically; False where the system or filesystem cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    import ctypes
    if fn(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _publish(tmp: Path, target: Path) -> None:
    """Put ``tmp`` at ``target``; an existing ``target`` is exchanged (or, without the exchange, moved aside
    first) and deleted once the new folder is in place."""
    if not (target.exists() or target.is_symlink()):
        os.replace(tmp, target)
        _fsync(target.parent, directory=True)
        return
    if _exchange(tmp, target):
        _fsync(target.parent, directory=True)
        _remove(tmp)  # the old folder, now under the temporary's name
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    _remove(old)
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)  # roll back: the old folder stays the target
        raise
    _fsync(target.parent, directory=True)
    _remove(old)


def prepare_target(target, overwrite: bool, error: type[LsrError] = LsrError, replaces: str | None = None,
                   hint: str = "pass overwrite=True / --overwrite to replace it") -> None:
    """What a writer of ``target`` does first, holding its write lock: repair a swap a dead writer left
    halfway, delete dead writers' temporaries, and refuse an existing ``target`` unless ``overwrite``
    (``hint`` says how), and then anything ``replaces`` does not allow (:func:`check_replaceable`)."""
    target = Path(target)
    recover(target)
    clean_leftovers(target)
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise error(f"{target} already exists ({hint})")
        check_replaceable(target, replaces, error)


@contextmanager
def unpublished_dir(target):
    """Yield ``target`` itself, a folder nothing refers to yet, to write straight into; fsynced at the end,
    removed on failure. For a segment (Lucene writes its segment files the same way): the commit point that
    lists it, written afterwards, is what publishes it; a writer killed before that leaves garbage no reader
    opens, which the next writer deletes. The caller holds the lock of the index that will refer to it."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)  # unreferenced by the lock holder's own numbering: a dead writer's remains
    target.mkdir(parents=True)
    try:
        yield target
        fsync_tree(target)
        _fsync(target.parent, directory=True)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


@contextmanager
def atomic_dir(target, overwrite: bool = False, error: type[LsrError] = LsrError, replaces: str | None = None):
    """Yield a temporary folder; on success it replaces ``target`` (a folder) with no moment where nothing
    is at ``target``.

    Refuses an existing ``target`` unless ``overwrite`` (raising ``error``, so an index writer reports an
    index error); with ``replaces="lsr-index"`` it also refuses to replace anything but an lsr index.
    Holds ``target``'s write lock (a second writer gets ``error``), first repairs a swap a dead writer
    left halfway and deletes dead writers' temporaries, and fsyncs every file and folder of the new tree
    before publishing it.
    """
    target = Path(target)
    with writer_lock(target, error):
        prepare_target(target, overwrite, error, replaces)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_name(target)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            yield tmp
            fsync_tree(tmp)
            _publish(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
