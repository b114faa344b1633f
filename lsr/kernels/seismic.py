"""Numba kernels of the Seismic-style index (Bruch et al., SIGIR 2024).

Build: cluster each (statically pruned) inverted list into blocks of
documents that are close by inner product, then give every block a summary
(coordinate-wise max of its documents, pruned to a share of its L1 mass and
quantised to 8 bits). Search: visit the query's heaviest terms' lists (the first one's blocks
best-first, the others' in stored order), score
a block's documents exactly (from the forward index) only when the block's
summary promises enough.

Forward-index weights are either float32 or float16 bit patterns (uint16):
numba has no float16 type on the CPU, so `simd.forward_dot` decodes them in
LLVM IR (F16C where the CPU has it, integer arithmetic where it does not).
"""
import numpy as np
from numba import njit, prange

from .simd import FILTER_WORDS, forward_dot, prefetch
from .topk import heap_push, heap_sorted

# ----------------------------------------------------------------- utilities


@njit(cache=True, inline="always")
def _splitmix(state):
    """One step of splitmix64: (new state, random uint64). Deterministic per list."""
    state = (state + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = state
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    return state, z ^ (z >> np.uint64(31))


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


# ------------------------------------------------------------------ blocking


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


# ----------------------------------------------------------------- summaries


@njit(cache=True)
def _block_max(block_docs, a, b, fwd_ptr, fwd_idx, fwd_val, dense, touched):
    """Coordinate-wise max of docs block_docs[a:b] into ``dense``; returns #terms touched."""
    n = 0
    for i in range(a, b):
        d = block_docs[i]
        for p in range(fwd_ptr[d], fwd_ptr[d + 1]):
            t = fwd_idx[p]
            v = fwd_val[p]
            if dense[t] == 0.0:
                touched[n] = t
                n += 1
            if v > dense[t]:
                dense[t] = v
    return n


@njit(cache=True)
def _energy_threshold(arr, energy):
    """Smallest set of largest values holding ``energy`` of the L1 mass, by selection.

    Returns (count, threshold, ties): keep every value > threshold plus
    ``ties`` values equal to it. Quickselect-style three-way partitioning:
    expected linear time, where sorting every block's union dominated the
    build. ``arr`` is reordered in place.
    """
    n = arr.shape[0]
    if n == 0:
        return 0, np.float32(0.0), 0
    need = energy * arr.sum()
    if energy >= 1.0:
        need = np.inf
    lo, hi, count = 0, n, 0
    state = np.uint64(n)
    while hi > lo:
        state, r = _splitmix(state)
        pivot = arr[lo + np.int64(r % np.uint64(hi - lo))]
        # three-way partition of arr[lo:hi]: > pivot | == pivot | < pivot
        g, i, e = lo, lo, hi
        while i < e:
            v = arr[i]
            if v > pivot:
                arr[i], arr[g] = arr[g], arr[i]
                g += 1
                i += 1
            elif v < pivot:
                e -= 1
                arr[i], arr[e] = arr[e], arr[i]
            else:
                i += 1
        s_greater = 0.0
        for j in range(lo, g):
            s_greater += arr[j]
        if s_greater >= need:
            hi = g
            continue
        need -= s_greater
        count += g - lo
        n_eq = e - g
        if pivot * n_eq >= need:
            ties = min(n_eq, max(1, int(np.ceil(need / pivot)))) if pivot > 0 else n_eq
            return count + ties, pivot, ties
        need -= pivot * n_eq
        count += n_eq
        lo = e
    # every value is needed (energy >= 1, or rounding): keep all
    return n, arr[:n].min(), n - np.sum(arr[:n] > arr[:n].min())


@njit(parallel=True, cache=True)
def summary_select(block_ptr, block_docs, fwd_ptr, fwd_idx, fwd_val, energy, vocab_size):
    """Per block: summary size, and the (threshold, ties) that select its entries."""
    n_blocks = block_ptr.shape[0] - 1
    sizes = np.zeros(n_blocks, dtype=np.int64)
    thresholds = np.zeros(n_blocks, dtype=np.float32)
    ties = np.zeros(n_blocks, dtype=np.int64)
    n_chunks = 64
    for ch in prange(n_chunks):
        dense = np.zeros(vocab_size, dtype=np.float32)
        touched = np.empty(vocab_size, dtype=np.int64)
        vals = np.empty(vocab_size, dtype=np.float32)
        for blk in range(ch, n_blocks, n_chunks):
            n = _block_max(block_docs, block_ptr[blk], block_ptr[blk + 1], fwd_ptr, fwd_idx, fwd_val, dense, touched)
            for i in range(n):
                vals[i] = dense[touched[i]]
                dense[touched[i]] = 0.0
            sizes[blk], thresholds[blk], ties[blk] = _energy_threshold(vals[:n], energy)
    return sizes, thresholds, ties


@njit(parallel=True, cache=True)
def summary_fill(block_ptr, block_docs, fwd_ptr, fwd_idx, fwd_val, vocab_size, thresholds, ties, sum_ptr,
                 sum_terms, sum_codes, sum_min, sum_scale):
    """Write each block's selected summary entries (in first-touched order), quantised to 8 bits."""
    n_blocks = block_ptr.shape[0] - 1
    n_chunks = 64
    for ch in prange(n_chunks):
        dense = np.zeros(vocab_size, dtype=np.float32)
        touched = np.empty(vocab_size, dtype=np.int64)
        for blk in range(ch, n_blocks, n_chunks):
            n = _block_max(block_docs, block_ptr[blk], block_ptr[blk + 1], fwd_ptr, fwd_idx, fwd_val, dense, touched)
            base, keep = sum_ptr[blk], sum_ptr[blk + 1] - sum_ptr[blk]
            thr, n_ties = thresholds[blk], ties[blk]
            kept = np.empty(keep, dtype=np.int64)
            m = 0
            for i in range(n):
                v = dense[touched[i]]
                if m < keep and (v > thr or (v == thr and n_ties > 0)):
                    if v == thr:
                        n_ties -= 1
                    kept[m] = touched[i]
                    m += 1
            # (no need to sort: summaries_by_term groups entries by term itself)
            lo, hi = np.inf, 0.0
            for i in range(m):
                v = dense[kept[i]]
                lo = min(lo, v)
                hi = max(hi, v)
            scale = (hi - lo) / 255.0 if hi > lo else 0.0
            sum_min[blk] = lo if m > 0 else 0.0
            sum_scale[blk] = scale
            for i in range(m):
                v = dense[kept[i]]
                sum_terms[base + i] = kept[i]
                sum_codes[base + i] = np.uint8(0 if scale == 0.0 else min(255, int(round((v - lo) / scale))))
            for i in range(n):
                dense[touched[i]] = 0.0


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

# Term-major summaries: sampled entry offsets, one per DIR_SAMPLE directory
# entries; the rest is a short sum of the per-term entry counts.
DIR_SAMPLE = 16


@njit(parallel=True, cache=True)
def _count_list_terms(list_block_ptr, sum_ptr, sum_terms, vocab_size):
    """Per list: how many distinct terms its blocks' summaries hold."""
    n_lists = list_block_ptr.shape[0] - 1
    counts = np.zeros(n_lists, dtype=np.int64)
    n_chunks = 64
    for ch in prange(n_chunks):
        mark = np.full(vocab_size, -1, dtype=np.int64)
        for t in range(ch, n_lists, n_chunks):
            c = 0
            for p in range(sum_ptr[list_block_ptr[t]], sum_ptr[list_block_ptr[t + 1]]):
                u = sum_terms[p]
                if mark[u] != t:
                    mark[u] = t
                    c += 1
            counts[t] = c
    return counts


@njit(parallel=True, cache=True)
def _fill_list_terms(list_block_ptr, sum_ptr, sum_terms, sum_codes, vocab_size, dir_ptr, dir_terms, dir_cnt,
                     dir_off, ent_blk, ent_code):
    n_lists = list_block_ptr.shape[0] - 1
    n_chunks = 64
    for ch in prange(n_chunks):
        mark = np.full(vocab_size, -1, dtype=np.int64)
        count = np.zeros(vocab_size, dtype=np.int64)
        pos = np.zeros(vocab_size, dtype=np.int64)
        for t in range(ch, n_lists, n_chunks):
            b0, b1 = list_block_ptr[t], list_block_ptr[t + 1]
            d0, d1 = dir_ptr[t], dir_ptr[t + 1]
            if d1 == d0:
                continue
            uniq = np.empty(d1 - d0, dtype=np.int64)
            m = 0
            for p in range(sum_ptr[b0], sum_ptr[b1]):
                u = sum_terms[p]
                if mark[u] != t:
                    mark[u] = t
                    count[u] = 0
                    uniq[m] = u
                    m += 1
                count[u] += 1
            uniq.sort()
            at = sum_ptr[b0]  # the list's entries keep their place, reordered term-major
            for i in range(m):
                u = uniq[i]
                g = d0 + i
                dir_terms[g] = u
                dir_cnt[g] = count[u] - 1  # every listed term has at least one entry
                if g % DIR_SAMPLE == 0:
                    dir_off[g // DIR_SAMPLE] = at
                pos[u] = at
                at += count[u]
            for b in range(b0, b1):  # blocks in order: entries of a term by ascending block
                for p in range(sum_ptr[b], sum_ptr[b + 1]):
                    u = sum_terms[p]
                    ent_blk[pos[u]] = b - b0
                    ent_code[pos[u]] = sum_codes[p]
                    pos[u] += 1


def summaries_by_term(list_block_ptr, sum_ptr, sum_terms, sum_codes, vocab_size, term_dtype):
    """Block-major summaries -> per-list, term-major layout (Seismic's).

    For each inverted list: a directory of the distinct terms its block
    summaries hold (ascending), each with its number of entries (stored
    minus one) and, per entry, the block (local to the list) and the 8-bit
    code. A query then touches only the entries of its own terms (about 3%
    of them on scifact) instead of scanning every summary.
    """
    counts = _count_list_terms(list_block_ptr, sum_ptr, sum_terms, vocab_size)
    dir_ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=dir_ptr[1:])
    max_blocks = int(np.diff(list_block_ptr).max()) if len(list_block_ptr) > 1 else 0
    small = np.uint8 if max_blocks <= 256 else np.uint16 if max_blocks <= 65536 else np.int32
    n_entries = int(sum_ptr[-1])
    dir_terms = np.empty(dir_ptr[-1], dtype=term_dtype)
    dir_cnt = np.empty(dir_ptr[-1], dtype=small)
    dir_off = np.zeros((int(dir_ptr[-1]) + DIR_SAMPLE - 1) // DIR_SAMPLE,
                       dtype=np.uint32 if n_entries < 2 ** 32 else np.int64)
    ent_blk = np.empty(n_entries, dtype=small)
    ent_code = np.empty(n_entries, dtype=np.uint8)
    _fill_list_terms(list_block_ptr, sum_ptr, sum_terms, sum_codes, vocab_size, dir_ptr, dir_terms, dir_cnt,
                     dir_off, ent_blk, ent_code)
    return dir_ptr, dir_terms, dir_cnt, dir_off, ent_blk, ent_code


# -------------------------------------------------------------------- search


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
