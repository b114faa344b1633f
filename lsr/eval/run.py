"""Evaluating a searcher on a dataset's judged queries (BEIR conventions).

One evaluation depth: every judged query is searched ``depth`` hits deep
(default 1000, the TREC / BEIR convention) whatever metrics are asked, and
every metric is computed on that one run. So nDCG@10 is the same number
alone or next to R@100 (an approximate index's top 10 can depend on how
deep it was asked to search), and a metric without a cutoff (AP, R) reads
the same 1000 hits. A metric whose cutoff is deeper than the run (R@1000 at
depth 100) is refused: it would be computed on a truncated list.
"""
from __future__ import annotations

import warnings

from ..data import Dataset
from ..errors import DataError, ParameterError, QueryError

DEPTH = 1000  # hits per query in an evaluation run (TREC / BEIR)
# Below this share of the qrels' judged documents in the index, the corpus is probably not the qrels' one.
MIN_JUDGED_SHARE = 0.5


class QrelsCoverageWarning(UserWarning):
    """Fewer than half of the judged documents of the evaluated queries are in the index: the index was
    probably built from another corpus than the qrels judge, and its metrics mean little."""


def check_depth(measures, depth, name: str = "the depth") -> None:
    """Refuse a depth below 1 and a metric whose cutoff is deeper than the evaluation run; ``name``: what
    the caller calls the depth in the advice (the CLI: ``--depth``)."""
    from .metrics import cutoff
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ParameterError(f"evaluation depth must be an integer >= 1, got {depth!r}")
    deep = [m for m in measures if (cutoff(m) or 0) > depth]
    if deep:
        raise ParameterError(f"metric {deep[0]} reads the top {cutoff(deep[0])} hits, deeper than the evaluation "
                             f"depth {depth}: raise {name} to at least {max(cutoff(m) for m in deep)}")


def evaluate_index(searcher, dataset: Dataset, metrics=None, depth: int = DEPTH,
                   run_path=None, batch_size: int = 256, progress: bool = True, drop_self: bool = True,
                   per_query: bool = False, **params):
    """Search every judged query of ``dataset`` ``depth`` hits deep and compute the metrics on that run
    (with ``per_query``: ``(means, {metric: {query_id: value}})``).

    ``searcher`` is any front door with ``batch_search_ids(texts, k, **params)``
    returning (doc_ids, scores) arrays: :class:`lsr.retrieval.Searcher`,
    :class:`lsr.retrieval.HybridSearcher` or :class:`lsr.retrieval.Retriever`.

    ``depth`` (default 1000, the TREC / BEIR convention) is the same for
    every metric, so a metric's value never depends on which others are
    asked; a metric with a deeper cutoff raises :class:`lsr.errors.ParameterError`.

    ``drop_self`` applies BEIR's rule of discarding a hit whose doc id equals
    the query id (BEIR's default; turn it off for collections whose query and
    doc ids share a namespace by accident); the search then goes one hit
    deeper so the run still holds ``depth`` hits.

    When the searcher's index holds fewer than half of the judged documents
    (the qrels belong to another corpus), a :class:`QrelsCoverageWarning`
    naming the counts is issued before any search.
    """
    from tqdm.auto import tqdm

    from .metrics import evaluate, parse_metrics, run_from_results, write_trec_run
    measures = parse_metrics(metrics)
    check_depth(measures, depth)
    qrels = dataset.qrels()
    queries = [q for q in dataset.queries() if q.query_id in qrels]
    if not queries:
        raise DataError(f"dataset {dataset.name!r} has no queries with relevance judgements")
    empty = [q.query_id for q in queries if not q.text.strip()]
    if empty:
        raise QueryError(f"dataset {dataset.name!r}: query {empty[0]!r} is empty")
    _check_coverage(searcher, dataset, {q.query_id: qrels[q.query_id] for q in queries})
    k = depth + 1 if drop_self else depth
    run = {}
    with tqdm(total=len(queries), unit="query", desc="searching", disable=not progress, mininterval=1.0) as bar:
        for start in range(0, len(queries), batch_size):
            part = queries[start:start + batch_size]
            ids, scores = searcher.batch_search_ids([q.text for q in part], k, **params)
            for qid, hits in run_from_results([q.query_id for q in part], ids, scores, drop_self=drop_self).items():
                run[qid] = dict(list(hits.items())[:depth])  # best first: the top ``depth`` once self-hits are gone
            bar.update(len(part))
    if run_path:
        write_trec_run(run_path, run)
    return evaluate(run, qrels, measures, per_query=per_query)


def judged_coverage(doc_ids, qrels: dict) -> tuple[int, int]:
    """(judged documents present in ``doc_ids``, judged documents) over ``qrels`` {qid: {doc_id: rel}}."""
    judged = {d for docs in qrels.values() for d in docs}
    present = set(doc_ids.to_list()) if hasattr(doc_ids, "to_list") else set(doc_ids)
    return len(judged & present), len(judged)


def _check_coverage(searcher, dataset: Dataset, qrels: dict) -> None:
    ids = _index_doc_ids(searcher)
    if ids is None:
        return  # a front door that does not expose its index: nothing to compare with
    found, judged = judged_coverage(ids, qrels)
    if judged and found < MIN_JUDGED_SHARE * judged:
        warnings.warn(f"only {found} of the {judged} documents judged in {dataset.name!r} are in the index "
                      f"({len(ids)} documents): its metrics mean little; was the index built from this "
                      "dataset's corpus?", QrelsCoverageWarning, stacklevel=3)


def _index_doc_ids(searcher):
    """The doc ids of the index a front door searches (a Searcher's, or a HybridSearcher's main index)."""
    for front in (searcher, getattr(searcher, "main", None)):
        ids = getattr(getattr(front, "index", None), "doc_ids", None)
        if ids is not None:
            return ids
    return None
