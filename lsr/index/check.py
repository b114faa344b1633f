"""CheckIndex: verify everything about an index directory and report per file (``lsr check``).

Loading refuses the first problem it meets; a check collects them all:
the manifest (its checksum, version, counts, stored parameters), every
file (MISSING, SIZE, HEADER, UNLISTED, CHECKSUM against xxh3 of every
byte; with ``full`` the sha256 too), then the arrays' bounds (BOUNDS), and
with ``full`` deep checks: every Parquet file read whole, doc ids unique,
the nested BM25 index (``lexical/``, checked as an index of its own) and
the dense embeddings (finite, shaped as their config says).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import layout
from ..errors import IndexError_
from . import bounds, storage


def _problem(report: dict, status: str, message: str, name: str | None = None) -> None:
    report["problems"].append({"file": name, "status": status, "message": message})
    if name is not None:
        for entry in report["files"]:
            if entry["name"] == name and entry["status"] == "ok":
                entry["status"] = status


def _file_named(message: str, names) -> str | None:
    """The listed file a load error names (longest match: ``dense/embeddings.npy`` before ``embeddings.npy``)."""
    hits = [n for n in names if n in message]
    return max(hits, key=len) if hits else None


def check_index(path, full: bool = False) -> dict:
    """A report ``{"index", "index_type", "index_id", "ok", "files": [{name, bytes, status}], "problems":
    [{file, status, message}], "nested": {name: report}}``; ``ok`` is False on any damage."""
    from . import INDEX_TYPES
    folder = Path(path)
    report = {"index": str(folder), "index_type": None, "index_id": None, "ok": False, "full": full,
              "files": [], "problems": [], "nested": {}}
    if layout.is_segmented(folder):
        return _check_segmented(folder, full, report)
    try:
        manifest = storage.read_manifest(folder)
    except IndexError_ as e:
        _problem(report, "MANIFEST", str(e), layout.MANIFEST)
        return report
    report["index_type"], report["index_id"] = manifest.get("index_type"), manifest.get("index_id")
    report["legacy"] = storage.is_legacy(manifest)
    cls = INDEX_TYPES.get(manifest.get("index_type"))
    try:
        if cls is None:
            raise IndexError_(f"{folder}: unknown index type {manifest.get('index_type')!r}")
        storage.check_version(folder, manifest, cls.READABLE_VERSIONS)
        bounds.check_counts(folder, manifest)
        cls._check_manifest(folder, manifest)
    except IndexError_ as e:
        _problem(report, "MANIFEST", str(e), layout.MANIFEST)
    files = manifest["files"]
    report["files"] = [{"name": name, "bytes": info["bytes"], "status": "ok"} for name, info in files.items()]
    damaged = storage.file_problems(folder, manifest, "full", sha256=full, stop=False)
    for name, (status, message) in damaged.items():
        if name not in files:
            p = folder / name
            report["files"].append({"name": name, "bytes": p.stat().st_size if p.exists() else 0, "status": "ok"})
        _problem(report, status, message, name)
    if not report["problems"]:
        try:  # bounds and cross-file consistency; the bytes were hashed above
            index = cls.load(folder, verify="quick", manifest=manifest)
        except IndexError_ as e:
            _problem(report, "BOUNDS", str(e), _file_named(str(e), files))
            index = None
        if full and index is not None:
            _deep(report, folder, files, index)
    report["ok"] = not report["problems"] and all(r["ok"] for r in report["nested"].values())
    return report


def _deep(report: dict, folder: Path, files: dict, index) -> None:
    import pyarrow.parquet as pq
    for name in files:
        if name.endswith(".parquet"):
            try:
                pq.read_table(folder / name)
            except Exception as e:  # any Arrow error: the file does not decode
                _problem(report, "UNREADABLE", f"{folder / name}: does not read whole ({e})", name)
    ids = index.doc_ids.to_list()
    if len(set(ids)) != len(ids):
        _problem(report, "DUPLICATE", f"{folder / layout.DOC_IDS}: duplicate document ids", layout.DOC_IDS)
    if layout.has_lexical(folder):
        report["nested"][layout.LEXICAL_DIR] = check_index(folder / layout.LEXICAL_DIR, full=True)
    if layout.has_dense(folder):
        from .dense import DenseIndex
        try:
            dense = DenseIndex.load(folder / layout.DENSE_DIR, n_docs=len(index))
            for start in range(0, len(dense), 65536):
                if not np.isfinite(np.asarray(dense.data[start:start + 65536], dtype=np.float32)).all():
                    raise IndexError_(f"{folder / layout.DENSE_DIR / layout.DENSE_EMBEDDINGS}: NaN or infinite "
                                      f"values (corrupt index)")
        except IndexError_ as e:
            _problem(report, "BOUNDS", str(e), _file_named(str(e), files))


def _check_segmented(folder: Path, full: bool, report: dict) -> dict:
    """The newest commit (checksum, structure), its live-documents files, then every segment checked as an
    index of its own (nested reports). Files no commit references are listed as garbage, not damage: a
    killed writer leaves them and the next writer deletes them."""
    from . import commit as commits
    report["index_type"] = "segmented"
    name = layout.commit_name(commits.generations(folder)[-1])
    try:
        commit = commits.newest(folder)
        name = layout.commit_name(commit["generation"])
    except IndexError_ as e:
        report["files"].append({"name": name, "bytes": 0, "status": "ok"})
        _problem(report, "MANIFEST", str(e), name)
        return report
    report["files"].append({"name": name, "bytes": (folder / name).stat().st_size, "status": "ok"})
    report["generation"] = commit["generation"]
    for entry in commit["segments"]:
        if entry.get("live"):
            p = folder / entry["live"]
            report["files"].append({"name": entry["live"], "bytes": p.stat().st_size if p.exists() else 0,
                                    "status": "ok"})
            try:
                commits.load_live(folder, commit, entry, full=True)
            except IndexError_ as e:
                _problem(report, "CHECKSUM", str(e), entry["live"])
        seg = folder / entry["name"]
        nested = check_index(seg, full=full)
        if nested["ok"] and nested.get("index_type") != entry.get("index_type", nested.get("index_type")):
            _problem(nested, "MANIFEST", f"{seg}: a {nested['index_type']} index, the commit says "
                                         f"{entry.get('index_type')}", layout.MANIFEST)
        report["nested"][entry["name"]] = nested
    keep = commits.referenced(commit)
    report["garbage"] = sorted(n for n in os.listdir(folder)
                               if n not in keep and not commits._COMMIT_RE.match(n))
    report["ok"] = not report["problems"] and all(r["ok"] for r in report["nested"].values())
    return report


def summary(report: dict) -> str:
    """One line: what is damaged, or that all is well."""
    bad = [p for p in report["problems"]]
    for name, nested in report["nested"].items():
        bad += [{**p, "file": f"{name}/{p['file']}" if p["file"] else name} for p in nested["problems"]]
    if not bad:
        count = len(report["files"]) + sum(len(n["files"]) for n in report["nested"].values())
        return f"{report['index']}: ok ({count} files verified)"
    first = bad[0]["message"]
    more = f" (and {len(bad) - 1} more problem{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else ""
    return f"{report['index']} is damaged: {first}{more}"
