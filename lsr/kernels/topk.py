"""Bounded top-k selection used by every search kernel.

Ordering is total and deterministic: higher score first, and on equal
scores the lower document number first. Exact and approximate indexes use
the same rule, so their results can be compared position by position.
"""
import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _worse(s1, d1, s2, d2):
    """True if (s1, d1) ranks below (s2, d2)."""
    return s1 < s2 or (s1 == s2 and d1 > d2)


@njit(cache=True)
def heap_push(hs, hd, size, k, score, doc):
    """Offer (score, doc) to a min-heap of capacity k; returns the new size.

    ``hs``/``hd`` hold scores and docs; the root is the worst kept entry.
    """
    if size < k:
        i = size
        hs[i] = score
        hd[i] = doc
        size += 1
        while i > 0:  # sift up
            p = (i - 1) >> 1
            if _worse(hs[i], hd[i], hs[p], hd[p]):
                hs[i], hs[p] = hs[p], hs[i]
                hd[i], hd[p] = hd[p], hd[i]
                i = p
            else:
                break
        return size
    if not _worse(hs[0], hd[0], score, doc):
        return size
    hs[0] = score
    hd[0] = doc
    _sift_down(hs, hd, size, 0)
    return size


@njit(cache=True)
def _sift_down(hs, hd, size, i):
    while True:
        l = 2 * i + 1  # noqa: E741  (left child, as in every heap text)
        r = l + 1
        m = i
        if l < size and _worse(hs[l], hd[l], hs[m], hd[m]):
            m = l
        if r < size and _worse(hs[r], hd[r], hs[m], hd[m]):
            m = r
        if m == i:
            return
        hs[i], hs[m] = hs[m], hs[i]
        hd[i], hd[m] = hd[m], hd[i]
        i = m


@njit(cache=True)
def heap_sorted(hs, hd, size, out_scores, out_docs):
    """Empty the heap into the outputs best-first; pad the rest with (-inf, -1).

    Popping a min-heap yields the worst entry first, so fill from the back.
    """
    for i in range(size, out_scores.shape[0]):
        out_scores[i] = -np.inf
        out_docs[i] = -1
    while size > 0:
        size -= 1
        out_scores[size] = hs[0]
        out_docs[size] = hd[0]
        hs[0] = hs[size]
        hd[0] = hd[size]
        _sift_down(hs, hd, size, 0)
