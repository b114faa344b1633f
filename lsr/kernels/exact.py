"""Exact sparse inner-product search over inverted lists (term-at-a-time).

For each query: accumulate ``q_t * w_{t,d}`` into a dense per-document
score array over the query terms' full posting lists, then keep the top k
documents with a positive score. No pruning, so it is exact: the reference
the approximate index is measured against.
"""
import numpy as np
from numba import njit, prange

from .topk import heap_push, heap_sorted


@njit(cache=True)
def _search_one(q_idx, q_val, post_ptr, post_docs, post_vals, n_docs, k, allowed, acc, touched,
                out_scores, out_docs):
    n_touched = 0
    filtered = allowed.shape[0] > 0  # a metadata filter: documents with allowed[d] == 0 are never scored
    n_terms = post_ptr.shape[0] - 1
    for j in range(q_idx.shape[0]):
        t = q_idx[j]
        if t < 0 or t >= n_terms:
            continue  # a term the index has never seen scores nothing
        w = q_val[j]
        for p in range(post_ptr[t], post_ptr[t + 1]):
            c = w * post_vals[p]
            if c <= 0.0:
                continue  # keeps "acc == 0" meaning "not yet touched"
            d = post_docs[p]
            if filtered and not allowed[d]:
                continue
            if acc[d] == 0.0:
                touched[n_touched] = d
                n_touched += 1
            acc[d] += c
    hs = np.empty(k, dtype=np.float32)
    hd = np.empty(k, dtype=np.int64)
    size = 0
    for i in range(n_touched):
        d = touched[i]
        s = acc[d]
        acc[d] = 0.0  # leave the accumulator clean for the next query
        if s > 0.0:
            size = heap_push(hs, hd, size, k, s, d)
    heap_sorted(hs, hd, size, out_scores, out_docs)


@njit(cache=True)
def batch_search_serial(q_ptr, q_idx, q_val, post_ptr, post_docs, post_vals, n_docs, k, allowed, acc, touched,
                        out_scores, out_docs):
    """Same as batch_search on the calling thread: no thread-pool launch for one query.

    ``acc`` (float32, all zero) and ``touched`` (int64) are n_docs long and
    owned by the caller, reused across calls: allocating 12 bytes per
    document for every query cost more than a short query's search.
    ``acc`` is left all zero again. ``allowed`` (bool, n_docs long, or empty
    for no filter) restricts the search to the documents it marks.
    """
    for qi in range(q_ptr.shape[0] - 1):
        a, b = q_ptr[qi], q_ptr[qi + 1]
        _search_one(q_idx[a:b], q_val[a:b], post_ptr, post_docs, post_vals, n_docs, k,
                    allowed, acc, touched, out_scores[qi], out_docs[qi])


@njit(parallel=True, cache=True)
def batch_search(q_ptr, q_idx, q_val, post_ptr, post_docs, post_vals, n_docs, k, allowed, out_scores, out_docs):
    """Search every query row of a CSR batch; rows are split over threads."""
    n_q = q_ptr.shape[0] - 1
    n_chunks = min(n_q, 64)
    for c in prange(n_chunks):
        # One accumulator per chunk of queries, reused (and re-zeroed
        # sparsely) across its queries instead of allocated per query.
        acc = np.zeros(n_docs, dtype=np.float32)
        touched = np.empty(n_docs, dtype=np.int64)
        for qi in range(c, n_q, n_chunks):
            a, b = q_ptr[qi], q_ptr[qi + 1]
            _search_one(q_idx[a:b], q_val[a:b], post_ptr, post_docs, post_vals, n_docs, k,
                        allowed, acc, touched, out_scores[qi], out_docs[qi])
