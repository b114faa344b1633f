"""Hard-negative mining with lsr's own index.

For each judged query: search the index (any model lsr can index with, e.g.
the starting checkpoint), drop every judged-relevant document, and keep the
best-ranked remainder as hard negatives. Written as Parquet, one row per
(query, positive) pair: ``query_id``, ``query``, ``positive`` (doc id),
``positive_grade`` (its judgement), ``positive_rank`` (its rank in the
search, -1 when it is not in the top ``depth``), ``negatives`` (doc ids,
best first), ``negative_ranks``. The trainer picks which positives of a
query to train on from the grade and rank (recipe ``data.positives``).
"""
from __future__ import annotations

import random
from pathlib import Path

from ..atomic import atomic_path
from ..errors import DataError


def mine_hard_negatives(searcher, dataset, n_negatives: int = 8, depth: int = 50, skip_top: int = 0,
                        sample: bool = False, seed: int = 0, max_queries: int | None = None, batch_size: int = 256,
                        progress: bool = False) -> list[dict]:
    """Mine negatives for every query of ``dataset`` with a positive judgement.

    ``depth``: hits retrieved per query; ``skip_top`` ranks skipped first
    (unjudged near-duplicates of positives sit there); ``sample``: draw the
    negatives at random from the remaining candidates instead of taking the
    best-ranked ones.
    """
    from tqdm.auto import tqdm
    qrels = dataset.qrels()
    queries = [q for q in dataset.queries() if any(r > 0 for r in qrels.get(q.query_id, {}).values())]
    if max_queries is not None:
        queries = queries[:max_queries]
    if not queries:
        raise DataError(f"{dataset.name}: no query has a relevant judgement to mine negatives for")
    rng = random.Random(seed)
    rows = []
    for start in tqdm(range(0, len(queries), batch_size), desc="mining", unit="batch", disable=not progress):
        part = queries[start:start + batch_size]
        ids, _ = searcher.batch_search_ids([q.text for q in part], depth)
        for q, hits in zip(part, ids):
            judged = qrels[q.query_id]
            ranked = [(r, d) for r, d in enumerate(hits) if d and judged.get(d, 0) <= 0 and d != q.query_id]
            ranked = ranked[skip_top:]
            if sample:
                ranked = sorted(rng.sample(ranked, min(n_negatives, len(ranked))))
            ranked = ranked[:n_negatives]
            if len(ranked) < n_negatives:
                continue  # too few candidates: a short list would make a ragged batch
            rank_of = {d: r for r, d in enumerate(hits) if d}
            for pos in sorted(d for d, r in judged.items() if r > 0):
                rows.append({"query_id": q.query_id, "query": q.text, "positive": pos,
                             "positive_grade": int(judged[pos]), "positive_rank": rank_of.get(pos, -1),
                             "negatives": [d for _, d in ranked], "negative_ranks": [r for r, _ in ranked]})
    return rows


def write_examples(rows: list[dict], path) -> Path:
    """Write mined examples (or any list of flat dicts) as Parquet, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows), tmp)
    return path


def read_examples(path) -> list[dict]:
    import pyarrow.parquet as pq
    path = Path(path)
    if not path.exists():
        raise DataError(f"training examples file {path} does not exist")
    return pq.read_table(path).to_pylist()
