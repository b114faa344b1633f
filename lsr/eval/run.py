"""Evaluating a searcher on a dataset's judged queries (BEIR conventions)."""
from __future__ import annotations

from ..data import Dataset
from ..errors import DataError, QueryError


def evaluate_index(searcher, dataset: Dataset, metrics=None, k: int | None = None,
                   run_path=None, batch_size: int = 256, progress: bool = True, drop_self: bool = True,
                   per_query: bool = False, **params):
    """Search every judged query of ``dataset`` and compute the metrics
    (with ``per_query``: ``(means, {metric: {query_id: value}})``).

    ``searcher`` is any front door with ``batch_search_ids(texts, k, **params)``
    returning (doc_ids, scores) arrays: :class:`lsr.retrieval.Searcher`,
    :class:`lsr.retrieval.HybridSearcher` or :class:`lsr.retrieval.Retriever`.

    ``drop_self`` applies BEIR's rule of discarding a hit whose doc id equals
    the query id (BEIR's default; turn it off for collections whose query and
    doc ids share a namespace by accident).
    """
    from tqdm.auto import tqdm

    from .metrics import evaluate, parse_metrics, run_from_results, write_trec_run
    measures = parse_metrics(metrics)
    qrels = dataset.qrels()
    queries = [q for q in dataset.queries() if q.query_id in qrels]
    if not queries:
        raise DataError(f"dataset {dataset.name!r} has no queries with relevance judgements")
    if k is None:
        cutoffs = [getattr(m, "params", {}).get("cutoff") for m in measures]
        k = max([c for c in cutoffs if c] or [1000]) if all(cutoffs) else 1000
        k += 1  # room for the self-hit BEIR drops
    empty = [q.query_id for q in queries if not q.text.strip()]
    if empty:
        raise QueryError(f"dataset {dataset.name!r}: query {empty[0]!r} is empty")
    run = {}
    with tqdm(total=len(queries), unit="query", desc="searching", disable=not progress, mininterval=1.0) as bar:
        for start in range(0, len(queries), batch_size):
            part = queries[start:start + batch_size]
            ids, scores = searcher.batch_search_ids([q.text for q in part], k, **params)
            run.update(run_from_results([q.query_id for q in part], ids, scores, drop_self=drop_self))
            bar.update(len(part))
    if run_path:
        write_trec_run(run_path, run)
    return evaluate(run, qrels, measures, per_query=per_query)
