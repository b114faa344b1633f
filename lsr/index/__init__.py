"""Indexes over sparse vectors: pure numpy/numba, never imports torch."""
from __future__ import annotations

from pathlib import Path

from ..errors import IndexError_
from . import storage
from .docs import DocIds, DocStore
from .exact import ExactIndex
from .seismic import SeismicIndex

INDEX_TYPES = {"seismic": SeismicIndex, "exact": ExactIndex}


def load_index(path, verify=True):
    """Open any lsr index directory; the manifest says which type it is.

    ``verify``: True / "full" (default) checks every byte of every file
    against the manifest's xxh3 checksums; False / "quick" checks sizes,
    array headers and each file's first and last 64 KiB. Both verify the
    manifest's own checksum, refuse unlisted files and check the arrays'
    bounds, so a damaged index is an IndexError_, never a crash. A
    segmented index (lsr.IndexWriter) opens as a
    :class:`lsr.index.segmented.SegmentedIndex` over its newest commit.
    """
    path = Path(path)
    from ..layout import is_segmented
    if is_segmented(path):  # the newest commit's segments as one index; it holds the commit while it lives
        from .segmented import Snapshot
        snapshot = Snapshot(path, verify)
        index = snapshot.index()
        index.snapshot = snapshot
        return index
    manifest = storage.read_manifest(path)
    cls = INDEX_TYPES.get(manifest.get("index_type"))
    if cls is None:
        raise IndexError_(f"{path}: unknown index type {manifest.get('index_type')!r} "
                          f"(this lsr knows {', '.join(INDEX_TYPES)})")
    return cls.load(path, verify=verify, manifest=manifest)


__all__ = ["SeismicIndex", "ExactIndex", "load_index", "DocIds", "DocStore", "INDEX_TYPES"]
