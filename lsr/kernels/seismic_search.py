"""Numba search kernels of the Seismic index (Bruch et al., SIGIR 2024).

Visit the query's heaviest terms' lists (the first one's blocks best-first,
the others' in stored order) and score a block's documents exactly, from the
forward index, only when the block's summary promises enough; then, with a
k-NN graph, score the neighbours of the documents found. ``filtered_scan``
scores only the documents a selective metadata filter allows.

Forward-index weights are either float32 or float16 bit patterns (uint16):
numba has no float16 type on the CPU, so `simd.forward_dot` decodes them in
LLVM IR (F16C where the CPU has it, integer arithmetic where it does not).

The index these kernels read is built by ``seismic_build.py`` (pruning,
blocks) and ``summaries.py`` (block summaries, term-major).
"""
import numpy as np
from numba import njit, prange

from .simd import FILTER_WORDS, forward_dot, prefetch
from .summaries import DIR_SAMPLE
from .topk import heap_push, heap_sorted

# Queries with at most this many terms score documents with the filtered
# dot product of `simd.forward_dot` (a 1,024-bit filter of the query's terms
# first); above it the filter passes too many terms to pay (at 128 terms ~12%
# of a document's terms pass by chance) and the plain gather is used.
FILTER_MAX_TERMS = 128


@njit(cache=True)
def _load_query(q_idx, q_val, n_terms, q, qbits):
    """Scatter one query into the dense vector ``q`` and set its terms' bits in
    the filter ``qbits`` (both all zero on entry), leaving out terms >= n_terms;
    returns whether the query is short enough for the filtered dot product."""
    n = 0
    for j in range(q_idx.shape[0]):
        t = q_idx[j]
        if t < n_terms:
            q[t] = q_val[j]
            qbits[(t >> 5) & 31] |= np.uint32(1 << (t & 31))
            n += 1
    return n <= FILTER_MAX_TERMS


# How many documents of a block are being loaded ahead of the one scored
# (1 = none ahead). See _search_one.
PREFETCH_DEPTH = 3


# Hot-loop rules, measured on scifact and nfcorpus:
# * scoring is a gather from the dense query vector; `simd.sparse_dot` does it
#   eight lanes at a time (AVX2 gathers + F16C), ~1.6x faster per non-zero
#   than the best scalar loop; `simd.forward_dot`'s filtered path first
#   drops the document terms that a 1,024-bit filter of the query's terms
#   rules out (AVX-512), ~1.9x faster again on 250-term documents and short
#   queries;
# * no helper that takes arrays is called per document or per block: each
#   such call (inlined or not) costs numba an atomic incref/decref per array,
#   which was a quarter of the search time. Only intrinsics appear below.
#
# The index arrays travel as one tuple ``ix``:
#   (list_block_ptr, block_ptr, block_docs, block_fwd, dir_ptr, dir_terms,
#    dir_cnt, dir_off, ent_blk, ent_code, sum_min, sum_scale, fwd_idx,
#    fwd_val, fwd_codes, fwd_ptr, knn_nbrs)
# ``knn_nbrs`` is the k-NN graph (kernels/knn.py), flat n_docs * width,
# empty when the index has none; ``knn`` neighbours per result are scored.
# ``block_fwd`` holds, per posting, where its document sits in the forward
# index (start << 16 | length): no per-document table lookup (a cache miss on
# large collections) before scoring. ``f16`` says the forward values are
# float16 bit patterns in ``fwd_codes`` (else float32 in ``fwd_val``); ``pf``
# turns on software prefetching of documents; the index enables it once the
# forward index outgrows a core's L2 cache (SeismicIndex.PREFETCH_MIN_BYTES),
# below which it is pure instruction overhead.


