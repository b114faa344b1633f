"""Searching a segmented index: one commit's segments as one index, in one document numbering.

Document number ``n`` of the whole index is segment ``i``'s document
``n - offset[i]`` (segments in commit order, deleted documents keeping their
numbers until a merge drops them). Each segment is searched on its own with
its live mask (and the ``where`` filter) passed to the kernels as the
``allowed`` mask, so a deleted document is skipped while scanning and never
takes a slot of the top k; the per-segment top-k lists are merged exactly.
Segments are what `lsr index` builds, of either type: small ones exact,
large ones seismic (the writer chooses by size), so a search over an index
grown by `lsr add` is exact on its fresh segments, as in OpenSearch.
"""
from __future__ import annotations

import threading
import weakref
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import layout
from ..errors import IndexError_, QueryError
from ..sparse import SparseVectors
from . import commit as commits
from .base import FrontDoors, resolve_threads, valid_k
from .dense import DenseIndex
from .docs import DocIds, DocStore

# Segments are immutable and a commit names each with its manifest's checksum, so a segment already open
# (and verified) in this process is reused by the next snapshot: refresh() after an add opens only the new
# segment instead of re-reading every byte of the old ones. Weak: a segment no snapshot holds is let go.
_OPEN: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_OPEN_LOCK = threading.Lock()


def _open_segment(path: Path, checksum: str | None, verify):
    from . import load_index
    from .storage import verify_level
    key = (str(path.resolve()), checksum, verify_level(verify))
    with _OPEN_LOCK:
        index = _OPEN.get(key) if checksum else None
    if index is None:
        index = load_index(path, verify=verify)
        if checksum:
            with _OPEN_LOCK:
                _OPEN[key] = index
    return index


class Snapshot:
    """The newest commit of a segmented index, opened and leased (its files are kept while it is open)."""

    def __init__(self, folder, verify=True, light: bool = False):
        """``light``: open each segment's manifest and doc ids only (what a writer's add or delete needs;
        quick verification), not its arrays; ``indexes`` then holds :class:`SegmentIds`."""
        from .storage import verify_level
        self.folder = Path(folder)
        if not self.folder.exists():
            from ..atomic import recover_dir
            if not recover_dir(self.folder):
                raise IndexError_(f"index not found: {self.folder}")
        self.commit, self._lease = commits.open_newest(self.folder)
        self.generation = self.commit["generation"]
        self.verify = verify
        full = verify_level(verify) == "full"
        self.entries = self.commit["segments"]
        if not self.entries:
            raise IndexError_(f"{self.folder}: commit {self.generation} lists no segments")
        self.dirs = [self.folder / e["name"] for e in self.entries]
        self.live = [commits.load_live(self.folder, self.commit, e, full) for e in self.entries]
        self.indexes = []
        for e, d in zip(self.entries, self.dirs):
            index = SegmentIds(d) if light else _open_segment(d, e.get("manifest_checksum"), verify)
            if len(index) != e["docs"]:
                raise IndexError_(f"{d}: {len(index)} documents, the commit point says {e['docs']}")
            if e.get("manifest_checksum") and index.manifest.get("checksum") != e["manifest_checksum"]:
                raise IndexError_(f"{d}: not the segment commit {self.generation} wrote (its manifest differs); "
                                  "the folder was replaced")
            self.indexes.append(index)
        self.offsets = np.cumsum([0] + [e["docs"] for e in self.entries]).astype(np.int64)

    @property
    def settings(self) -> dict:
        return self.commit.get("settings") or {}

    def close(self) -> None:
        self._lease.close()

    def sub_indexes(self, sub: str) -> list:
        """Each segment's nested list ``sub`` (e.g. "lexical"), loaded and verified."""
        out = []
        for e, d in zip(self.entries, self.dirs):
            index = _open_segment(d / sub, e.get("manifest_checksum"), self.verify)
            if len(index) != e["docs"]:
                raise IndexError_(f"{d / sub}: {len(index)} documents, the segment has {e['docs']}")
            out.append(index)
        return out

    def index(self, sub: str | None = None) -> SegmentedIndex:
        parts = self.indexes if not sub else self.sub_indexes(sub)
        return SegmentedIndex(parts, self.live, self.entries, self.settings, self.folder)

    def docstore_parts(self) -> list:
        """Each segment's document store (None where a segment has none)."""
        return [DocStore.load(d) for d in self.dirs]

    def docstore(self) -> DocStore | None:
        stores = self.docstore_parts()
        if any(s is None for s in stores):
            return None
        table = pa.concat_tables([s._table for s in stores])
        metas = [s._meta for s in stores]
        if all(m is None for m in metas):
            return DocStore(table, None)
        return DocStore(table, _concat_metadata(metas, [e["docs"] for e in self.entries]))

    def dense(self) -> SegmentedDense:
        parts = [DenseIndex.load(d / layout.DENSE_DIR, n_docs=e["docs"]) for e, d in zip(self.entries, self.dirs)]
        return SegmentedDense(parts, self.live, self.offsets)


