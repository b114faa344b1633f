"""The commit point of a segmented index: which segments it holds and which of their documents are live.

Lucene's design at lsr's scale. A segment is a complete index folder
(today's layout, its own checksummed manifest) and never changes once
written. A commit point, ``commit-<generation>.json``, lists the segments
and, for a segment with deleted documents, the live-documents file
(``seg-N.live-<generation>.npy``, one bool per document) written for it;
it is written last, atomically (temporary file, fsync, rename, directory
fsync), and carries its own checksum. The newest generation is the index:
a writer killed before its rename leaves files no commit lists, which the
next writer deletes.

Readers hold a *lease* on the commit they opened: a shared ``flock`` on its
file, kept until the reader closes (or its process dies: the kernel drops
it). A writer deletes an older commit, and the files only it references,
only when it can take that file's lock exclusively, so a reader in another
process never loses a file it has not opened yet (reference counting by
commit generation, done by the kernel, with no stale counts after a crash).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np

from .. import layout
from ..atomic import write_json
from ..errors import IndexError_

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no leases; a writer then keeps older commits' files
    fcntl = None

FORMAT = "lsr-commit"
VERSION = 1
_COMMIT_RE = re.compile(r"^commit-(\d{8})\.json$")


def generations(folder) -> list[int]:
    """The commit generations present in ``folder``, oldest first."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(_COMMIT_RE.match, names) if m)


def checksum(commit: dict) -> str:
    import xxhash
    body = {k: v for k, v in commit.items() if k != "checksum"}
    return xxhash.xxh3_128_hexdigest(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def parse(path: Path, data: bytes) -> dict:
    """A commit's JSON, its checksum and structure verified (and its generation the one its file name
    says); IndexError_ naming ``path`` otherwise."""
    try:
        commit = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise IndexError_(f"{path}: corrupt commit point ({e})") from None
    if not isinstance(commit, dict) or commit.get("format") != FORMAT:
        raise IndexError_(f"{path}: not an lsr commit point")
    if commit.get("version") != VERSION:
        raise IndexError_(f"{path}: commit format version {commit.get('version')!r}; this lsr reads {VERSION} "
                          "(upgrade lsr)")
    if commit.get("checksum") != checksum(commit):
        raise IndexError_(f"{path}: commit checksum mismatch (the file was edited or corrupted)")
    m = _COMMIT_RE.match(Path(path).name)
    if m and commit.get("generation") != int(m.group(1)):
        raise IndexError_(f"{path}: holds generation {commit.get('generation')!r}, not the one its name says "
                          "(renamed or copied over)")
    segments = commit.get("segments")
    ok = isinstance(segments, list) and all(
        isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("docs"), int)
        and isinstance(s.get("deleted"), int) and 0 <= s["deleted"] <= s["docs"]
        and (s.get("live") is None or isinstance(s["live"], str)) for s in segments)
    if not ok or not isinstance(commit.get("files"), dict):
        raise IndexError_(f"{path}: malformed commit point (segments or files)")
    for s in segments:
        if "/" in s["name"] or s["name"].startswith("."):
            raise IndexError_(f"{path}: segment name {s['name']!r} is not a folder of the index")
    return commit


def read(folder, generation: int) -> dict:
    path = Path(folder) / layout.commit_name(generation)
    return parse(path, path.read_bytes())


def newest(folder) -> dict:
    """The newest commit of ``folder``, verified, without a lease (for settings and listings, not search)."""
    for _ in range(100):
        gens = generations(folder)
        if not gens:
            raise IndexError_(f"{folder}: no commit point (not a segmented lsr index)")
        try:
            return read(folder, gens[-1])
        except FileNotFoundError:
            continue  # deleted by a writer after a newer commit: look again
    raise IndexError_(f"{folder}: commits keep changing; retry")


class Lease:
    """A reader's hold on one commit: a shared lock on its file while open. ``close()`` releases it."""

    def __init__(self, handle):
        self._handle = handle

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the descriptor drops the flock
            self._handle = None

    def __del__(self):
        self.close()


def open_newest(folder) -> tuple[dict, Lease]:
    """The newest commit of ``folder`` and a lease on it (see the module doc)."""
    folder = Path(folder)
    for _ in range(1000):
        gens = generations(folder)
        if not gens:
            raise IndexError_(f"{folder}: no commit point (not a segmented lsr index)")
        path = folder / layout.commit_name(gens[-1])
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            continue  # a writer deleted it after a newer commit: look again
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)  # waits only while a writer is deleting it
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            handle.close()
            continue
        try:
            commit = parse(path, handle.read())
        except BaseException:
            handle.close()
            raise
        return commit, Lease(handle)
    raise IndexError_(f"{folder}: commits keep changing; retry")


def write(folder, commit: dict) -> dict:
    """Write ``commit`` (its generation names the file) atomically; the commit, checksummed, is returned."""
    commit = {k: v for k, v in commit.items() if k != "checksum"}
    commit.update(format=FORMAT, version=VERSION, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    commit["checksum"] = checksum(commit)
    write_json(Path(folder) / layout.commit_name(commit["generation"]), commit)
    return commit


# ------------------------------------------------------------ live docs
def save_live(folder, segment: str, generation: int, live: np.ndarray) -> tuple[str, dict]:
    """Write a segment's live-documents file for ``generation``; (its name, its description for the commit)."""
    from ..atomic import atomic_path
    from .storage import xxh3_file
    name = layout.live_name(segment, generation)
    path = Path(folder) / name
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(live, dtype=np.bool_))
    return name, {"bytes": path.stat().st_size, "xxh3_128": xxh3_file(path)}


