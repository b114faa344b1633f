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
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ..errors import IndexError_
from ..sparse import SparseVectors, as_sparse_vectors
from .base import NO_FILTER, BaseIndex, run_kernel

BUILD_DEFAULTS = {
    "n_postings": None,  # None: chosen from the collection size, see default_build_params
    "max_fraction": 1.5,
    "centroid_fraction": 0.1,
    "min_cluster_size": 2,
    "summary_energy": 0.4,
    "doc_cut": 15,
    "forward_dtype": "f16",
    "seed": 42,
    "knn": 0,  # k-NN graph: neighbours stored per document (0: no graph); also the search default
    "knn_blocks": 0,  # neighbours are sought in the blocks of this many of a document's heaviest terms (0: all)
}
SEARCH_DEFAULTS = {"query_cut": 10, "heap_factor": 0.8}  # recall@10 ~0.99 on scifact; `lsr tune` refines


def _kernels():
    """The numba kernels module, imported on first use (numba is heavy to import)."""
    global _K
    if _K is None:
        from ..kernels import seismic
        _K = seismic
    return _K


_K = None


def default_build_params(n_docs: int) -> dict:
    """Seismic's guidelines scaled to the collection.

    n_postings grows with the square root of the collection: 1,000 (where
    pruning rarely binds) up to about 160k documents, 2,500 at 1M (where
    1,000 capped recall@10 near 0.91 on the synthetic benchmark and 2,500
    reaches 0.95; docs/RESULTS.md), and the authors' 4,000 from about 2.6M
    documents on (they use 3,500-4,000 for MS MARCO's 8.8M passages).
    """
    return {"n_postings": int(min(4000, max(1000, round(2.5 * math.sqrt(max(n_docs, 0))))))}