class SegmentIds:
    """A segment's manifest (checksum verified) and doc ids: what a writer needs to add or delete, without
    reading the arrays. The files a writer may read (doc ids, vocabulary, doc store, BM25 statistics, list
    configs) get the quick verification; the search arrays (every ``.npy`` but the BM25 statistics) are
    verified by whoever opens them to search or merge."""

    def __init__(self, folder: Path):
        from .storage import read_manifest, verify_files
        self.manifest = read_manifest(folder)
        read = [n for n in self.manifest["files"] if not n.endswith(".npy") or f"{layout.BM25_DIR}/" in n]
        verify_files(folder, self.manifest, "quick", names=read)
        self.doc_ids = DocIds.load(folder)
        self.vocab_fingerprint = (self.manifest.get("vocab") or {}).get("fingerprint")

    def __len__(self) -> int:
        return len(self.doc_ids)


def _concat_metadata(metas, sizes) -> pa.Table:
    """Segments' metadata tables as one: a field a segment lacks is null there; a field whose types differ
    between segments is compared as JSON text (as within one segment, see docs.metadata_table)."""
    import json
    fields: dict[str, list] = {}
    for m in metas:
        for name in (m.column_names if m is not None else []):
            fields.setdefault(name, []).append(m.schema.field(name).type)
    columns = {}
    for name, types in fields.items():
        mixed = len(set(types)) > 1
        parts = []
        for m, n in zip(metas, sizes):
            if m is None or name not in m.column_names:
                parts.append(pa.nulls(n, pa.string() if mixed else types[0]))
                continue
            col = m.column(name).combine_chunks()
            if mixed:
                col = pa.array([None if v is None else json.dumps(v, sort_keys=True, default=str)
                                for v in col.to_pylist()], pa.string())
            parts.append(col)
        columns[name] = pa.chunked_array(parts)
    return pa.table(columns)


class LiveDocIds(DocIds):
    """The segments' ids in one numbering; ``number_of`` finds only a live document (a replaced one's old
    copy and a deleted one are not found)."""

    def __init__(self, ids: pa.Array, live: np.ndarray | None):
        super().__init__(ids)
        self._live = live

    def number_of(self, doc_id: str) -> int:
        if self._lookup is None:
            ids = self._ids.to_pylist()
            numbers = range(len(ids)) if self._live is None else np.flatnonzero(self._live).tolist()
            self._lookup = {ids[i]: i for i in numbers}
        return self._lookup[doc_id]


