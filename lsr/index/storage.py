"""Index directories: a manifest plus files, written atomically, checked on load.

Layout::

    DIR/manifest.json   format tag and version, index type, parameters,
                        encoder and vocabulary identity, counts, and for every
                        file its size and sha256
    DIR/*.npy           arrays, memory-mapped on load
    DIR/...             other files the index type or the doc store owns

A build writes everything into ``.DIR.tmp-<pid>`` next to DIR, writes the
manifest last, then renames the folder into place. An interrupted build
leaves only the temporary folder, which ``load`` never looks at.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir as _atomic_dir
from ..atomic import write_json
from ..errors import IndexError_
from ..layout import MANIFEST

# The manifest's format tag. Each index type versions its own layout
# (``BaseIndex.FORMAT_VERSION``), so a change to one type's files never
# forces rebuilding another type's.
FORMAT = "lsr-index"


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                return h.hexdigest()
            h.update(b)


def atomic_dir(target: Path, overwrite: bool = False):
    """:func:`lsr.atomic.atomic_dir`, refusing an existing index with an index error."""
    return _atomic_dir(target, overwrite, error=IndexError_)


def write_manifest(folder: Path, index_type: str, format_version: int, meta: dict) -> dict:
    """Checksum every file in ``folder`` and write the manifest (last)."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            files[p.relative_to(folder).as_posix()] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
    manifest = {
        "format": FORMAT,
        "format_version": format_version,
        "index_type": index_type,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **meta,
        "files": files,
    }
    write_json(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: Path) -> dict:
    folder = Path(folder)
    if not folder.exists():
        raise IndexError_(f"index not found: {folder}")
    if not folder.is_dir():
        raise IndexError_(f"{folder} is a file, not an index directory")
    path = folder / MANIFEST
    if not path.exists():
        raise IndexError_(f"{folder} is not an lsr index (no {MANIFEST}; an interrupted build never writes one)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexError_(f"{path}: corrupt manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexError_(f"{path}: not an lsr index manifest")
    return manifest


def check_version(folder: Path, manifest: dict, readable: tuple[int, ...]) -> None:
    """Refuse a layout this lsr cannot read (older or newer), naming what it expects."""
    version = manifest.get("format_version")
    if version not in readable:
        raise IndexError_(f"{folder}: {manifest.get('index_type')} index format version {version} is not supported "
                          f"by this lsr (reads {', '.join(map(str, readable))}); rebuild the index with `lsr index`")


def verify_files(folder: Path, manifest: dict, checksums: bool = True) -> None:
    """Refuse missing, truncated or altered files."""
    for name, info in manifest.get("files", {}).items():
        p = folder / name
        if not p.exists():
            raise IndexError_(f"{folder}: file {name} listed in the manifest is missing")
        size = p.stat().st_size
        if size != info["bytes"]:
            raise IndexError_(f"{folder}: file {name} is {size} bytes, manifest says {info['bytes']} (truncated?)")
        if checksums and sha256_file(p) != info["sha256"]:
            raise IndexError_(f"{folder}: checksum mismatch for {name} (file corrupted)")


def save_array(folder: Path, name: str, array: np.ndarray) -> None:
    np.save(folder / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)


def load_array(folder: Path, name: str, mmap: bool = True) -> np.ndarray:
    path = folder / f"{name}.npy"
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise IndexError_(f"{path}: unreadable array ({e})") from None


def update_manifest(folder: Path, updates: dict) -> dict:
    """Change top-level manifest entries (e.g. search defaults) atomically.

    Only the manifest is rewritten; the data files and their checksums are
    untouched, so a crash leaves either the old or the new manifest.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(manifest.get(key), dict):
            manifest[key] = {**manifest[key], **value}
        else:
            manifest[key] = value
    write_json(folder / MANIFEST, manifest)
    return manifest
