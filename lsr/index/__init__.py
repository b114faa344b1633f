"""Indexes over sparse vectors: pure numpy/numba, never imports torch."""
from __future__ import annotations

from pathlib import Path

from ..errors import IndexError_
from . import storage
from .docs import DocIds, DocStore
from .exact import ExactIndex
from .seismic import SeismicIndex

INDEX_TYPES = {"seismic": SeismicIndex, "exact": ExactIndex}


def load_index(path, verify: bool = True):
    """Open any lsr index directory; the manifest says which type it is."""
    path = Path(path)
    manifest = storage.read_manifest(path)
    cls = INDEX_TYPES.get(manifest.get("index_type"))
    if cls is None:
        raise IndexError_(f"{path}: unknown index type {manifest.get('index_type')!r} "
                          f"(this lsr knows {', '.join(INDEX_TYPES)})")
    return cls.load(path, verify=verify, manifest=manifest)


__all__ = ["SeismicIndex", "ExactIndex", "load_index", "DocIds", "DocStore", "INDEX_TYPES"]