def merge_topk(results, n_queries: int, k: int):
    """Exact top-k over per-segment (docs, scores) lists already in global numbers; -1 / -inf pad."""
    if not results:
        return np.full((n_queries, k), -1, np.int64), np.full((n_queries, k), -np.inf, np.float32)
    docs = np.concatenate([r[0] for r in results], axis=1)
    scores = np.concatenate([np.asarray(r[1], dtype=np.float32) for r in results], axis=1)
    order = np.lexsort((docs, -scores), axis=1)[:, :k]
    docs, scores = np.take_along_axis(docs, order, 1), np.take_along_axis(scores, order, 1)
    if docs.shape[1] < k:
        pad = k - docs.shape[1]
        docs = np.concatenate([docs, np.full((n_queries, pad), -1, np.int64)], 1)
        scores = np.concatenate([scores, np.full((n_queries, pad), -np.inf, np.float32)], 1)
    return docs, scores


def segment_masks(live, offsets, allowed):
    """Per segment: its mask (live & allowed slice), None for "everything", or False for "nothing"."""
    out = []
    for i, lv in enumerate(live):
        m = lv
        if allowed is not None:
            a = allowed[offsets[i]:offsets[i + 1]]
            m = a if m is None else (m & a)
        out.append(False if m is not None and not m.any() else m)
    return out


class SegmentedIndex(FrontDoors):
    """A commit's segments searched as one index (the interface of :class:`lsr.index.base.BaseIndex`)."""

    index_type = "segmented"

    def __init__(self, parts: list, live: list, entries: list, settings: dict | None = None, path=None):
        self.parts, self.live, self.entries, self.path = parts, live, entries, path
        self.settings = settings or {}
        self.offsets = np.cumsum([0] + [len(p) for p in parts]).astype(np.int64)
        self.vocab = max((p.vocab for p in parts), key=lambda v: v.size)
        for p, e in zip(parts, entries):
            if p.vocab.size == self.vocab.size and p.vocab.fingerprint != self.vocab.fingerprint:
                raise IndexError_(f"{path}: segment {e['name']} has another vocabulary than the others")
        whole = None if all(m is None for m in live) else np.concatenate(
            [np.ones(len(p), np.bool_) if m is None else m for p, m in zip(parts, live)])
        self.live_mask = whole
        self.doc_ids = LiveDocIds(pa.concat_arrays([p.doc_ids._ids for p in parts]), whole)
        first = parts[0].manifest
        self.manifest = {k: v for k, v in first.items() if k not in ("files", "checksum", "index_id")}
        self.manifest.update(index_type=self.index_type, counts={"docs": len(self), "live": self.n_live},
                             params=dict(self.settings.get("search") or {}))
        # Per segment, a factor per query term (BM25 lists: global IDF over the segment's own), or None.
        # The searcher sets them with the query encoder; a BM25 list of several segments searched without
        # them would score each segment with its own statistics, so that is refused.
        self.query_scales: list | None = None
        self._needs_scales = (first.get("encoder") or {}).get("kind") == "bm25" and len(parts) > 1

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_live(self) -> int:
        return len(self) - sum(e["deleted"] for e in self.entries)

    @property
    def n_postings(self) -> int:
        return sum(p.n_postings for p in self.parts)

    @property
    def segment_types(self) -> list[str]:
        return [p.index_type for p in self.parts]

    def check_search_params(self, given) -> None:
        """The search parameters of the approximate (seismic) segments; none when every segment is exact."""
        from . import INDEX_TYPES
        kind = "seismic" if "seismic" in self.segment_types else "exact"
        INDEX_TYPES[kind].check_search_params(given)

    def check_queries(self, queries) -> SparseVectors:
        return self.parts[[p.vocab.size for p in self.parts].index(self.vocab.size)].check_queries(queries)

    def forward_vectors(self) -> SparseVectors:
        """Every document's vector in the index's numbering (deleted ones too: they are never searched);
        a BM25 list's weights with the global IDF (see ``query_scales``)."""
        parts = [p.forward_vectors() for p in self.parts]
        indptr = [np.zeros(1, np.int64)]
        values = []
        for i, v in enumerate(parts):
            indptr.append(v.indptr[1:] + indptr[-1][-1])
            scale = None if self.query_scales is None else self.query_scales[i]
            # a BM25 segment's weights carry the IDF it was written with: expressed in the global one, as
            # feedback (PRF) must see them to expand a query as the index built at once would
            values.append(v.values if scale is None else (v.values * scale[v.indices]).astype(np.float32))
        return SparseVectors(np.concatenate(indptr), np.concatenate([v.indices for v in parts]),
                             np.concatenate(values), self.vocab, validate=False)

    def _query_for(self, i: int, q: SparseVectors) -> SparseVectors:
        part = self.parts[i]
        scale = None if self.query_scales is None else self.query_scales[i]
        if scale is None and part.vocab.size == q.vocab.size:
            return q
        keep = q.indices < part.vocab.size  # a term newer than the segment: it has no postings there
        rows = np.repeat(np.arange(len(q)), np.diff(q.indptr))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=len(q)))])
        indices = q.indices[keep]
        values = q.values[keep] * (scale[indices] if scale is not None else 1)
        return SparseVectors(indptr.astype(np.int64), indices, values.astype(np.float32), part.vocab, validate=False)

    def search_numbers(self, queries, k: int = 10, threads: int | None = None, allowed=None, **params):
        """As :meth:`BaseIndex.search_numbers`: the best live (and ``allowed``) documents of every segment."""
        self.check_search_params(params)
        k = self.check_k(k)
        if allowed is not None:
            allowed = self.check_allowed(allowed)
        q = self.check_queries(queries)
        if self._needs_scales and self.query_scales is None:
            raise QueryError(f"{self.path}: a segmented BM25 index scores with global statistics; search it "
                             "through lsr.retrieval.Searcher or Retriever (they encode queries with them)")
        threads = resolve_threads(threads)
        stored = self.settings.get("search") or {}
        results = []
        for i, mask in enumerate(segment_masks(self.live, self.offsets, allowed)):
            if mask is False:
                continue
            part = self.parts[i]
            p = {**stored, **params} if part.index_type == "seismic" else {}  # exact segments take none
            d, s = part.search_numbers(self._query_for(i, q), k, threads, allowed=mask, **p)
            results.append((np.where(d >= 0, d + self.offsets[i], -1), s))
        return merge_topk(results, len(q), k)


