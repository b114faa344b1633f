"""Tuning from text queries: fusion settings on judged queries (:func:`tune_fusion`; a train or dev
split, never test) and a seismic index's search defaults for a recall target (:func:`tune_seismic`)."""
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

    from ..errors import DataError
    from ..eval import evaluate, parse_metrics, run_from_results
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


def tune_seismic(index_dir, queries, target_recall: float = 0.95, k: int = 10, sample: int = 200,
                 store: bool = True, progress: bool = False) -> dict:
    """Pick a seismic index's search defaults: the fastest (query_cut, heap_factor, knn) meeting a recall target.

    ``queries`` are sample queries: an ir_datasets id, a BEIR folder, a
    JSONL / TSV / Parquet queries file, or a list of texts; a seeded sample
    of ``sample`` of them is encoded once. Recall@``k`` is measured against
    exact search over the same document vectors (the index's ``vectors/``
    shards, else its forward index). With ``store`` the choice is written
    into the index's manifest, where every later search takes it from.

    Returns :func:`lsr.index.tune.tune`'s dict (``runs``: every measured
    setting; ``best``: the choice, None when no setting reaches the target,
    and then nothing is stored) plus ``stored``. Raises
    :class:`lsr.errors.IndexError_` for an index that is not seismic and
    :class:`lsr.errors.DataError` for no queries.
    """
    from pathlib import Path

    from ..data import load_dataset
    from ..data.files import iter_queries_file
    from ..encoders.shards import shard_paths
    from ..errors import DataError, IndexError_
    from ..index import ExactIndex, storage
    from ..index.tune import tune as grid_search
    from ..layout import VECTORS_DIR
    from ..sparse import read_vectors
    from .searcher import Searcher
    index_dir = Path(index_dir)
    s = Searcher(index_dir)
    if s.index.index_type == "segmented":
        raise IndexError_(f"{index_dir} is a segmented index; lsr tune works on a one-folder seismic index (tune "
                          "before the first add); a segmented index's seismic search defaults are set with "
                          "IndexWriter(INDEX).set_settings(search={'query_cut': N, 'heap_factor': X})")
    if s.index.index_type != "seismic":
        raise IndexError_(f"{index_dir} is an {s.index.index_type!r} index; tune applies to seismic indexes")
    if isinstance(queries, (list, tuple)):
        texts, source = [str(t) for t in queries], "the given queries"
    else:
        path = Path(queries)
        texts = [q.text for q in (iter_queries_file(path) if path.is_file() else load_dataset(str(queries)).queries())]
        source = str(queries)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise DataError(f"no queries in {source}")
    if sample < 1:
        raise DataError(f"sample must be >= 1, got {sample}")
    rng = np.random.default_rng(0)
    texts = [texts[i] for i in sorted(rng.choice(len(texts), min(sample, len(texts)), replace=False))]
    shards = shard_paths(index_dir / VECTORS_DIR) if (index_dir / VECTORS_DIR).is_dir() else []
    vectors = read_vectors(shards)[1] if shards else s.index.forward_vectors()
    result = grid_search(s.index, s.encode_queries(texts), ExactIndex.build(vectors), k=k,
                         target_recall=target_recall, progress=progress)
    best = result["best"]
    result["stored"] = bool(best and store)
    if result["stored"]:
        storage.update_manifest(index_dir, {"params": {"query_cut": best["query_cut"],
                                                       "heap_factor": best["heap_factor"], "knn": best["knn"]}})
    return result


def tune_hybrid(index_dir, queries, lists=("bm25", "sparse", "dense"), metric: str = "nDCG@10", step: float = 0.1,
                split: str | None = None, store: bool = True, progress: bool = False):
    """Tune fusion (method, normalisation, weights) of ``lists`` on judged ``queries`` (an ir_datasets id
    or BEIR folder with a train or dev split; a test split is refused, it would leak into reported
    figures) and, with ``store``, save the best as the index's hybrid default (``hybrid.json``).

    A BEIR folder is tuned on its dev split, else its train split (never
    its default, test); a folder with neither is refused. The recommended
    default's PRF stays, for the lists it covers. Returns
    ``(best HybridConfig, grid table, path written or None)``.
    """
    from ..data import load_dataset
    from ..errors import DataError
    from .hybrid import HybridSearcher, recommended
    leak = "tuning on a test split would leak it into the reported figures"
    if "test" in str(queries).split("/")[-1:] or split == "test":
        raise DataError(f"queries {queries}: {leak}; use a train or dev split")
    if split is None:
        split = tuning_split(queries)
    dataset = load_dataset(queries, split=split)
    if getattr(dataset, "split", None) == "test":  # a folder's default split, had one slipped through
        raise DataError(f"queries {queries}: {leak}; use a train or dev split")
    names = [str(x).strip() for x in lists if str(x).strip()]
    try:
        searcher = HybridSearcher(index_dir, HybridConfig(lists=names, prf=recommended(names).prf))
    except ValueError as e:
        raise DataError(str(e)) from None
    best, table = tune_fusion(searcher, dataset, metric=metric, step=step, progress=progress)
    return best, table, (searcher.save_config(best) if store else None)


def tuning_split(queries) -> str | None:
    """The split of a BEIR folder to tune on: dev, else train; a folder with neither raises DataError.
    None for anything else (an ir_datasets id names its split itself)."""
    from pathlib import Path

    from ..errors import DataError
    folder = Path(str(queries)).expanduser()
    if not (folder / "qrels").is_dir():
        return None
    splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
    for split in ("dev", "train"):
        if split in splits:
            return split
    raise DataError(f"{folder}: no dev or train qrels to tune on (found: {', '.join(splits) or 'none'}); tuning "
                    "on a test split would leak it into the reported figures")
