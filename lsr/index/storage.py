"""Index directories: a checksummed manifest plus files, written atomically, verified on load.

Layout::

    DIR/manifest.json   format tag and version, index type, the index's
                        identity (index_id), parameters, encoder and
                        vocabulary identity, counts, and for every other file
                        (nested folders included) its size, sha256, xxh3_128,
                        a head+tail hash and, for an array, its dtype and shape;
                        ``checksum`` is the xxh3_128 of the rest (canonical JSON)
    DIR/*.npy           arrays, memory-mapped on load
    DIR/...             other files the index type or the doc store owns

A build writes everything into ``.DIR.tmp-<pid>`` next to DIR, writes the
manifest last, then renames the folder into place. An interrupted build
leaves only the temporary folder, which ``load`` never looks at.

Opening verifies (docs/index-format.md, "Verification"): the manifest's own
checksum, every listed file's size and (for arrays) header, no unlisted
file, and the content: ``"full"`` hashes every byte with xxh3 (the default;
tens of GB/s), ``"quick"`` only each file's first and last 64 KiB. A
manifest written before checksums existed (sha256 only) is verified with
sha256 whatever the level, with a warning to rebuild.
"""
from __future__ import annotations

import hashlib
import json
import logging
import mmap
import time
import uuid
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir as _atomic_dir
from ..atomic import write_json, writer_lock
from ..errors import IndexError_, ParameterError
from ..layout import MANIFEST

log = logging.getLogger(__name__)

# The manifest's format tag. Each index type versions its own layout
# (``BaseIndex.FORMAT_VERSION``), so a change to one type's files never
# forces rebuilding another type's.
FORMAT = "lsr-index"
HEAD_TAIL = 1 << 16  # bytes hashed at each end of a file by the quick check
CHUNK = 1 << 22
LEVELS = ("full", "quick")


def verify_level(verify) -> str:
    """``True``/"full" -> "full" (every byte hashed); ``False``/"quick" -> "quick" (sizes, headers, head+tail,
    bounds). Nothing is ever skipped entirely: a quick open still refuses what would crash a kernel."""
    if verify is True or verify == "full":
        return "full"
    if verify is False or verify == "quick":
        return "quick"
    raise ParameterError(f"verify={verify!r}; use True or 'full' (every byte checksummed), False or 'quick' "
                         f"(sizes, headers, first and last 64 KiB)")


def _xxh3():
    import xxhash
    return xxhash.xxh3_128()


def _whole(path: Path, hashers) -> None:
    """Feed every byte of ``path`` to each hasher (one read of the file)."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            return
        if len(hashers) == 1:  # a mapping hashes in one call, no copies (the load path)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                hashers[0].update(m)
            return
        f.seek(0)
        while b := f.read(CHUNK):
            for h in hashers:
                h.update(b)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    _whole(Path(path), [h])
    return h.hexdigest()


def xxh3_file(path: Path) -> str:
    h = _xxh3()
    _whole(Path(path), [h])
    return h.hexdigest()


def head_tail_hash(path: Path) -> str:
    """xxh3_128 of the size and the first and last 64 KiB (the whole file when it is smaller)."""
    h = _xxh3()
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        h.update(size.to_bytes(8, "little"))
        f.seek(0)
        if size <= 2 * HEAD_TAIL:
            h.update(f.read())
        else:
            h.update(f.read(HEAD_TAIL))
            f.seek(size - HEAD_TAIL)
            h.update(f.read(HEAD_TAIL))
    return h.hexdigest()


def npy_header(path: Path) -> tuple[str, tuple]:
    """(dtype, shape) from a .npy header, without reading the data; IndexError_ when it does not parse."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read:
                raise ValueError(f"npy format version {version}")
            shape, fortran, dtype = read[version](f)
    except Exception as e:  # noqa: BLE001 - numpy parses the header as a Python literal: a damaged one
        # raises whatever its tokenizer meets (ValueError, SyntaxError, tokenize.TokenError, ...)
        raise IndexError_(f"{path}: not a readable array header ({type(e).__name__}: {e}); the file is corrupt, "
                          "rebuild the index") from None
    if fortran or dtype.hasobject:
        raise IndexError_(f"{path}: array header says {'Fortran order' if fortran else 'object dtype'}, "
                          f"which lsr never writes; the file is corrupt, rebuild the index")
    return dtype.str, tuple(int(s) for s in shape)


def describe_file(path: Path) -> dict:
    """The manifest entry of one file: bytes, sha256, xxh3_128, head_tail, and dtype/shape for an array."""
    sha, xxh = hashlib.sha256(), _xxh3()
    size = path.stat().st_size
    if size <= 2 * HEAD_TAIL:  # a small file (most of a fresh segment's): one read serves every hash
        data = path.read_bytes()
        sha.update(data)
        xxh.update(data)
        ends = _xxh3()
        ends.update(len(data).to_bytes(8, "little"))
        ends.update(data)
        head_tail = ends.hexdigest()
    else:
        _whole(path, [sha, xxh])
        head_tail = head_tail_hash(path)
    info = {"bytes": size, "sha256": sha.hexdigest(), "xxh3_128": xxh.hexdigest(), "head_tail": head_tail}
    if path.suffix == ".npy":
        dtype, shape = npy_header(path)
        info["dtype"], info["shape"] = dtype, list(shape)
    return info


