"""What an index holds, from its manifest alone (``lsr info``): models, type, documents, segments, bytes.

Reads the manifest (its checksum verified) and the nested lists' configs,
never the arrays, so it answers at once on any index size; ``lsr check``
is what verifies the data. A one-folder index (what ``lsr index`` builds)
is one segment, named "."; a segmented index lists its newest commit's
segments, each with its type, documents, deletions and bytes.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import layout
from . import storage

# The search parameters a seismic index stores as its defaults (``lsr tune`` writes them).
_SEARCH_DEFAULTS = ("query_cut", "heap_factor", "knn")


def _bytes(manifest: dict) -> int:
    return sum(int(info["bytes"]) for info in manifest["files"].values())


def _lists(folder: Path) -> list[str]:
    return ["sparse"] + (["dense"] if layout.has_dense(folder) else []) + (["bm25"] if layout.has_lexical(folder) else [])


def _dense(folder: Path) -> dict | None:
    path = folder / layout.DENSE_DIR / layout.DENSE_CONFIG
    if not path.exists():
        return None
    cfg = json.loads(path.read_text())  # listed in the verified manifest; load_index checks its values
    return {"model": cfg.get("model"), "backend": cfg.get("backend", "torch"), "dtype": cfg.get("dtype"),
            "dim": cfg.get("dim")}


def index_info(path) -> dict:
    """``{"path", "index_type", "docs", "deleted", "segments": [{"name", "docs", "deleted", "bytes",
    "index_type"}], "model", "encoder", "lists", "dense", "bytes", "search_defaults", "params", "format_version",
    "index_id", "created", "vocab_size"}`` of the index at ``path``; ``IndexFormatError`` if it is not one."""
    folder = Path(path)
    if layout.is_segmented(folder):
        return _segmented_info(folder)
    manifest = storage.read_manifest(folder)
    encoder = manifest.get("encoder") or {}
    params = manifest.get("params") or {}
    docs = int((manifest.get("counts") or {}).get("docs", 0))
    lists = _lists(folder)
    total = _bytes(manifest) + (folder / layout.MANIFEST).stat().st_size
    return {
        "path": str(folder),
        "index_type": manifest.get("index_type"),
        "docs": docs,
        "deleted": 0,  # an index without segments has no tombstones
        "segments": [{"name": ".", "docs": docs, "deleted": 0, "bytes": total,
                      "index_type": manifest.get("index_type")}],
        "model": encoder.get("name"),
        "encoder": encoder,
        "lists": lists,
        "dense": _dense(folder),
        "bytes": total,
        "search_defaults": {k: params[k] for k in _SEARCH_DEFAULTS if k in params}
        if manifest.get("index_type") == "seismic" else {},
        "hybrid": manifest.get("hybrid"),
        "params": params,
        "format_version": manifest.get("format_version"),
        "index_id": manifest.get("index_id"),
        "created": manifest.get("created"),
        "vocab_size": (manifest.get("vocab") or {}).get("size"),
    }


def _segmented_info(folder: Path) -> dict:
    from . import commit as commits
    commit = commits.newest(folder)
    settings = commit.get("settings") or {}
    segments, total = [], (folder / layout.commit_name(commit["generation"])).stat().st_size
    first = None
    for entry in commit["segments"]:
        d = folder / entry["name"]
        manifest = storage.read_manifest(d)
        first = first or (d, manifest)
        size = _bytes(manifest) + (d / layout.MANIFEST).stat().st_size
        if entry.get("live"):
            size += (folder / entry["live"]).stat().st_size
        total += size
        segments.append({"name": entry["name"], "docs": entry["docs"] - entry["deleted"], "deleted": entry["deleted"],
                         "bytes": size, "index_type": manifest.get("index_type")})
    d, manifest = first
    encoder = manifest.get("encoder") or {}
    lists = _lists(d)  # every segment holds the same lists
    kinds = {s["index_type"] for s in segments}
    return {
        "path": str(folder),
        "index_type": kinds.pop() if len(kinds) == 1 else "mixed",
        "requested_type": settings.get("index_type"),
        "docs": sum(s["docs"] for s in segments),
        "deleted": sum(s["deleted"] for s in segments),
        "segments": segments,
        "model": encoder.get("name"),
        "encoder": encoder,
        "lists": lists,
        "dense": _dense(d),
        "bytes": total,
        "search_defaults": dict(settings.get("search") or {}),
        "hybrid": settings.get("hybrid"),
        "params": manifest.get("params") or {},
        "format_version": manifest.get("format_version"),
        "index_id": manifest.get("index_id"),
        "created": commit.get("created"),
        "vocab_size": (manifest.get("vocab") or {}).get("size"),
        "generation": commit["generation"],
        "exact_below": settings.get("exact_below"),
        "merge_policy": settings.get("merge"),
    }