class SegmentedDense:
    """The segments' dense lists as one (the interface :class:`lsr.index.dense.DenseIndex` offers search with)."""

    def __init__(self, parts: list[DenseIndex], live: list, offsets: np.ndarray):
        self.parts, self.live, self.offsets = parts, live, offsets
        dims = {p.dim for p in parts}
        models = {p.model for p in parts}
        if len(dims) != 1 or len(models) != 1:
            raise IndexError_(f"segments hold dense lists of different models or dimensions ({models}, {dims})")
        self.dim, self.model = dims.pop(), models.pop()
        self.dtype = parts[0].dtype
        self.backend = parts[0].backend  # every segment's dense list is encoded as the first one records

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def search(self, queries, k: int = 10, allowed=None):
        q = np.asarray(queries, dtype=np.float32)
        q = q[None, :] if q.ndim == 1 else q
        k = min(valid_k(k), len(self))
        results = []
        for i, mask in enumerate(segment_masks(self.live, self.offsets, allowed)):
            if mask is False:
                continue
            d, s = self.parts[i].search(q, k, allowed=mask)
            results.append((np.where(d >= 0, d + self.offsets[i], -1), s))
        return merge_topk(results, len(q), k)

    def embeddings(self, numbers) -> np.ndarray:
        numbers = np.asarray(numbers, dtype=np.int64)
        seg = np.searchsorted(self.offsets, numbers, side="right") - 1
        out = np.zeros((*numbers.shape, self.dim), np.float32)
        for i in np.unique(seg):
            where = seg == i
            out[where] = self.parts[i].embeddings(numbers[where] - self.offsets[i])
        return out
