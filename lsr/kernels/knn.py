"""Document k-NN graph for result refinement (Bruch et al., CIKM 2024).

After the inverted-index phase of a search, scoring the stored neighbours
of the top-k documents recovers true neighbours that sat in skipped blocks
or pruned lists: good documents cluster, so a near miss is usually close to
a hit. The graph holds, per document, ``kappa`` other documents of high
inner product with it.

How we find them (our choice, not the paper's): the paper builds the graph
by searching the index with every document as the query, which costs about
as much as a million searches on a million documents (~1 ms each here). The
blocks of the index are already clusters of documents close by inner
product, so a document's neighbours are mostly among its *block mates*.
Per document we score, exactly, the members of its blocks in the lists of
its ``max_blocks`` heaviest terms (default all) and keep the best
``kappa``. On 200k synthetic documents (docs/RESULTS.md) block mates of all
blocks refined as well as a graph from index searches (query_cut 5,
heap_factor 0.7) at 40% of its cost; the 10 heaviest terms' blocks gave
most of the gain at a quarter of that again.
"""
import numpy as np
from numba import njit, prange

from .simd import sparse_dot
from .topk import heap_push, heap_sorted


@njit(cache=True)
def doc_blocks(block_ptr, block_docs, n_docs):
    """Invert the blocks: (doc_ptr, blocks) listing, per document, the blocks that hold it."""
    counts = np.zeros(n_docs + 1, dtype=np.int64)
    for p in range(block_docs.shape[0]):
        counts[block_docs[p] + 1] += 1
    for d in range(n_docs):
        counts[d + 1] += counts[d]
    ptr = counts.copy()
    out = np.empty(block_docs.shape[0], dtype=np.int32)
    fill = ptr[:-1].copy()
    for b in range(block_ptr.shape[0] - 1):
        for p in range(block_ptr[b], block_ptr[b + 1]):
            d = block_docs[p]
            out[fill[d]] = b
            fill[d] += 1
    return ptr, out


@njit(parallel=True, cache=True)
def knn_graph(block_ptr, block_docs, block_term, doc_ptr, blocks_of, fwd_ptr, fwd_idx, fwd_val, kappa, max_blocks,
              vocab_size, n_chunks):
    """Per document its ``kappa`` best block mates by inner product, best first; -1 pads.

    Flat int32 array of n_docs * kappa. Documents go round-robin to
    ``n_chunks`` workers, each with its own dense vector and seen-stamps.
    """
    n = fwd_ptr.shape[0] - 1
    out = np.full(n * kappa, -1, dtype=np.int32)
    for c in prange(n_chunks):
        dense = np.zeros(vocab_size, dtype=np.float32)
        seen = np.zeros(n, dtype=np.int32)
        hs = np.empty(kappa, dtype=np.float32)
        hd = np.empty(kappa, dtype=np.int64)
        ss = np.empty(kappa, dtype=np.float32)
        sd = np.empty(kappa, dtype=np.int64)
        for d in range(c, n, n_chunks):
            for j in range(fwd_ptr[d], fwd_ptr[d + 1]):
                dense[fwd_idx[j]] = fwd_val[j]
            seen[d] = d + 1  # stamps are d + 1: unique per document, so never reset
            a, b = doc_ptr[d], doc_ptr[d + 1]
            # the document's blocks, heaviest term first
            w = np.empty(b - a, dtype=np.float32)
            for i in range(b - a):
                w[i] = -dense[block_term[blocks_of[a + i]]]
            order = np.argsort(w, kind="mergesort")
            size = 0
            for i in range(min(b - a, max_blocks)):
                blk = blocks_of[a + order[i]]
                for p in range(block_ptr[blk], block_ptr[blk + 1]):
                    e = block_docs[p]
                    if seen[e] == d + 1:
                        continue
                    seen[e] = d + 1
                    s = sparse_dot(dense, fwd_idx, fwd_val, fwd_ptr[e], fwd_ptr[e + 1])
                    if s > 0.0 and (size < kappa or s > hs[0] or (s == hs[0] and e < hd[0])):
                        size = heap_push(hs, hd, size, kappa, s, e)
            heap_sorted(hs, hd, size, ss, sd)
            for i in range(size):
                out[d * kappa + i] = sd[i]
            for j in range(fwd_ptr[d], fwd_ptr[d + 1]):
                dense[fwd_idx[j]] = 0.0
    return out
