"""Evaluation with ir-measures, BEIR conventions, and TREC run files.

A run is ``{query_id: {doc_id: score}}``. Conventions (as BEIR's own
evaluation): hits whose doc id equals the query id are dropped, and the mean
is taken over every judged query that was searched; a judged query with no
hits counts as 0 rather than disappearing from the average.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..atomic import atomic_file
from ..errors import DataError

DEFAULT_METRICS = ("nDCG@10", "R@100", "RR@10")
# Named in the error for a metric that does not parse (ir-measures knows more).
KNOWN_METRICS = ("nDCG@10", "R@100", "RR@10", "P@10", "AP", "MAP", "Success@10", "Judged@10", "Bpref")
Run = dict[str, dict[str, float]]


def parse_metrics(metrics: Iterable[str] | str | None):
    """ir-measures measures from their names; a name that does not parse, or a cutoff that is not a
    whole number >= 1 (``nDCG@0`` aborts trec_eval's C code, taking the interpreter with it), is a
    :class:`DataError` naming it."""
    import ir_measures
    if metrics is None:
        metrics = DEFAULT_METRICS
    if isinstance(metrics, str):
        metrics = [m for m in metrics.replace(",", " ").split() if m]
    out = []
    for m in metrics:
        try:
            measure = ir_measures.parse_measure(m)
        except Exception:
            raise DataError(f"unknown metric {m!r}{_nearest(m)}: give an ir-measures name such as "
                            f"{', '.join(KNOWN_METRICS)}, with an optional @cutoff (nDCG@10)") from None
        at = cutoff(measure)
        if at is not None and (isinstance(at, bool) or not isinstance(at, int) or at < 1):
            raise DataError(f"metric {m!r}: the cutoff after @ must be a whole number >= 1 (e.g. nDCG@10)")
        out.append(measure)
    return out


def _nearest(name: str) -> str:
    """`` (did you mean 'nDCG@10'?)`` for a near miss of a measure's name, keeping the cutoff given."""
    import difflib

    import ir_measures
    base, at, rest = name.partition("@")
    names: dict[str, str] = {}  # ndcg -> nDCG: case is a near miss too; nDCG rather than its alias NDCG
    for n in ir_measures.measures.registry:
        if n.lower() not in names or n != n.upper():
            names[n.lower()] = n
    close = difflib.get_close_matches(base.lower(), list(names), n=1, cutoff=0.6)
    return f" (did you mean {names[close[0]] + at + rest!r}?)" if close else ""


def cutoff(measure) -> int | None:
    """A measure's @cutoff (None: it reads the whole run)."""
    return getattr(measure, "params", {}).get("cutoff")


def run_from_results(query_ids: Sequence[str], doc_ids: np.ndarray, scores: np.ndarray,
                     drop_self: bool = True) -> Run:
    """Turn (n_queries, k) result arrays into a run; padding ('' ids) is skipped."""
    run: Run = {}
    for qid, ids, sc in zip(query_ids, doc_ids, scores):
        hits = {}
        for d, s in zip(ids, sc):
            if d == "" or (drop_self and d == qid):
                continue
            hits[str(d)] = float(s)
        run[str(qid)] = hits
    return run


def evaluate(run: Run, qrels: dict, metrics=None, per_query: bool = False):
    """Mean of each metric over the judged queries present in ``run``.

    Returns ``{"nDCG@10": 0.64, ...}``; with ``per_query=True`` also the
    per-query values ``{metric: {qid: value}}``.
    """
    import ir_measures
    measures = parse_metrics(metrics)
    judged = [q for q in run if q in qrels]
    if not judged:
        raise DataError("no searched query has relevance judgements (do the query ids match the qrels?)")
    qrels_list = [ir_measures.Qrel(q, d, int(r)) for q in judged for d, r in qrels[q].items()]
    run_list = [ir_measures.ScoredDoc(q, d, s) for q in judged for d, s in run[q].items()]
    values = {str(m): {q: 0.0 for q in judged} for m in measures}
    for pq in ir_measures.iter_calc(measures, qrels_list, run_list):
        values[str(pq.measure)][pq.query_id] = float(pq.value)
    means = {m: float(np.mean(list(v.values()))) for m, v in values.items()}
    return (means, values) if per_query else means


def check_trec_ids(run: Run, tag: str = "lsr") -> None:
    """Refuse what a TREC run cannot hold: a query id, doc id or tag that is empty or contains whitespace
    (the format splits lines on it, so such an id would not read back, by lsr or trec_eval); DataError
    naming the id. Ids are not escaped: an escaped id would no longer match the qrels."""
    def bad(kind: str, value: str, qid: str | None = None):
        where = f" (query {qid!r})" if qid is not None else ""
        return DataError(f"cannot write {kind} {value!r}{where} to a TREC run: its fields are separated by "
                         "whitespace, so ids must be non-empty and contain none")
    if not tag or any(c.isspace() for c in tag):
        raise bad("tag", tag)
    for qid, hits in run.items():
        if not qid or any(c.isspace() for c in qid):
            raise bad("query id", qid)
        for did in hits:
            if not did or any(c.isspace() for c in did):
                raise bad("doc id", did, qid)


def trec_run_lines(run: Run, tag: str = "lsr") -> Iterable[str]:
    """TREC run lines (``qid Q0 docid rank score tag``, no newline): per query, best score first,
    ties by doc id, so a run file is the same for the same results. Ids that a run cannot hold
    (empty, or with whitespace) raise DataError before the first line (:func:`check_trec_ids`)."""
    check_trec_ids(run, tag)
    return _lines(run, tag)


def _lines(run: Run, tag: str) -> Iterable[str]:
    for qid, hits in run.items():
        ranked = sorted(hits.items(), key=lambda x: (-x[1], x[0]))
        for rank, (did, score) in enumerate(ranked, 1):
            yield f"{qid} Q0 {did} {rank} {score:.6f} {tag}"


def write_trec_run(path, run: Run, tag: str = "lsr") -> Path:
    """Write ``run`` as a TREC run file (atomically); ids it cannot hold raise DataError before anything is written."""
    path = Path(path)
    lines = trec_run_lines(run, tag)
    with atomic_file(path, "w") as f:
        for line in lines:
            f.write(line + "\n")
    return path


def read_trec_run(path) -> Run:
    path = Path(path)
    if not path.exists():
        raise DataError(f"run file not found: {path}")
    run: Run = {}
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise DataError(f"{path}:{line_no}: expected 6 fields (qid Q0 docid rank score tag), found {len(fields)}")
            try:
                score = float(fields[4])
            except ValueError:
                raise DataError(f"{path}:{line_no}: score {fields[4]!r} is not a number") from None
            run.setdefault(fields[0], {})[fields[2]] = score
    return run
