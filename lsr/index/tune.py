"""Choose search parameters that meet a recall target at the lowest latency.

Recall is measured against exact search over the same document vectors, on
sample queries the user supplies; latency is the mean single-thread time per
query. Pure numpy/numba: queries arrive already encoded.
"""
from __future__ import annotations

import time

import numpy as np

QUERY_CUTS = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 50)
HEAP_FACTORS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.3, 0.0)


def recall_at_k(got: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's exact top-k (ignoring padding) found in ``got``."""
    out = []
    for g, t in zip(got, truth):
        want = set(t[t >= 0].tolist())
        if want:
            out.append(len(want & set(g[g >= 0].tolist())) / len(want))
    return float(np.mean(out)) if out else 1.0


def tune(index, queries, exact, k: int = 10, target_recall: float = 0.95, query_cuts=QUERY_CUTS,
         heap_factors=HEAP_FACTORS, knns=None, progress: bool = False) -> dict:
    """Grid-search (query_cut, heap_factor, knn); returns every measured setting and the choice.

    ``exact`` is an index over the same documents searched exactly (the truth).
    ``knns`` defaults to 0 and, when the index has a k-NN graph, its width.
    The choice is the fastest setting with recall >= target_recall, or None.
    """
    from tqdm.auto import tqdm
    truth, _ = exact.search_numbers(queries, k)
    index.search_numbers(queries[:1], k)  # compile outside the timings
    runs = []
    if knns is None:
        width = getattr(index, "knn_width", 0)
        knns = (0, width) if width else (0,)
    grid = [(qc, hf, kn) for qc in query_cuts for hf in heap_factors for kn in knns]
    for qc, hf, kn in tqdm(grid, desc="tuning", disable=not progress):
        got, _ = index.search_numbers(queries, k, threads=1, query_cut=qc, heap_factor=hf, knn=kn)
        t = time.perf_counter()
        for i in range(len(queries)):
            index.search_numbers(queries[i:i + 1], k, query_cut=qc, heap_factor=hf, knn=kn)
        ms = (time.perf_counter() - t) / max(1, len(queries)) * 1000
        runs.append({"query_cut": qc, "heap_factor": hf, "knn": kn, "recall": recall_at_k(got, truth),
                     "mean_ms": ms})
    ok = [r for r in runs if r["recall"] >= target_recall]
    best = min(ok, key=lambda r: (r["mean_ms"], -r["recall"])) if ok else None
    return {"k": k, "target_recall": target_recall, "queries": len(queries), "runs": runs, "best": best}