class SeismicIndex(BaseIndex):
    index_type = "seismic"
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
              **params) -> "SeismicIndex":
        """Build from SparseVectors or a scipy CSR matrix (float32), rows = documents.

        Parameters (see the module docstring): n_postings (None = by collection
        size; 0 or a negative value disables static pruning), max_fraction,
        centroid_fraction, min_cluster_size, summary_energy, doc_cut,
        forward_dtype ("f16" or "f32"), seed, knn (neighbours per document
        in a k-NN graph for result refinement, 0 = none; kernels/knn.py) and
        knn_blocks (how many of a document's heaviest terms' blocks are
        searched for its neighbours; 0, the default, searches all); query_cut and heap_factor are stored as
        the index's search defaults, and so is knn.
        """
        import numba

        from ..kernels import seismic as K
        unknown = set(params) - set(BUILD_DEFAULTS) - set(SEARCH_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown SeismicIndex parameter(s): {', '.join(sorted(unknown))}")
        v = as_sparse_vectors(vectors, vocab)
        n_docs, dim = len(v), v.vocab.size
        ids = cls._doc_ids_for(doc_ids, n_docs)
        widest = int(np.diff(v.indptr).max()) if n_docs else 0
        if widest >= 1 << 16:  # before any work: postings pack a document's length into 16 bits
            raise ValueError(f"a document has {widest} non-zeros; the seismic index supports < 65536")
        p = {**BUILD_DEFAULTS, **SEARCH_DEFAULTS, **{k: val for k, val in params.items() if val is not None}}
        if p["n_postings"] is None:
            p.update(default_build_params(n_docs))
        if p["forward_dtype"] not in ("f16", "f32"):
            raise ValueError(f"forward_dtype must be 'f16' or 'f32', got {p['forward_dtype']!r}")
        for name in ("knn", "knn_blocks"):
            if not isinstance(p[name], (int, np.integer)) or p[name] < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {p[name]!r}")
        timings = {}
        from tqdm.auto import tqdm
        bar = tqdm(total=4 if p["knn"] else 3, desc="seismic build", unit="phase", disable=not progress)
        old_threads = numba.get_num_threads()
        numba.set_num_threads(max(1, min(threads or numba.config.NUMBA_NUM_THREADS, numba.config.NUMBA_NUM_THREADS)))
        try:
            t0 = time.perf_counter()
            fwd_ptr, fwd_idx32, fwd_val = v.indptr, v.indices, v.values
            csc = v.to_scipy().tocsc()
            csc.sort_indices()
            list_ptr, list_docs = csc.indptr.astype(np.int64), csc.indices.astype(np.int32)
            if p["n_postings"] and p["n_postings"] > 0:
                budget = int(p["n_postings"]) * int(np.count_nonzero(np.diff(list_ptr)))
                cap = max(1, int(p["max_fraction"] * p["n_postings"]))
                threshold = np.float32(0.0)
                if budget < csc.data.shape[0]:
                    threshold = np.partition(csc.data, csc.data.shape[0] - budget)[csc.data.shape[0] - budget]
                list_ptr, list_docs = K.prune_lists(list_ptr, list_docs, csc.data.astype(np.float32),
                                                    np.float32(threshold), cap)
            del csc
            timings["prune_s"] = time.perf_counter() - t0
            bar.set_postfix_str("clustering lists")
            bar.update()

            t0 = time.perf_counter()
            cut_ptr, cut_idx, cut_val = K.top_terms(fwd_ptr, fwd_idx32, fwd_val, int(p["doc_cut"]))
            longest = int(np.diff(list_ptr).max()) if len(list_ptr) > 1 else 0
            max_centroids = max(1, math.ceil(p["centroid_fraction"] * longest))
            assign, _ = K.cluster_lists(list_ptr, list_docs, fwd_ptr, fwd_idx32, fwd_val, cut_ptr, cut_idx, cut_val,
                                        float(p["centroid_fraction"]), int(p["min_cluster_size"]), int(p["seed"]),
                                        dim, max_centroids)
            del cut_ptr, cut_idx, cut_val
            # Blocks: postings ordered by (term, cluster, doc); a block starts
            # wherever the (term, cluster) pair changes.
            terms = np.repeat(np.arange(dim, dtype=np.int32), np.diff(list_ptr))
            order = np.lexsort((list_docs, assign, terms))
            block_docs = list_docs[order]
            t_sorted, a_sorted = terms[order], assign[order]
            starts = np.flatnonzero(np.r_[True, (t_sorted[1:] != t_sorted[:-1]) | (a_sorted[1:] != a_sorted[:-1])]) \
                if len(order) else np.zeros(0, dtype=np.int64)
            block_ptr = np.r_[starts, len(order)].astype(np.int64)
            list_block_ptr = np.zeros(dim + 1, dtype=np.int64)
            np.cumsum(np.bincount(t_sorted[starts], minlength=dim), out=list_block_ptr[1:])
            del terms, order, t_sorted, a_sorted, assign
            timings["cluster_s"] = time.perf_counter() - t0
            bar.set_postfix_str("summaries")
            bar.update()

            t0 = time.perf_counter()
            energy = float(p["summary_energy"])
            sizes, thresholds, ties = K.summary_select(block_ptr, block_docs, fwd_ptr, fwd_idx32, fwd_val, energy, dim)
            sum_ptr = np.zeros(len(block_ptr), dtype=np.int64)
            np.cumsum(sizes, out=sum_ptr[1:])
            sum_terms32 = np.empty(sum_ptr[-1], dtype=np.int32)
            sum_codes = np.empty(sum_ptr[-1], dtype=np.uint8)
            sum_min = np.empty(len(block_ptr) - 1, dtype=np.float32)
            sum_scale = np.empty(len(block_ptr) - 1, dtype=np.float32)
            K.summary_fill(block_ptr, block_docs, fwd_ptr, fwd_idx32, fwd_val, dim, thresholds, ties, sum_ptr,
                           sum_terms32, sum_codes, sum_min, sum_scale)
            term_dtype = np.uint16 if dim <= 65536 else np.int32  # halves these arrays for BERT-size vocabularies
            summaries = dict(zip(("dir_ptr", "dir_terms", "dir_cnt", "dir_off", "ent_blk", "ent_code"),
                                 K.summaries_by_term(list_block_ptr, sum_ptr, sum_terms32, sum_codes, dim, term_dtype)))
            del sum_ptr, sum_terms32, sum_codes
            timings["summaries_s"] = time.perf_counter() - t0
            bar.update()

            knn_nbrs = np.zeros(0, dtype=np.int32)
            if p["knn"]:
                bar.set_postfix_str("k-NN graph")
                t0 = time.perf_counter()
                from ..kernels import knn as KG
                doc_ptr, blocks_of = KG.doc_blocks(block_ptr, block_docs, n_docs)
                block_term = np.repeat(np.arange(dim, dtype=np.int32), np.diff(list_block_ptr))
                knn_nbrs = KG.knn_graph(block_ptr, block_docs, block_term, doc_ptr, blocks_of, fwd_ptr.astype(np.int64),
                                        fwd_idx32, fwd_val.astype(np.float32), int(p["knn"]),
                                        int(p["knn_blocks"]) or np.iinfo(np.int64).max,
                                        dim, 8 * numba.get_num_threads())
                del doc_ptr, blocks_of, block_term
                timings["knn_s"] = time.perf_counter() - t0
                bar.update()
        finally:
            numba.set_num_threads(old_threads)
            bar.close()

        if p["forward_dtype"] == "f16":
            fwd_codes, fwd_val_out = fwd_val.astype(np.float16).view(np.uint16), np.zeros(0, np.float32)
        else:
            fwd_codes, fwd_val_out = np.zeros(0, np.uint16), fwd_val.astype(np.float32)
        # Per posting, where its document sits in the forward index (start << 16 | length).
        doc_len = np.diff(fwd_ptr)
        block_fwd = (fwd_ptr[:-1][block_docs].astype(np.int64) << 16) | doc_len[block_docs].astype(np.int64)
        arrays = {"list_block_ptr": list_block_ptr, "block_ptr": block_ptr, "block_docs": block_docs.astype(np.int32),
                  "block_fwd": block_fwd,
                  **summaries, "sum_min": sum_min, "sum_scale": sum_scale,
                  "fwd_ptr": fwd_ptr.astype(np.int64), "fwd_idx": fwd_idx32.astype(term_dtype),
                  "fwd_val": fwd_val_out, "fwd_codes": fwd_codes, "knn_nbrs": knn_nbrs}
        index = cls(arrays, ids, v.vocab, p)
        index.build_timings = timings
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

    def _check_arrays(self, path: Path) -> None:
        from ..kernels.seismic import DIR_SAMPLE
        n, dim = len(self), self.vocab.size
        ok = (len(self.fwd_ptr) == n + 1 and self.fwd_ptr[-1] == len(self.fwd_idx)
              and (len(self.fwd_val) == len(self.fwd_idx) or len(self.fwd_codes) == len(self.fwd_idx))
              and len(self.list_block_ptr) == dim + 1 and self.list_block_ptr[-1] == self.n_blocks
              and self.block_ptr[-1] == len(self.block_docs) == len(self.block_fwd)
              and len(self.dir_ptr) == dim + 1 and self.dir_ptr[-1] == len(self.dir_terms) == len(self.dir_cnt)
              and len(self.dir_off) == -(-len(self.dir_terms) // DIR_SAMPLE) and len(self.ent_blk) == len(self.ent_code)
              and len(self.sum_min) == len(self.sum_scale) == self.n_blocks
              and (n == 0 or len(self.knn_nbrs) % n == 0))
        if not ok:
            raise IndexError_(f"{path}: array sizes disagree with each other (corrupt index)")

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
        # else takes the general path.
        if params or type(query) is not SparseVectors or len(query.indptr) != 2 or type(k) is not int or k < 1:
            return super().search(query, k, query_cut=query_cut, heap_factor=heap_factor, knn=knn,
                                  threads=1 if threads is None else threads, **params)
        scores = np.empty((1, k), dtype=np.float32)
        docs = np.empty((1, k), dtype=np.int64)
        self._search(self.check_queries(query), k, 1, scores, docs, query_cut, heap_factor, knn)
        return self.doc_ids.take(docs[0]), scores[0]

    def _search(self, q, k, threads, scores, docs, query_cut=None, heap_factor=None, knn=None, allowed=None,
                **_ignored) -> None:
        K = _kernels()
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
        # query vector, visited stamps, stamp counter (see kernels.seismic.search_serial)
        local.q = np.zeros(self.vocab.size, dtype=np.float32)
        local.visited = np.zeros(len(self), dtype=np.int32)
        local.stamp = np.zeros(1, dtype=np.int64)
