"""Choose fusion settings on judged queries (a train or dev split, never test)."""
from __future__ import annotations

import itertools

import numpy as np

from .hybrid import HybridConfig


def weight_grid(n: int, step: float = 0.1) -> list[tuple[float, ...]]:
    """Every weight vector of ``n`` non-negative multiples of ``step`` summing to 1."""
    units = int(round(1.0 / step))
    out = []
    for combo in itertools.product(range(units + 1), repeat=n):
        if sum(combo) == units:
            out.append(tuple(round(c / units, 6) for c in combo))
    return out


def tune_fusion(searcher, dataset, metric: str = "nDCG@10", step: float = 0.1, methods=None,
                progress: bool = True):
    """Grid search of (fusion, norm, weights) for ``searcher``'s lists; returns (best config, table).

    The queries are encoded and searched once; each grid point only fuses
    the cached lists (and re-searches when the config has PRF).
    """
    from tqdm.auto import tqdm

    from ..eval import evaluate, parse_metrics, run_from_results
    from ..errors import DataError
    measures = parse_metrics([metric])
    qrels = dataset.qrels()
    queries = [q for q in dataset.queries() if q.query_id in qrels and q.text.strip()]
    if not queries:
        raise DataError(f"dataset {dataset.name!r} has no judged queries to tune on")
    base = searcher.config
    reps = searcher.encode([q.text for q in queries])
    first = searcher.first_round(reps)
    cutoff = getattr(measures[0], "params", {}).get("cutoff") or 1000
    methods = methods or [("convex", "minmax"), ("convex", "zscore"), ("rrf", "none")]
    grid = [(f, nm, w) for f, nm in methods for w in weight_grid(len(base.lists), step)]
    table, best, best_value = [], None, -np.inf
    ids = [q.query_id for q in queries]
    for fusion, norm, weights in tqdm(grid, desc="tuning fusion", disable=not progress, mininterval=1.0):
        cfg = HybridConfig(lists=base.lists, weights=weights, fusion=fusion, norm=norm, depth=base.depth,
                           rrf_k=base.rrf_k, prf=base.prf)
        docs, scores = searcher.combine(reps, first, cutoff + 1, cfg)
        run = run_from_results(ids, searcher.main.index.doc_ids.take(docs), scores, drop_self=True)
        value = float(evaluate(run, qrels, measures)[metric])
        table.append({"fusion": fusion, "norm": norm, "weights": list(weights), metric: value})
        if value > best_value + 1e-12:
            best, best_value = cfg, value
    best.tuned_on = {"dataset": dataset.name, "metric": metric, "value": best_value, "queries": len(queries)}
    return best, table
