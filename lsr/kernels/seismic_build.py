"""Numba kernels that build a Seismic index's blocks: static pruning and clustering.

* ``prune_lists``: keep each inverted list's heaviest postings (a global
  weight threshold, and at most ``cap`` per list);
* ``top_terms``: each document's heaviest terms, the sketch clustering uses;
* ``cluster_lists``: split every list into blocks of documents close by inner
  product (random centroids drawn from the list).

The block summaries are in ``summaries.py``, search in ``seismic_search.py``
(the layout follows the modules of Seismic's Rust crate).
"""
import numpy as np
from numba import njit, prange


# Deterministic random numbers (clustering's centroid draws; summaries.py's
# selection pivots), the same on every platform and numba version.
@njit(cache=True, inline="always")
def _splitmix(state):
    """One step of splitmix64: (new state, random uint64). Deterministic per list."""
    state = (state + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = state
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    return state, z ^ (z >> np.uint64(31))


# ------------------------------------------------------------ static pruning


@njit(parallel=True, cache=True)
def prune_lists(ptr, docs, vals, threshold, cap):
    """Keep, per list, postings with weight >= threshold, at most ``cap`` of the heaviest.

    Returns the new (ptr, docs) with doc ids ascending within each list.
    """
    n = ptr.shape[0] - 1
    keep = np.zeros(n, dtype=np.int64)
    for t in prange(n):
        c = 0
        for p in range(ptr[t], ptr[t + 1]):
            if vals[p] >= threshold:
                c += 1
        keep[t] = min(c, cap)
    new_ptr = np.zeros(n + 1, dtype=np.int64)
    for t in range(n):
        new_ptr[t + 1] = new_ptr[t] + keep[t]
    new_docs = np.empty(new_ptr[n], dtype=np.int32)
    for t in prange(n):
        a, b = ptr[t], ptr[t + 1]
        if keep[t] == b - a:
            new_docs[new_ptr[t]:new_ptr[t + 1]] = docs[a:b]
        elif keep[t] > 0:
            order = np.argsort(-vals[a:b], kind="mergesort")[: keep[t]]
            new_docs[new_ptr[t]:new_ptr[t + 1]] = np.sort(docs[a:b][order])
    return new_ptr, new_docs


# ----------------------------------------------------------------- clustering


@njit(parallel=True, cache=True)
def top_terms(indptr, indices, values, cut):
    """Per document, its ``cut`` heaviest (term, weight) pairs: the sketch used for clustering."""
    n = indptr.shape[0] - 1
    ptr = np.zeros(n + 1, dtype=np.int64)
    for d in range(n):
        ptr[d + 1] = ptr[d] + min(cut, indptr[d + 1] - indptr[d])
    out_idx = np.empty(ptr[n], dtype=np.int32)
    out_val = np.empty(ptr[n], dtype=np.float32)
    for d in prange(n):
        a, b = indptr[d], indptr[d + 1]
        order = np.argsort(-values[a:b], kind="mergesort")[: ptr[d + 1] - ptr[d]]
        for j in range(order.shape[0]):
            out_idx[ptr[d] + j] = indices[a + order[j]]
            out_val[ptr[d] + j] = values[a + order[j]]
    return ptr, out_idx, out_val


@njit(cache=True)
def _cluster_one(docs, fwd_ptr, fwd_idx, fwd_val, cut_ptr, cut_idx, cut_val, n_centroids,
                 min_cluster_size, seed, start, count, acc, assign):
    """Assign each doc of one list to its best random centroid; returns #clusters.

    Centroids are ``n_centroids`` documents of the list drawn at random. A
    document goes to the centroid with the largest inner product between the
    document's sketch (heaviest terms) and the centroid's full vector (ties:
    the lowest centroid number), found through a small inverted index of the
    centroids stored contiguously per term (``start``/``count`` are per-thread
    vocabulary-sized arrays; ``count`` is left all zero on return). The
    assignment loop calls no helper that takes arrays: numba would pay an
    atomic reference-count update per array per document.
    """
    m = docs.shape[0]
    if n_centroids <= 1 or m <= min_cluster_size:
        assign[:] = 0
        return 1
    # Draw centroid positions: partial Fisher-Yates over 0..m-1.
    perm = np.arange(m)
    state = np.uint64(seed)
    for i in range(n_centroids):
        state, r = _splitmix(state)
        j = i + np.int64(r % np.uint64(m - i))
        perm[i], perm[j] = perm[j], perm[i]
    # Inverted index of the centroids' terms, CSR over the terms they touch.
    total = 0
    for c in range(n_centroids):
        d = docs[perm[c]]
        total += fwd_ptr[d + 1] - fwd_ptr[d]
    terms = np.empty(total, dtype=np.int64)
    n_terms = 0
    for c in range(n_centroids):
        d = docs[perm[c]]
        for p in range(fwd_ptr[d], fwd_ptr[d + 1]):
            t = fwd_idx[p]
            if count[t] == 0:
                terms[n_terms] = t
                n_terms += 1
            count[t] += 1
    at = 0
    for i in range(n_terms):
        t = terms[i]
        start[t] = at
        at += count[t]
        count[t] = 0  # refilled below as the fill cursor
    who = np.empty(total, dtype=np.int32)
    wgt = np.empty(total, dtype=np.float32)
    for c in range(n_centroids):
        d = docs[perm[c]]
        for p in range(fwd_ptr[d], fwd_ptr[d + 1]):
            t = fwd_idx[p]
            e = start[t] + count[t]
            who[e] = c
            wgt[e] = fwd_val[p]
            count[t] += 1
    alive = np.ones(n_centroids, dtype=np.bool_)
    sizes = np.zeros(n_centroids, dtype=np.int64)
    # Pass 0: every document against every centroid. Pass 1: the documents
    # of clusters of 1..min_cluster_size documents (dissolved: tiny blocks
    # cost a summary each and are rarely worth skipping separately) against
    # every other centroid, including any that attracted no document in
    # pass 0, as Seismic does (in practice such a centroid is almost never
    # chosen: the assignments on a 100k synthetic set were identical).
    for rnd in range(2):
        if rnd == 1:
            n_alive = 0
            for c in range(n_centroids):
                alive[c] = sizes[c] == 0 or sizes[c] > min_cluster_size
                n_alive += sizes[c] > min_cluster_size
            if n_alive == 0:  # every cluster dissolves: keep the largest
                alive[np.argmax(sizes)] = True
        for i in range(m):
            if rnd == 1 and alive[assign[i]]:
                continue
            d = docs[i]
            for p in range(cut_ptr[d], cut_ptr[d + 1]):
                u = cut_idx[p]
                n_u = count[u]
                if n_u == 0:
                    continue
                v = cut_val[p]
                s0 = start[u]
                for x in range(s0, s0 + n_u):
                    acc[who[x]] += v * wgt[x]
            best, best_c = -1.0, -1
            for c in range(n_centroids):
                if alive[c] and acc[c] > best:
                    best, best_c = acc[c], c
                acc[c] = 0.0
            assign[i] = best_c
            if rnd == 0:
                sizes[best_c] += 1
    final = np.zeros(n_centroids, dtype=np.int64)
    for i in range(m):
        final[assign[i]] += 1
    relabel = np.full(n_centroids, -1, dtype=np.int64)
    n_out = 0
    for c in range(n_centroids):
        if final[c] > 0:
            relabel[c] = n_out
            n_out += 1
    for i in range(m):
        assign[i] = relabel[assign[i]]
    for i in range(n_terms):
        count[terms[i]] = 0
    return n_out


@njit(parallel=True, cache=True)
def cluster_lists(list_ptr, list_docs, fwd_ptr, fwd_idx, fwd_val, cut_ptr, cut_idx, cut_val,
                  centroid_fraction, min_cluster_size, seed, vocab_size, max_centroids):
    """Cluster every inverted list; returns per-posting cluster ids and per-list cluster counts."""
    n_lists = list_ptr.shape[0] - 1
    assign = np.zeros(list_docs.shape[0], dtype=np.int32)
    n_clusters = np.zeros(n_lists, dtype=np.int64)
    n_chunks = 64
    for ch in prange(n_chunks):
        start = np.zeros(vocab_size, dtype=np.int64)
        count = np.zeros(vocab_size, dtype=np.int64)
        acc = np.zeros(max_centroids + 1, dtype=np.float32)
        for t in range(ch, n_lists, n_chunks):
            a, b = list_ptr[t], list_ptr[t + 1]
            if b == a:
                continue
            n_c = min(max_centroids, max(1, int(centroid_fraction * (b - a))))
            n_clusters[t] = _cluster_one(list_docs[a:b], fwd_ptr, fwd_idx, fwd_val, cut_ptr, cut_idx, cut_val,
                                         n_c, min_cluster_size, seed * 1000003 + t, start, count, acc,
                                         assign[a:b])
    return assign, n_clusters


# ------------------------------------------------------- float16 storage


# float16's limits under round-to-nearest-even: a float32 at or above 65520
# (halfway past the largest finite half, 65504) becomes inf, and a positive
# one at or below 2**-25 (halfway to the smallest subnormal, 2**-24) becomes 0.
F16_OVERFLOW = np.float32(65520.0)
F16_UNDERFLOW = np.float32(2.0 ** -25)


@njit(cache=True)
def first_outside_f16(values):
    """Position of the first value float16 cannot represent (inf after the cast, or a
    nonzero that rounds to 0), or -1: one pass, no temporaries (the forward index of a
    large collection holds hundreds of millions of weights)."""
    for i in range(values.shape[0]):
        v = values[i]
        if v >= F16_OVERFLOW or v <= -F16_OVERFLOW or (v != 0.0 and -F16_UNDERFLOW <= v <= F16_UNDERFLOW):
            return i
    return -1
