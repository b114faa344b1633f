"""SeismicIndex's build parameters, and its build, one function per phase.

``SeismicIndex.build`` (seismic.py) checks the input and the parameter
names, ``resolve_params`` fills in and checks the values, and
``build_arrays`` runs the phases in order, timing each:

1. ``prune``: the inverted lists, each cut to its heaviest postings;
2. ``cluster_into_blocks``: each list's documents clustered into blocks;
3. ``summarise``: per block, a quantised summary, stored term-major;
4. ``knn_graph`` (when knn > 0): each document's nearest block mates;
5. ``forward_index``: every document's full vector, for exact scoring.

The numba kernels they call are in lsr/kernels (seismic_build.py,
summaries.py, knn.py).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, fields

import numpy as np

from .base import resolve_threads
from .params import ParameterValueError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeismicBuildParams:
    """Everything ``SeismicIndex.build`` takes besides the vectors, with its default."""

    n_postings: int | None = None  # per list on average; None: by collection size (default_build_params); <= 0: no pruning
    max_fraction: float = 1.5  # no list keeps more than max_fraction * n_postings
    centroid_fraction: float = 0.1  # a list's centroids: this fraction of its documents, drawn at random
    min_cluster_size: int = 2  # clusters of at most this many documents are dissolved into the others
    summary_energy: float = 0.4  # the share of a block's L1 mass its summary keeps
    doc_cut: int = 15  # a document's heaviest terms, by which it is assigned to a centroid
    # The forward index's weights: "f16", "f32", or None / "auto": f16 when every weight fits
    # (choose_forward_dtype), else f32; the index records the choice and why (forward_dtype_reason).
    forward_dtype: str | None = None
    seed: int = 42
    knn: int = 0  # k-NN graph: neighbours stored per document (0: no graph); also the search default
    knn_blocks: int = 0  # neighbours are sought in the blocks of this many of a document's heaviest terms (0: all)
    # Not used by the build: stored with the index as its search defaults.
    query_cut: int = 10  # recall@10 ~0.99 on scifact; `lsr tune` refines
    heap_factor: float = 0.8
    # Not an input: the build writes why forward_dtype is what it is (a given value is replaced).
    forward_dtype_reason: str | None = None


# The defaults as dicts, under the names bench/ and older code import (from
# lsr.index.seismic): the build's own parameters, and the search defaults.
_SEARCH_NAMES = ("query_cut", "heap_factor")
BUILD_DEFAULTS = {f.name: f.default for f in fields(SeismicBuildParams) if f.name not in _SEARCH_NAMES}
SEARCH_DEFAULTS = {f.name: f.default for f in fields(SeismicBuildParams) if f.name in _SEARCH_NAMES}


def default_build_params(n_docs: int) -> dict:
    """Seismic's guidelines scaled to the collection.

    n_postings grows with the square root of the collection: 1,000 (where
    pruning rarely binds) up to about 160k documents, 2,500 at 1M (where
    1,000 capped recall@10 near 0.91 on the synthetic benchmark and 2,500
    reaches 0.95; docs/RESULTS.md), and the authors' 4,000 from about 2.6M
    documents on (they use 3,500-4,000 for MS MARCO's 8.8M passages).
    """
    return {"n_postings": int(min(4000, max(1000, round(2.5 * math.sqrt(max(n_docs, 0))))))}


# Value checks: integers with their lower bound (None: any; n_postings <= 0 turns pruning off), and finite
# numbers with their range: fractions of a list (centroids) and of a summary's mass (energy) in (0, 1].
_INTEGERS = {"knn": 0, "knn_blocks": 0, "doc_cut": 1, "min_cluster_size": 1, "query_cut": 1, "n_postings": None,
             "seed": None}
_NUMBERS = {"centroid_fraction": ("in (0, 1]", lambda x: 0 < x <= 1),
            "summary_energy": ("in (0, 1]", lambda x: 0 < x <= 1),
            "max_fraction": ("finite and > 0", lambda x: x > 0),
            "heap_factor": ("finite and >= 0", lambda x: x >= 0)}


def resolve_params(given: dict, n_docs: int, vectors=None, doc_ids=None) -> dict:
    """The build's parameters: the given ones over the defaults (None takes the default), values checked.

    The names are the caller's to check (``params.check``). The result is
    what the index stores as its ``params``. With ``vectors`` (the
    SparseVectors to index; ``doc_ids`` their ids, for messages) the
    forward index's dtype is settled here (choose_forward_dtype) and
    recorded with its reason; without them an unset forward_dtype is
    settled by forward_index(), unrecorded. Raises ParameterValueError (a
    ValueError) naming the parameter, its value and its range.
    """
    p = {**BUILD_DEFAULTS, **SEARCH_DEFAULTS, **{k: val for k, val in given.items() if val is not None}}
    p["forward_dtype_reason"] = None
    if p["n_postings"] is None:
        p.update(default_build_params(n_docs))
    if p["forward_dtype"] == "auto":
        p["forward_dtype"] = None
    if p["forward_dtype"] not in ("f16", "f32", None):
        raise ParameterValueError(f"forward_dtype must be 'f16' or 'f32', got {p['forward_dtype']!r} (or leave it "
                                  "unset, or 'auto': f16 when every weight fits, else f32)")
    for name, low in _INTEGERS.items():
        value = p[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (low is not None and value < low):
            raise ParameterValueError(f"{name} must be an integer" + (f" >= {low}" if low is not None else "") +
                                      f", got {value!r}")
    for name, (bound, ok) in _NUMBERS.items():
        value = p[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value) or not ok(value):
            raise ParameterValueError(f"{name} must be a number {bound}, got {value!r}")
    if vectors is not None:
        p["forward_dtype"], p["forward_dtype_reason"] = choose_forward_dtype(vectors, p["forward_dtype"], doc_ids)
    return p


def choose_forward_dtype(vectors, forward_dtype: str | None, doc_ids=None) -> tuple[str, str]:
    """(dtype, reason) of the forward index's weights for the SparseVectors ``vectors``.

    float16 halves the forward index but holds only 2**-24 (about 6e-8) to
    65504: a larger weight becomes inf (scores inf, hits in arbitrary order)
    and a smaller nonzero one becomes 0 (the term is lost). Unset (None):
    f16 when every weight survives the cast, else f32, logged. "f16" asked
    for explicitly with a weight it cannot hold: ParameterValueError naming
    the document (row and id), the term and the weight, and the fix. Real
    SPLADE weights fit: splade-tiny's on nfcorpus (914,398 weights) range
    from 2.4e-6 to 2.7.
    """
    if forward_dtype == "f32":
        return "f32", "given"
    from ..kernels.seismic_build import first_outside_f16
    bad = int(first_outside_f16(vectors.values)) if vectors.nnz else -1
    if bad < 0:
        return "f16", "given" if forward_dtype == "f16" else "auto: every weight is representable in float16"
    what = _unrepresentable(vectors, bad, doc_ids)
    if forward_dtype == "f16":
        raise ParameterValueError(f"forward_dtype='f16' cannot store {what}; use forward_dtype='f32' (or leave "
                                  "forward_dtype unset: the build then picks f32 itself), or rescale the vectors")
    reason = f"auto: float16 cannot store {what}"
    log.info("seismic build: forward index in float32 (%s)", reason)
    return "f32", reason


def _unrepresentable(vectors, pos: int, doc_ids) -> str:
    """'weight W of term T in document D (row R): why' for the weight at position ``pos``."""
    row = int(np.searchsorted(vectors.indptr, pos, side="right") - 1)
    value, term = vectors.values[pos], int(vectors.indices[pos])  # float32: prints as stored (1e-08, 70000.0)
    doc = ""
    if doc_ids is not None:
        doc = f" {str(doc_ids.take(np.array([row]))[0] if hasattr(doc_ids, 'take') else doc_ids[row])!r}"
    why = "above float16's largest value, 65504: it would become inf" if abs(value) >= 65504 \
        else "below float16's smallest nonzero value, 2**-24 (~6e-8): it would become 0"
    return f"weight {value!s} of term {vectors.vocab.token(term)!r} in document{doc} (row {row}): {why}"


def term_dtype(dim: int):
    """Term numbers' dtype in the stored arrays: uint16 halves them for BERT-size vocabularies."""
    return np.uint16 if dim <= 65536 else np.int32


def build_arrays(v, p: SeismicBuildParams, threads: int | None, progress: bool) -> tuple[dict, dict]:
    """Every array of a SeismicIndex over the SparseVectors ``v``, and the seconds each phase took."""
    import numba
    from tqdm.auto import tqdm
    n_docs, dim = len(v), v.vocab.size
    fwd = (v.indptr, v.indices, v.values)  # the documents, row by row: what every phase scores with
    timings = {}
    bar = tqdm(total=4 if p.knn else 3, desc="seismic build", unit="phase", disable=not progress)
    old_threads = numba.get_num_threads()
    numba.set_num_threads(resolve_threads(threads))
    try:
        t0 = time.perf_counter()
        list_ptr, list_docs = prune(v, p)
        timings["prune_s"] = time.perf_counter() - t0
        bar.set_postfix_str("clustering lists")
        bar.update()

        t0 = time.perf_counter()
        list_block_ptr, block_ptr, block_docs = cluster_into_blocks(list_ptr, list_docs, fwd, p, dim)
        del list_ptr, list_docs  # the blocks hold the same postings
        timings["cluster_s"] = time.perf_counter() - t0
        bar.set_postfix_str("summaries")
        bar.update()

        t0 = time.perf_counter()
        summaries = summarise(list_block_ptr, block_ptr, block_docs, fwd, p, dim)
        timings["summaries_s"] = time.perf_counter() - t0
        bar.update()

        knn_nbrs = np.zeros(0, dtype=np.int32)
        if p.knn:
            bar.set_postfix_str("k-NN graph")
            t0 = time.perf_counter()
            knn_nbrs = knn_graph(list_block_ptr, block_ptr, block_docs, fwd, p, n_docs, dim)
            timings["knn_s"] = time.perf_counter() - t0
            bar.update()
    finally:
        numba.set_num_threads(old_threads)
        bar.close()

    arrays = {"list_block_ptr": list_block_ptr, "block_ptr": block_ptr, "block_docs": block_docs.astype(np.int32),
              **summaries, **forward_index(block_docs, fwd, p, dim), "knn_nbrs": knn_nbrs}
    return arrays, timings


def prune(v, p: SeismicBuildParams) -> tuple[np.ndarray, np.ndarray]:
    """The inverted lists (list_ptr, list_docs; doc numbers ascending), statically pruned.

    The weight threshold spends a global budget of n_postings per non-empty
    list on the collection's heaviest postings, so a list of heavy weights
    keeps more than a list of light ones; no list keeps more than
    max_fraction * n_postings.
    """
    from ..kernels.seismic_build import prune_lists
    csc = v.to_scipy().tocsc()
    csc.sort_indices()
    list_ptr, list_docs = csc.indptr.astype(np.int64), csc.indices.astype(np.int32)
    if p.n_postings and p.n_postings > 0:
        budget = int(p.n_postings) * int(np.count_nonzero(np.diff(list_ptr)))
        cap = max(1, int(p.max_fraction * p.n_postings))
        threshold = np.float32(0.0)
        if budget < csc.data.shape[0]:
            threshold = np.partition(csc.data, csc.data.shape[0] - budget)[csc.data.shape[0] - budget]
        list_ptr, list_docs = prune_lists(list_ptr, list_docs, csc.data.astype(np.float32), np.float32(threshold), cap)
    return list_ptr, list_docs


def cluster_into_blocks(list_ptr, list_docs, fwd, p: SeismicBuildParams, dim: int):
    """(list_block_ptr, block_ptr, block_docs): each list's documents clustered, a block per cluster.

    A document joins the random centroid of its list (centroid_fraction of
    the list's documents) with which its doc_cut heaviest terms have the
    largest inner product; within a block, documents are in ascending order.
    """
    from ..kernels.seismic_build import cluster_lists, top_terms
    fwd_ptr, fwd_idx, fwd_val = fwd
    cut_ptr, cut_idx, cut_val = top_terms(fwd_ptr, fwd_idx, fwd_val, int(p.doc_cut))
    longest = int(np.diff(list_ptr).max()) if len(list_ptr) > 1 else 0
    max_centroids = max(1, math.ceil(p.centroid_fraction * longest))
    assign, _ = cluster_lists(list_ptr, list_docs, fwd_ptr, fwd_idx, fwd_val, cut_ptr, cut_idx, cut_val,
                              float(p.centroid_fraction), int(p.min_cluster_size), int(p.seed), dim, max_centroids)
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
    return list_block_ptr, block_ptr, block_docs


_SUMMARY_ARRAYS = ("dir_ptr", "dir_terms", "dir_cnt", "dir_off", "ent_blk", "ent_code")


def summarise(list_block_ptr, block_ptr, block_docs, fwd, p: SeismicBuildParams, dim: int) -> dict:
    """The blocks' summaries: the dir_* / ent_* arrays (term-major, per list), sum_min and sum_scale.

    A summary is the coordinate-wise max of the block's documents, pruned to
    summary_energy of its L1 mass and quantised to 8 bits (min + scale * code).
    """
    from ..kernels.summaries import summaries_by_term, summary_fill, summary_select
    fwd_ptr, fwd_idx, fwd_val = fwd
    energy = float(p.summary_energy)
    sizes, thresholds, ties = summary_select(block_ptr, block_docs, fwd_ptr, fwd_idx, fwd_val, energy, dim)
    sum_ptr = np.zeros(len(block_ptr), dtype=np.int64)
    np.cumsum(sizes, out=sum_ptr[1:])
    sum_terms32 = np.empty(sum_ptr[-1], dtype=np.int32)
    sum_codes = np.empty(sum_ptr[-1], dtype=np.uint8)
    sum_min = np.empty(len(block_ptr) - 1, dtype=np.float32)
    sum_scale = np.empty(len(block_ptr) - 1, dtype=np.float32)
    summary_fill(block_ptr, block_docs, fwd_ptr, fwd_idx, fwd_val, dim, thresholds, ties, sum_ptr,
                 sum_terms32, sum_codes, sum_min, sum_scale)
    # Block-major as written; the index stores them term-major.
    arrays = dict(zip(_SUMMARY_ARRAYS,
                      summaries_by_term(list_block_ptr, sum_ptr, sum_terms32, sum_codes, dim, term_dtype(dim))))
    arrays["sum_min"], arrays["sum_scale"] = sum_min, sum_scale
    return arrays


def knn_graph(list_block_ptr, block_ptr, block_docs, fwd, p: SeismicBuildParams, n_docs: int, dim: int) -> np.ndarray:
    """Per document, its knn best-scoring block mates (flat n_docs * knn, -1 padded); kernels/knn.py."""
    import numba

    from ..kernels import knn as knn_kernels
    fwd_ptr, fwd_idx, fwd_val = fwd
    doc_ptr, blocks_of = knn_kernels.doc_blocks(block_ptr, block_docs, n_docs)
    block_term = np.repeat(np.arange(dim, dtype=np.int32), np.diff(list_block_ptr))
    return knn_kernels.knn_graph(block_ptr, block_docs, block_term, doc_ptr, blocks_of, fwd_ptr.astype(np.int64),
                                 fwd_idx, fwd_val.astype(np.float32), int(p.knn),
                                 int(p.knn_blocks) or np.iinfo(np.int64).max, dim, 8 * numba.get_num_threads())


def forward_index(block_docs, fwd, p: SeismicBuildParams, dim: int) -> dict:
    """The documents' full vectors (fwd_*), and block_fwd: where each posting's document sits in them."""
    fwd_ptr, fwd_idx, fwd_val = fwd
    dtype = p.forward_dtype
    if dtype is None:  # unsettled (resolve_params got no vectors): the same choice, unrecorded
        from ..kernels.seismic_build import first_outside_f16
        dtype = "f16" if len(fwd_val) == 0 or first_outside_f16(fwd_val) < 0 else "f32"
    if dtype == "f16":
        fwd_codes, fwd_val_out = fwd_val.astype(np.float16).view(np.uint16), np.zeros(0, np.float32)
    else:
        fwd_codes, fwd_val_out = np.zeros(0, np.uint16), fwd_val.astype(np.float32)
    # Per posting, start << 16 | length: the search reads a document's place
    # with its posting instead of looking it up in fwd_ptr (a cache miss).
    doc_len = np.diff(fwd_ptr)
    block_fwd = (fwd_ptr[:-1][block_docs].astype(np.int64) << 16) | doc_len[block_docs].astype(np.int64)
    return {"block_fwd": block_fwd, "fwd_ptr": fwd_ptr.astype(np.int64), "fwd_idx": fwd_idx.astype(term_dtype(dim)),
            "fwd_val": fwd_val_out, "fwd_codes": fwd_codes}