def load_live(folder, commit: dict, entry: dict, full: bool = True) -> np.ndarray | None:
    """A segment's live mask (None: every document live), checked against the commit."""
    name = entry.get("live")
    if name is None:
        if entry["deleted"]:
            raise IndexError_(f"{folder}: segment {entry['name']} has {entry['deleted']} deleted documents "
                              "but no live-documents file (corrupt commit point)")
        return None
    path = Path(folder) / name
    info = commit["files"].get(name)
    if not isinstance(info, dict) or not path.is_file():
        raise IndexError_(f"{path}: live-documents file missing or not listed in the commit point")
    if path.stat().st_size != info.get("bytes"):
        raise IndexError_(f"{path}: {path.stat().st_size} bytes, the commit point says {info.get('bytes')} "
                          "(truncated or replaced)")
    if full:
        from .storage import xxh3_file
        if xxh3_file(path) != info.get("xxh3_128"):
            raise IndexError_(f"{path}: checksum mismatch (the file was changed or corrupted)")
    try:
        live = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any parse failure is a damaged file
        raise IndexError_(f"{path}: unreadable live-documents file ({type(e).__name__}: {e})") from None
    if live.dtype != np.bool_ or live.shape != (entry["docs"],) or int((~live).sum()) != entry["deleted"]:
        raise IndexError_(f"{path}: {live.dtype} {live.shape} with {int((~live).sum()) if live.dtype == np.bool_ else '?'}"
                          f" deleted, the commit point says bool ({entry['docs']},) with {entry['deleted']}")
    return live


# ------------------------------------------------------------ garbage
def referenced(commit: dict) -> set[str]:
    names = {layout.commit_name(commit["generation"])}
    for s in commit["segments"]:
        names.add(s["name"])
        if s.get("live"):
            names.add(s["live"])
    return names


def collect_garbage(folder, newest: dict | None = None) -> list[str]:
    """Delete what no commit needs: older commits no reader holds, and every file or folder that neither
    the newest commit nor a held one references (dead writers' segments, temporaries, live files).
    The caller holds the index's writer lock; ``newest``: the newest commit when the caller has it at
    hand (it just wrote it), else it is read. Returns the names removed."""
    folder = Path(folder)
    gens = generations(folder)
    if not gens:
        return []
    if newest is None or newest["generation"] != gens[-1]:
        newest = read(folder, gens[-1])
    keep = referenced(newest)
    removed = []
    for g in gens[:-1]:
        path = folder / layout.commit_name(g)
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            continue
        with handle:
            free = True
            if fcntl is not None:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    free = False
            else:
                free = False  # no way to know whether a reader holds it: keep it
            if free:
                path.unlink()
                removed.append(path.name)
            else:
                try:
                    keep |= referenced(parse(path, handle.read()))
                except IndexError_:
                    keep.add(path.name)
    for name in sorted(os.listdir(folder)):
        if name in keep or _COMMIT_RE.match(name):
            continue
        p = folder / name
        if name.endswith(".lock"):
            if _remove_free_lock(p):
                removed.append(name)
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(name)
    return removed


def _remove_free_lock(p: Path) -> bool:
    """Delete a lock file no process holds (a dead writer's), unlinked while locked (as lsr.lock does), so
    no process can be left holding a deleted one."""
    if fcntl is None:
        return False
    try:
        fd = os.open(p, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        p.unlink(missing_ok=True)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


# ------------------------------------------------------------ upgrade
def link_tree(src: Path, dst: Path) -> None:
    """``dst`` as a tree of hard links to ``src``'s files (a copy where links are not possible); lsr's
    files are never changed in place, so sharing them is safe. Dot-files (locks, temporaries) stay."""
    dst.mkdir()
    for entry in os.scandir(src):
        if entry.name.startswith("."):
            continue
        target = dst / entry.name
        if entry.is_dir(follow_symlinks=False):
            link_tree(Path(entry.path), target)
        else:
            try:
                os.link(entry.path, target)
            except OSError:
                shutil.copy2(entry.path, target)


def first_commit(segment: str, manifest: dict, settings: dict) -> dict:
    return {"generation": 1, "next_segment": 2, "files": {}, "settings": settings,
            "segments": [segment_entry(segment, manifest)]}


def segment_entry(name: str, manifest: dict) -> dict:
    """A commit's entry for a freshly written segment (``manifest``: the segment's)."""
    return {"name": name, "docs": int(manifest["counts"]["docs"]), "deleted": 0, "live": None,
            "index_type": manifest["index_type"], "manifest_checksum": manifest.get("checksum")}


def upgrade(folder, settings: dict) -> dict:
    """Turn the one-folder index at ``folder`` into a segmented index whose only segment is that folder
    (hard links, nothing copied), swapped in atomically. The caller holds the writer lock."""
    from ..atomic import INDEX_FORMAT, atomic_dir
    from .storage import read_manifest
    folder = Path(folder)
    manifest = read_manifest(folder)
    with atomic_dir(folder, overwrite=True, error=IndexError_, replaces=INDEX_FORMAT) as tmp:
        name = layout.segment_name(1)
        link_tree(folder, tmp / name)
        commit = write(tmp, first_commit(name, manifest, settings))
    return commit
