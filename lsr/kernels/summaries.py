"""Numba kernels for the block summaries of a Seismic index.

A block's summary is the coordinate-wise max of its documents, pruned to a
share (``energy``) of its L1 mass and quantised to 8 bits:
``summary_select`` sizes each one, ``summary_fill`` writes them block-major,
and ``summaries_by_term`` regroups them per list and term (Seismic's layout,
read by ``seismic_search._search_one`` through ``DIR_SAMPLE``-spaced offsets).
"""
import numpy as np
from numba import njit, prange

# The clustering's generator: _energy_threshold draws its pivots with it
# (inlined into the caller, so the import costs nothing at run time).
from .seismic_build import _splitmix

# Term-major summaries: sampled entry offsets, one per DIR_SAMPLE directory
# entries; the rest is a short sum of the per-term entry counts.
DIR_SAMPLE = 16


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


# ------------------------------------------------------- term-major layout


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