def is_temp_name(name: str) -> bool:
    """A writer's temporary (lsr.atomic names them ``.NAME.tmp-...``): never listed, never refused."""
    return name.startswith(".") and ".tmp-" in name


def _walk(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative posix names), except the top manifest and writers' temporaries."""
    names = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(is_temp_name(part) for part in rel.parts) or rel.as_posix() == MANIFEST or not p.is_file():
            continue
        names.append(rel.as_posix())
    return names


def manifest_checksum(manifest: dict) -> str:
    """xxh3_128 of the manifest without its ``checksum`` field, as canonical JSON (sorted keys, no spaces)."""
    import xxhash
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return xxhash.xxh3_128_hexdigest(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def _write(folder: Path, manifest: dict) -> dict:
    manifest = {k: v for k, v in manifest.items() if k != "checksum"}
    manifest["checksum"] = manifest_checksum(manifest)
    write_json(folder / MANIFEST, manifest)
    return manifest


def atomic_dir(target: Path, overwrite: bool = False):
    """:func:`lsr.atomic.atomic_dir`, refusing an existing index with an index error."""
    return _atomic_dir(target, overwrite, error=IndexError_, replaces=FORMAT)


def write_manifest(folder: Path, index_type: str, format_version: int, meta: dict,
                   known: dict | None = None) -> dict:
    """Describe every file in ``folder`` (nested index folders too) and write the checksummed manifest (last).
    ``known``: descriptions of files hard-linked from another verified index (same inode, same bytes),
    used instead of hashing them again."""
    known = known or {}
    files = {name: dict(known[name]) if name in known else describe_file(folder / name) for name in _walk(folder)}
    manifest = {
        "format": FORMAT,
        "format_version": format_version,
        "index_type": index_type,
        "index_id": uuid.uuid4().hex,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **meta,
        "files": files,
    }
    return _write(folder, manifest)


def read_manifest(folder: Path) -> dict:
    """The manifest of ``folder``, its own checksum verified (an edited manifest is refused)."""
    folder = Path(folder)
    if not folder.exists():
        from ..atomic import recover_dir
        if not recover_dir(folder):  # an interrupted swap: put the new (or else the old) index back
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
    if "checksum" in manifest and manifest["checksum"] != manifest_checksum(manifest):
        raise IndexError_(f"{path}: manifest checksum mismatch (the manifest was edited or corrupted); "
                          f"rebuild the index with `lsr index`")
    if "checksum" not in manifest and _written_with_checksums(manifest):
        # Dropping the field must not turn the protection off: only a manifest an older lsr wrote lacks it.
        raise IndexError_(f"{path}: the manifest's checksum is missing (the manifest was edited or corrupted); "
                          f"rebuild the index with `lsr index`")
    if not isinstance(manifest.get("files"), dict) or not all(
            isinstance(v, dict) and isinstance(v.get("bytes"), int) for v in manifest["files"].values()):
        raise IndexError_(f"{path}: the manifest's 'files' entry is missing or malformed; rebuild the index")
    return manifest


def _written_with_checksums(manifest: dict) -> bool:
    """Whether anything in ``manifest`` is of this lsr's making (an identity, xxh3 or head-tail hashes)."""
    files = manifest.get("files")
    entries = files.values() if isinstance(files, dict) else ()
    return "index_id" in manifest or any(isinstance(v, dict) and ("xxh3_128" in v or "head_tail" in v)
                                         for v in entries)


def is_legacy(manifest: dict) -> bool:
    """Written by an lsr before manifests were checksummed (files carry sha256 only)."""
    return "checksum" not in manifest and not _written_with_checksums(manifest)


def check_version(folder: Path, manifest: dict, readable: tuple[int, ...]) -> None:
    """Refuse a layout this lsr cannot read (older or newer), naming what it expects."""
    version = manifest.get("format_version")
    if version not in readable:
        raise IndexError_(f"{folder}: {manifest.get('index_type')} index format version {version} is not supported "
                          f"by this lsr (reads {', '.join(map(str, readable))}); rebuild the index with `lsr index`")


# Files an older lsr left unlisted: hybrid.json (written after the build) and nested manifests.
_LEGACY_UNLISTED = ("hybrid.json",)


def file_problems(folder: Path, manifest: dict, level: str = "full", sha256: bool = False,
                  stop: bool = True, names=None) -> dict:
    """{file name: (status, message)} for every damaged file; empty when all is well.

    Status: MISSING, SIZE, HEADER (an array's dtype/shape), UNLISTED, CHECKSUM.
    ``level`` "full" hashes every byte (xxh3), "quick" the first and last
    64 KiB; ``sha256`` also checks the sha256 (``lsr check --full``; always
    for a legacy manifest, which has nothing else). ``stop``: return at the
    first problem (loading) instead of collecting all (checking). ``names``: check only these listed files
    (what a caller reads), not the others nor for unlisted ones.
    """
    folder = Path(folder)
    files = manifest["files"] if names is None else {n: manifest["files"][n] for n in names}
    legacy = is_legacy(manifest)
    out: dict = {}

    def bad(name, status, msg):
        out[name] = (status, f"{folder}: {msg}")
        return stop

    for name, info in files.items():  # the cheap checks first: a truncated file fails before any hashing
        p = folder / name
        if not p.is_file():
            if bad(name, "MISSING", f"file {name} listed in the manifest is missing"):
                return out
            continue
        size = p.stat().st_size
        if size != info["bytes"]:
            if bad(name, "SIZE", f"file {name} is {size} bytes, manifest says {info['bytes']} "
                                 f"(truncated?); rebuild the index"):
                return out
            continue
        if "dtype" in info:
            try:
                got = npy_header(p)
            except IndexError_ as e:
                if bad(name, "HEADER", f"array {name}: {str(e)[len(str(p)) + 2:]}"):
                    return out
                continue
            if got != (info["dtype"], tuple(info["shape"])):
                if bad(name, "HEADER", f"array {name} is {got[0]} {got[1]}, the manifest says {info['dtype']} "
                                       f"{tuple(info['shape'])} (corrupt or replaced); rebuild the index"):
                    return out
    for name in _walk(folder) if names is None else ():
        if name in files or name in out:
            continue
        if legacy and (name in _LEGACY_UNLISTED or name.endswith("/" + MANIFEST)):
            continue
        if bad(name, "UNLISTED", f"file {name} is not listed in the manifest (added after the build, or its entry "
                                 f"was removed); remove the file or rebuild the index"):
            return out
    for name, info in files.items():
        if name in out:
            continue
        p = folder / name
        if legacy or sha256:
            if "sha256" in info and sha256_file(p) != info["sha256"]:
                if bad(name, "CHECKSUM", f"checksum mismatch for {name} (sha256; the file is corrupted)"):
                    return out
                continue
        if legacy:
            continue
        if level == "full":
            ok, what = xxh3_file(p) == info.get("xxh3_128"), "xxh3_128"
        else:
            ok, what = head_tail_hash(p) == info.get("head_tail"), "first/last 64 KiB"
        if not ok and bad(name, "CHECKSUM", f"checksum mismatch for {name} ({what}; the file is corrupted or "
                                            f"comes from another index); rebuild the index"):
            return out
    return out


def verify_files(folder: Path, manifest: dict, verify=True, names=None) -> None:
    """Refuse missing, truncated, altered, unlisted files (``verify``: see :func:`verify_level`; ``names``:
    only these listed files, see :func:`file_problems`)."""
    level = verify_level(verify)
    if is_legacy(manifest):
        log.warning("%s: the manifest predates checksummed manifests; every file is verified with sha256 (slow). "
                    "Rebuild the index with `lsr index` for the fast check.", folder)
    problems = file_problems(folder, manifest, level, names=names)
    if problems:
        raise IndexError_(next(iter(problems.values()))[1])


def save_array(folder: Path, name: str, array: np.ndarray) -> None:
    np.save(folder / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)


def load_array(folder: Path, name: str, mmap: bool = True) -> np.ndarray:
    path = folder / f"{name}.npy"
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - as in npy_header: any failure to parse is a damaged file
        raise IndexError_(f"{path}: unreadable array ({type(e).__name__}: {e})") from None


def update_manifest(folder: Path, updates: dict, files: tuple[str, ...] = ()) -> dict:
    """Change top-level manifest entries (e.g. search defaults) atomically, re-describing ``files``.

    ``files`` names files the caller has (re)written in the folder: they
    are listed anew (an unlisted file makes the index refuse to open); a
    name whose file is gone is dropped. Other files keep their entries. Only the manifest is rewritten,
    checksum recomputed, so a crash leaves either the old or the new one.
    """
    folder = Path(folder)
    with writer_lock(folder, IndexError_):  # read-modify-write: no other writer in between
        return _update_manifest(folder, updates, files)


def _update_manifest(folder: Path, updates: dict, files: tuple[str, ...]) -> dict:
    manifest = read_manifest(folder)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(manifest.get(key), dict):
            manifest[key] = {**manifest[key], **value}
        else:
            manifest[key] = value
    listed = dict(manifest["files"])
    for name in files:
        p = folder / name
        if p.is_file():
            listed[name] = describe_file(p)
        else:
            listed.pop(name, None)
    manifest["files"] = listed
    if is_legacy(manifest):  # rewriting an old manifest as is keeps it loadable the old way
        write_json(folder / MANIFEST, manifest)
        return manifest
    return _write(folder, manifest)
