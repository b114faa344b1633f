"""Fusing result lists: convex combination of normalised scores, and reciprocal rank fusion.

Every list is (document numbers, scores) of shape (n_queries, k) as the
indexes return them (-1 / -inf pad empty slots). Per query:

* **convex** (Pyserini's hybrid searcher, ranx's ``wsum``): each list's
  scores are normalised (``minmax``: to [0, 1]; ``zscore``: mean 0, sd 1;
  ``none``: raw), then ``fused(d) = sum_i w_i * norm_i(d)``.
  *A document missing from list i* takes list i's **lowest normalised
  score** (0 under min-max): it was not retrieved, so it scores no better
  than the worst document that was, and no worse (Pyserini fills the
  missing side with the list's minimum score too). An empty list
  contributes nothing. A list whose scores are all equal normalises to 1
  (min-max) or 0 (z-score) for every document it holds.
* **rrf** (Cormack et al. 2009): ``fused(d) = sum_i w_i / (rrf_k + rank_i(d))``
  with ranks from 1; a missing document contributes 0.

Ties in the fused score are broken by the smaller document number, so a
fusion is deterministic.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

NORMS = ("minmax", "zscore", "none")
METHODS = ("convex", "rrf")


def normalise(scores: np.ndarray, method: str = "minmax") -> np.ndarray:
    """Normalise each query's scores: the last axis of a 1-d (one query) or 2-d (one row per query) array.

    Only finite entries are normalised; a non-finite one marks a missing
    slot (-inf padding of a result list, NaN of a teacher's candidate
    matrix) and is returned as it came. All-equal scores normalise to 1
    (min-max: each equals the maximum) or 0 (z-score: each is the mean).
    This one function serves fusion and the training teachers alike.
    """
    if method not in NORMS:
        raise ValueError(f"normalisation {method!r}; choose from {', '.join(NORMS)}")
    s = np.asarray(scores, dtype=np.float64)
    if method == "none":
        return s.copy()
    ok = np.isfinite(s)
    v = np.where(ok, s, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row with no finite entry: nanmin of nothing
        if method == "minmax":
            lo, hi = np.nanmin(v, axis=-1, keepdims=True), np.nanmax(v, axis=-1, keepdims=True)
            span = hi - lo
            out = np.where(span > 0, (v - lo) / np.where(span > 0, span, 1.0), 1.0)
        else:
            mu, sd = np.nanmean(v, axis=-1, keepdims=True), np.nanstd(v, axis=-1, keepdims=True)
            out = np.where(sd > 0, (v - mu) / np.where(sd > 0, sd, 1.0), 0.0)
    return np.where(ok, out, s)


def fuse(lists: Sequence[tuple[np.ndarray, np.ndarray]], weights: Sequence[float] | None = None,
         method: str = "convex", norm: str = "minmax", k: int = 10, rrf_k: int = 60):
    """Fuse ``lists`` (each (docs, scores), shape (n_queries, k_i)) into top-``k`` (docs, scores)."""
    if method not in METHODS:
        raise ValueError(f"fusion {method!r}; choose from {', '.join(METHODS)}")
    if not lists:
        raise ValueError("nothing to fuse: no result lists")
    weights = [1.0] * len(lists) if weights is None else [float(w) for w in weights]
    if len(weights) != len(lists):
        raise ValueError(f"{len(weights)} fusion weights for {len(lists)} result lists")
    n_queries = len(lists[0][0])
    if any(len(d) != n_queries or np.shape(d) != np.shape(s) for d, s in lists):
        raise ValueError("result lists must have the same number of queries, and docs and scores the same shape")
    out_d = np.full((n_queries, k), -1, dtype=np.int64)
    out_s = np.full((n_queries, k), -np.inf, dtype=np.float32)
    for qi in range(n_queries):
        d, s = fuse_one([(np.asarray(dd[qi]), np.asarray(ss[qi])) for dd, ss in lists], weights, method, norm,
                        rrf_k)
        n = min(k, len(d))
        out_d[qi, :n], out_s[qi, :n] = d[:n], s[:n]
    return out_d, out_s


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique(a)`` by sorting: numpy 2's hash-based unique is ~3x slower on a few thousand numbers."""
    a = np.sort(a)
    first = np.ones(len(a), dtype=bool)
    np.not_equal(a[1:], a[:-1], out=first[1:])
    return a[first]


def fuse_one(lists, weights, method: str = "convex", norm: str = "minmax", rrf_k: int = 60):
    """One query: every document of any list, sorted by fused score (ties: smaller number first)."""
    parts = []
    for docs, scores in lists:
        keep = (docs >= 0) & np.isfinite(scores)
        docs, scores = docs[keep], scores[keep]
        # one entry per document (a list should not repeat one; if it does, its best counts)
        order = np.lexsort((-scores, docs))
        docs, scores = docs[order], scores[order]
        first = np.ones(len(docs), dtype=bool)
        first[1:] = docs[1:] != docs[:-1]
        parts.append((docs[first], scores[first]))
    universe = _sorted_unique(np.concatenate([p[0] for p in parts])) if parts else np.zeros(0, np.int64)
    total = np.zeros(len(universe))
    for (docs, scores), w in zip(parts, weights):
        if len(docs) == 0 or w == 0:
            continue
        pos = np.searchsorted(universe, docs)
        if method == "rrf":
            ranks = np.empty(len(docs))
            ranks[np.lexsort((docs, -scores))] = np.arange(1, len(docs) + 1)
            total[pos] += w / (rrf_k + ranks)
        else:
            normed = normalise(scores, norm)
            column = np.full(len(universe), normed.min())  # missing: the list's lowest normalised score
            column[pos] = normed
            total += w * column
    order = np.lexsort((universe, -total))
    return universe[order], total[order].astype(np.float32)
