"""SeismicIndex: approximate retrieval over learned sparse vectors.

Our implementation of the design of Bruch, Nardini, Rulli and Venturini,
"Efficient Inverted Indexes for Approximate Retrieval over Learned Sparse
Representations" (SIGIR 2024):

* static pruning: each inverted list keeps only its heaviest postings (a
  global budget of ``n_postings`` per term on average, at most
  ``max_fraction * n_postings`` in any one list);
* blocking: each list's documents are clustered (random centroids drawn from
  the list, ``centroid_fraction`` of its length; assignment by inner product
  with the document's ``doc_cut`` heaviest terms) into blocks;
* summaries: per block, the coordinate-wise max of its documents, pruned to
  ``summary_energy`` of its L1 mass and quantised to 8 bits; stored
  term-major per list, so a query reads only its own terms' entries;
* a forward index with every document's full vector (float16 or float32)
  for exact scoring.

Search visits the lists of the query's ``query_cut`` heaviest terms (the
heaviest term's list best-first by summary score, the others in stored
order) and skips every block whose summary score is below ``heap_factor``
times the current k-th best score; documents are scored exactly, each once.
``heap_factor=0`` never skips.

This module holds the index class: build's checks, loading, search. The
build's phases and parameters are in seismic_build.py; search parameters
are :class:`lsr.index.params.SeismicSearchParams`; the numba kernels are in
lsr/kernels (seismic_build.py, summaries.py, seismic_search.py, knn.py).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import IndexError_
from ..sparse import SparseVectors, as_sparse_vectors
from . import bounds
from .base import NO_FILTER, BaseIndex, run_kernel
from .params import SeismicSearchParams

# Importable from here as before the build moved to seismic_build.py (bench/ uses them).
from .seismic_build import (  # noqa: F401
    BUILD_DEFAULTS,
    SEARCH_DEFAULTS,
    SeismicBuildParams,
    build_arrays,
    default_build_params,
    resolve_params,
)


def _search_kernels():
    """The numba search kernels, imported on first use (numba is heavy to import)."""
    global _K
    if _K is None:
        from ..kernels import seismic_search
        _K = seismic_search
    return _K


_K = None


class SeismicIndex(BaseIndex):
    index_type = "seismic"
    BUILD_PARAMS = SeismicBuildParams
    SEARCH_PARAMS = SeismicSearchParams
    # 3: adds the k-NN graph (knn_nbrs); 2: summaries stored term-major
    # (dir_*/ent_* arrays); 1 was block-major. A version-2 index loads as
    # one without a graph.
    FORMAT_VERSION = 3
    READABLE_VERSIONS = (2, 3)
    # Order matters: they form the kernel's `ix` tuple in this order.
    ARRAYS = ("list_block_ptr", "block_ptr", "block_docs", "block_fwd", "dir_ptr", "dir_terms", "dir_cnt", "dir_off",
              "ent_blk", "ent_code", "sum_min", "sum_scale", "fwd_idx", "fwd_val", "fwd_codes", "fwd_ptr", "knn_nbrs")
    OPTIONAL_ARRAYS = {"knn_nbrs": np.int32}

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, vectors, doc_ids=None, vocab=None, threads: int | None = None, progress: bool = False,
              **params) -> SeismicIndex:
        """Build from SparseVectors or a scipy CSR matrix (float32), rows = documents.

        ``params`` are the fields of :class:`SeismicBuildParams` (see the
        module docstring; the phases are in seismic_build.py): n_postings
        (None = by collection size; 0 or a negative value disables static
        pruning), max_fraction, centroid_fraction, min_cluster_size,
        summary_energy, doc_cut, forward_dtype ("f16", "f32", or None/"auto":
        f16 when every weight fits, else f32; recorded with forward_dtype_reason), seed, knn
        (neighbours per document in a k-NN graph for result refinement, 0 =
        none; kernels/knn.py) and knn_blocks (how many of a document's
        heaviest terms' blocks are searched for its neighbours; 0, the
        default, searches all); query_cut and heap_factor are stored as the
        index's search defaults, and so is knn. Any other name raises
        :class:`lsr.errors.ParameterError`.
        """
        cls.check_build_params(params)
        v = as_sparse_vectors(vectors, vocab)
        ids = cls._doc_ids_for(doc_ids, len(v))
        widest = int(np.diff(v.indptr).max()) if len(v) else 0
        if widest >= 1 << 16:  # before any work: postings pack a document's length into 16 bits
            raise ValueError(f"a document has {widest} non-zeros; the seismic index supports < 65536")
        p = resolve_params(params, len(v), v, ids)
        arrays, timings = build_arrays(v, SeismicBuildParams(**p), threads, progress)
        index = cls(arrays, ids, v.vocab, p)
        index.build_timings = timings  # seconds per phase
        return index

    # ------------------------------------------------------------- properties
    @property
    def n_postings(self) -> int:
        return int(len(self.block_docs))

    @property
    def n_blocks(self) -> int:
        return int(len(self.block_ptr) - 1)

    def forward_vectors(self):
        """The documents as stored in the forward index (float16-rounded if so built)."""
        from ..sparse import SparseVectors
        values = (np.asarray(self.fwd_codes).view(np.float16).astype(np.float32) if len(self.fwd_codes)
                  else np.asarray(self.fwd_val))
        return SparseVectors(np.asarray(self.fwd_ptr), np.asarray(self.fwd_idx).astype(np.int32), values,
                             self.vocab, validate=False)

    @classmethod
    def _check_manifest(cls, path: Path, manifest: dict) -> None:
        bounds.check_search_defaults(path, manifest.get("params"))

    def _check_arrays(self, path: Path) -> None:
        """Sizes agree and every index the search kernels compute is in bounds (kernels/seismic_search.py)."""
        from ..kernels.summaries import DIR_SAMPLE
        n, dim = len(self), self.vocab.size
        ok = ((len(self.fwd_val) == len(self.fwd_idx) or len(self.fwd_codes) == len(self.fwd_idx))
              and len(self.block_docs) == len(self.block_fwd)
              and len(self.dir_terms) == len(self.dir_cnt)
              and len(self.dir_off) == -(-len(self.dir_terms) // DIR_SAMPLE) and len(self.ent_blk) == len(self.ent_code)
              and len(self.sum_min) == len(self.sum_scale) == len(self.block_ptr) - 1
              and (n == 0 or len(self.knn_nbrs) % n == 0) and (n > 0 or len(self.knn_nbrs) == 0))
        if not ok:
            raise IndexError_(f"{path}: array sizes disagree with each other (corrupt index); rebuild the index")
        bounds.check_seismic_bounds(path, self, n, dim, DIR_SAMPLE)

    # ----------------------------------------------------------------- search
    # Software prefetching of documents pays off once the forward index
    # outgrows a core's L2 cache (measured: 1-5% faster on scifact's 5 MB,
    # ~20% on the 1M synthetic set's 450 MB); below that it is overhead.
    PREFETCH_MIN_BYTES = 1 << 20

    @property
    def knn_width(self) -> int:
        """Neighbours stored per document in the k-NN graph (0: the index has none)."""
        return len(self.knn_nbrs) // len(self) if len(self) else 0

    def _search_params(self, query_cut, heap_factor, knn) -> tuple:
        """(query_cut, heap_factor as float32, knn) with the index's defaults filled in, checked; memoised."""
        if query_cut is None:
            query_cut = self.params.get("query_cut", SEARCH_DEFAULTS["query_cut"])
        if heap_factor is None:
            heap_factor = self.params.get("heap_factor", SEARCH_DEFAULTS["heap_factor"])
        if knn is None:
            knn = self.params.get("knn", 0)
        key = (query_cut, heap_factor, knn)
        memo = self.__dict__.setdefault("_param_memo", {})
        got = memo.get(key)
        if got is not None:
            return got
        query_cut, heap_factor, knn = int(query_cut), float(heap_factor), int(knn)
        if knn < 0:
            raise ValueError(f"knn must be >= 0, got {knn}")
        if query_cut < 1:
            raise ValueError(f"query_cut must be >= 1, got {query_cut}")
        if not 0 <= heap_factor < math.inf:
            raise ValueError(f"heap_factor must be a finite number >= 0, got {heap_factor}")
        got = (query_cut, np.float32(heap_factor), knn)
        if len(memo) < 64:
            memo[key] = got
        return got

    def search(self, query, k: int = 10, query_cut=None, heap_factor=None, knn=None, threads=None, **params):
        """One query (a 1-row SparseVectors or scipy row): (doc_ids, scores) of shape (k,)."""
        # The everyday call (one SparseVectors row, no filter) skips the batch
        # path's Python (search_numbers' argument plumbing and checks) and goes
        # to _search with one thread: on a small collection a query takes
        # ~0.1 ms, and that Python was ~3 us of it (docs/RESULTS.md). Anything
        # else takes the general path, including any keyword besides this
        # signature's (``params``: a filter, or a typo that search_numbers
        # refuses), so the names need no check here.
        if params or type(query) is not SparseVectors or len(query.indptr) != 2 or type(k) is not int or not 1 <= k <= len(self):
            return super().search(query, k, query_cut=query_cut, heap_factor=heap_factor, knn=knn,
                                  threads=1 if threads is None else threads, **params)
        scores = np.empty((1, k), dtype=np.float32)
        docs = np.empty((1, k), dtype=np.int64)
        self._search(self.check_queries(query), k, 1, scores, docs, query_cut, heap_factor, knn)
        return self.doc_ids.take(docs[0]), scores[0]

    def _search(self, q, k, threads, scores, docs, query_cut=None, heap_factor=None, knn=None,
                allowed=None) -> None:
        K = _search_kernels()
        query_cut, heap_factor, knn = self._search_params(query_cut, heap_factor, knn)
        ix = self.__dict__.get("_ix")
        if ix is None:  # first search: the flags, then the arrays (fwd_ptr is not needed to search)
            self._f16 = len(self.fwd_codes) > 0
            fwd_bytes = self.fwd_idx.nbytes + (self.fwd_codes.nbytes if self._f16 else self.fwd_val.nbytes)
            self._prefetch = fwd_bytes >= self.PREFETCH_MIN_BYTES
            ix = self._ix = tuple(getattr(self, name) for name in self.ARRAYS)
        if allowed is not None:
            ids = self._flat_ids(allowed)
            if ids is not None:
                run_kernel(None, K.filtered_scan, threads, len(q), q.indptr, q.indices, q.values, k, ids,
                           self.fwd_ptr, self.fwd_idx, self.fwd_val, self.fwd_codes, self._f16, self.vocab.size,
                           scores, docs)
                return
        common = (q.indptr, q.indices, q.values, k, query_cut, heap_factor, knn, self._f16, self._prefetch)
        mask = NO_FILTER if allowed is None else allowed
        if threads == 1 or len(q.indptr) == 2:
            local = self._scratch()
            K.search_serial(*common, ix, mask, local.q, local.visited, local.stamp, scores, docs)
        else:
            run_kernel(None, K.search_parallel, threads, len(q), *common, len(self), ix, mask, scores, docs)

    # A filter keeping at most this fraction of the documents is served by
    # scoring them all from the forward index (exact) instead of the pruned
    # lists: on cranfield (BM25), a random 1% filter kept recall@10 0.91
    # through the lists vs 1.0 this way, at about the lists' cost.
    FLAT_FILTER_FRACTION = 0.02

    def _flat_ids(self, allowed: np.ndarray):
        """The allowed document numbers when the filter is selective enough for a flat scan, else None."""
        cached = self.__dict__.get("_flat_cache")
        if cached is not None and cached[0] is allowed:  # the Searcher caches masks: same object, same ids
            return cached[1]
        n_allowed = int(np.count_nonzero(allowed))
        ids = np.flatnonzero(allowed).astype(np.int64) if n_allowed <= self.FLAT_FILTER_FRACTION * len(self) else None
        self._flat_cache = (allowed, ids)
        return ids

    def _new_scratch(self, local) -> None:
        # query vector, visited stamps, stamp counter (see kernels.seismic_search.search_serial)
        local.q = np.zeros(self.vocab.size, dtype=np.float32)
        local.visited = np.zeros(len(self), dtype=np.int32)
        local.stamp = np.zeros(1, dtype=np.int64)