@njit(cache=True)
def _search_one(q_idx, q_val, k, query_cut, heap_factor, knn, f16, pf, q, visited, stamp, ix, allowed, out_scores,
                out_docs):
    (list_block_ptr, block_ptr, block_docs, block_fwd, dir_ptr, dir_terms, dir_cnt, dir_off, ent_blk, ent_code,
     sum_min, sum_scale, fwd_idx, fwd_val, fwd_codes, fwd_ptr, knn_nbrs) = ix
    n_terms = list_block_ptr.shape[0] - 1
    # A metadata filter (``allowed``: one bool per document; empty: none)
    # is applied where documents are scored: a document it excludes is
    # marked visited and never scored, and cannot raise the heap threshold.
    filtered = allowed.shape[0] > 0
    qbits = np.zeros(FILTER_WORDS, dtype=np.uint32)
    short = _load_query(q_idx, q_val, n_terms, q, qbits)  # once per query: a helper call is affordable here
    hs = np.empty(k, dtype=np.float32)
    hd = np.empty(k, dtype=np.int64)
    size = 0
    order = np.argsort(-q_val, kind="mergesort")
    first_list = False
    keys = np.empty(0, dtype=np.uint64)
    # query_cut counts the lists visited: a query term without postings
    # (never in a document, or pruned away) gives up its place to the next
    # heaviest term instead of spending one of the query_cut lists on nothing.
    n_lists = 0
    for ci in range(order.shape[0]):
        if n_lists == query_cut:
            break
        t = q_idx[order[ci]]
        if t >= n_terms:
            continue
        b0, b1 = list_block_ptr[t], list_block_ptr[t + 1]
        if b1 == b0:
            continue
        n_lists += 1
        first_list = n_lists == 1 or size == 0  # the heaviest term's list (or the first that has blocks)
        # Block summary scores, <q, min + scale * code> over each summary's
        # terms = min * sum(q_u) + scale * sum(q_u * code_u), accumulated
        # term-major: for each query term (ascending, as the directory), find
        # it in the list's directory and add its entries to their blocks.
        nb = b1 - b0
        acc = np.zeros(nb, dtype=np.float32)
        qsum = np.zeros(nb, dtype=np.float32)
        lo, d_end = dir_ptr[t], dir_ptr[t + 1]
        for j in range(q_idx.shape[0]):
            u = q_idx[j]
            if u >= n_terms:
                break
            hi = d_end
            while lo < hi:  # first directory entry >= u, searching only past the previous term's
                mid = (lo + hi) >> 1
                if dir_terms[mid] < u:
                    lo = mid + 1
                else:
                    hi = mid
            if lo == d_end:
                break
            if dir_terms[lo] != u:
                continue
            w = q_val[j]
            sample = lo // DIR_SAMPLE
            first = np.int64(dir_off[sample])
            for i in range(sample * DIR_SAMPLE, lo):
                first += np.int64(dir_cnt[i]) + 1
            for ent in range(first, first + np.int64(dir_cnt[lo]) + 1):
                bl = ent_blk[ent]
                acc[bl] += w * np.float32(ent_code[ent])
                qsum[bl] += w
        scores = np.empty(nb, dtype=np.float32)
        for i in range(nb):
            scores[i] = sum_min[b0 + i] * qsum[i] + sum_scale[b0 + i] * acc[i]
        # The first list best-first, so that good documents fill the heap
        # early and the threshold rises; later lists in stored order, each
        # block checked against the threshold as it stands (Seismic's
        # default). Sorting every list cost more than it saved here.
        # The sort: (descending score, block) packed into uint64 keys.
        if first_list:
            bits = scores.view(np.uint32)
            keys = np.empty(nb, dtype=np.uint64)
            for i in range(nb):
                o = bits[i] ^ np.uint32(0x80000000) if bits[i] < np.uint32(0x80000000) else ~bits[i]
                keys[i] = (np.uint64(~o) << np.uint64(32)) | np.uint64(i)
            keys.sort()
        for vi in range(nb):
            bi = np.int64(keys[vi] & np.uint64(0xFFFFFFFF)) if first_list else vi
            if size == k and scores[bi] < heap_factor * hs[0]:
                if first_list:
                    break  # sorted: every later block scores lower still
                continue
            blk = b0 + bi
            pa, pb = block_ptr[blk], block_ptr[blk + 1]
            # Keep PREFETCH_DEPTH documents in flight: on a large collection
            # every document is a cache miss, and several outstanding loads
            # overlap their latency (one ahead left most of it exposed). The
            # loop starts PREFETCH_DEPTH - 1 steps early, only requesting, so
            # a block's first documents are on their way before it is scored.
            for p in range(pa - (PREFETCH_DEPTH - 1) if pf else pa, pb):
                ahead = p + PREFETCH_DEPTH - 1
                if pf and ahead < pb:
                    nxt = block_fwd[ahead]
                    prefetch(visited, block_docs[ahead])
                    for r in range(nxt >> 16, (nxt >> 16) + (nxt & 0xFFFF), 32):
                        prefetch(fwd_idx, r)
                        if f16:
                            prefetch(fwd_codes, r)
                        else:
                            prefetch(fwd_val, r)
                if p < pa:
                    continue
                d = block_docs[p]
                if visited[d] == stamp:
                    continue
                visited[d] = stamp
                if filtered and not allowed[d]:
                    continue
                packed = block_fwd[p]
                start = packed >> 16
                stop = start + (packed & 0xFFFF)
                s = forward_dot(q, qbits, short, fwd_idx, fwd_codes, fwd_val, f16, start, stop)
                # inline admission test: most documents do not enter the heap
                if s > 0.0 and (size < k or s > hs[0] or (s == hs[0] and d < hd[0])):
                    size = heap_push(hs, hd, size, k, s, d)
    # k-NN refinement (CIKM 2024): score the graph neighbours of the
    # documents found so far. Two passes: collect the unvisited neighbours
    # (requesting their rows from memory), then score them, so the loads of
    # one pass overlap instead of each stalling the dot product after it.
    n_docs = fwd_ptr.shape[0] - 1
    width = knn_nbrs.shape[0] // n_docs if n_docs > 0 else 0
    m = min(knn, width)
    if m > 0 and size > 0:
        cand = np.empty(size * m, dtype=np.int64)
        n_cand = 0
        for si in range(size):
            base = hd[si] * width
            for j in range(m):
                e = knn_nbrs[base + j]
                if e < 0:
                    break
                if visited[e] == stamp:
                    continue
                visited[e] = stamp
                if filtered and not allowed[e]:
                    continue
                cand[n_cand] = e
                n_cand += 1
                if pf:
                    for r in range(fwd_ptr[e], fwd_ptr[e + 1], 32):
                        prefetch(fwd_idx, r)
                        if f16:
                            prefetch(fwd_codes, r)
                        else:
                            prefetch(fwd_val, r)
        for ci in range(n_cand):
            d = cand[ci]
            s = forward_dot(q, qbits, short, fwd_idx, fwd_codes, fwd_val, f16, fwd_ptr[d], fwd_ptr[d + 1])
            if s > 0.0 and (size < k or s > hs[0] or (s == hs[0] and d < hd[0])):
                size = heap_push(hs, hd, size, k, s, d)
    for j in range(q_idx.shape[0]):
        if q_idx[j] < n_terms:
            q[q_idx[j]] = 0.0
    heap_sorted(hs, hd, size, out_scores, out_docs)


@njit(cache=True)
def _search_range(lo, hi, step, q_ptr, q_idx, q_val, k, query_cut, heap_factor, knn, f16, pf, n_docs, ix,
                  allowed, out_scores, out_docs):
    q = np.zeros(ix[0].shape[0] - 1, dtype=np.float32)
    visited = np.zeros(n_docs, dtype=np.int32)
    stamp = 0
    for qi in range(lo, hi, step):
        stamp += 1
        a, b = q_ptr[qi], q_ptr[qi + 1]
        _search_one(q_idx[a:b], q_val[a:b], k, query_cut, heap_factor, knn, f16, pf, q, visited, stamp, ix,
                    allowed, out_scores[qi], out_docs[qi])


@njit(cache=True)
def search_serial(q_ptr, q_idx, q_val, k, query_cut, heap_factor, knn, f16, pf, ix, allowed, q, visited, stamp,
                  out_scores, out_docs):
    """Queries one after another on the calling thread, with caller-owned scratch.

    ``q`` (vocabulary-sized, all zero) and ``visited`` (one int per document)
    are reused across calls: allocating and zeroing them per query would cost
    more than the search itself on a large collection. ``stamp[0]`` marks the
    current query in ``visited``; it restarts at 0 after clearing.
    """
    for qi in range(q_ptr.shape[0] - 1):
        if stamp[0] >= 2147483000:
            visited[:] = 0
            stamp[0] = 0
        stamp[0] += 1
        a, b = q_ptr[qi], q_ptr[qi + 1]
        _search_one(q_idx[a:b], q_val[a:b], k, query_cut, heap_factor, knn, f16, pf, q, visited, stamp[0], ix,
                    allowed, out_scores[qi], out_docs[qi])


@njit(parallel=True, cache=True)
def search_parallel(q_ptr, q_idx, q_val, k, query_cut, heap_factor, knn, f16, pf, n_docs, ix, allowed, out_scores,
                    out_docs):
    n_q = q_ptr.shape[0] - 1
    n_chunks = min(n_q, 64)
    for c in prange(n_chunks):
        _search_range(c, n_q, n_chunks, q_ptr, q_idx, q_val, k, query_cut, heap_factor, knn, f16, pf, n_docs, ix,
                      allowed, out_scores, out_docs)


@njit(parallel=True, cache=True)
def filtered_scan(q_ptr, q_idx, q_val, k, ids, fwd_ptr, fwd_idx, fwd_val, fwd_codes, f16, vocab_size, out_scores,
                  out_docs):
    """Exact top-k over the documents in ``ids`` only, from the forward index.

    For a selective metadata filter: scoring the few allowed documents
    directly is exact and cheaper than the pruned inverted lists, which may
    not reach them at all (static pruning keeps each list's heaviest
    postings, whichever documents those are).
    """
    n_q = q_ptr.shape[0] - 1
    for qi in prange(n_q):
        q = np.zeros(vocab_size, dtype=np.float32)
        qbits = np.zeros(FILTER_WORDS, dtype=np.uint32)
        short = _load_query(q_idx[q_ptr[qi]:q_ptr[qi + 1]], q_val[q_ptr[qi]:q_ptr[qi + 1]], vocab_size, q, qbits)
        hs = np.empty(k, dtype=np.float32)
        hd = np.empty(k, dtype=np.int64)
        size = 0
        for i in range(ids.shape[0]):
            d = ids[i]
            s = forward_dot(q, qbits, short, fwd_idx, fwd_codes, fwd_val, f16, fwd_ptr[d], fwd_ptr[d + 1])
            if s > 0.0 and (size < k or s > hs[0] or (s == hs[0] and d < hd[0])):
                size = heap_push(hs, hd, size, k, s, d)
        heap_sorted(hs, hd, size, out_scores[qi], out_docs[qi])
