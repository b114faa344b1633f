"""Explaining sparse scores: which tokens made a document score for a query, and a document's own tokens.

A sparse score is a dot product, so it splits exactly into one contribution
per token the query and the document share: ``q_t × d_t``. This module reads
those weights from where each index type scores with them, for the few
documents asked about only (nothing is materialised for the whole corpus):

* an exact index keeps postings term-major, sorted by document number: each
  query term's list is binary-searched for the document (all terms' lists at
  once, vectorised), so the cost grows with the log of the list lengths;
* a seismic index scores every document from its forward index (float16
  when built so): the document's row is read, and its weights are exactly the
  kernels' (the inverted lists are pruned, the forward rows never are);
* a segmented index, segment by segment, in the segment's own type; a BM25
  segment's query weights are multiplied by its ``query_scales`` (global IDF
  over the IDF the segment was weighted with) as its search does, and its
  document weights are reported in the global statistics, as
  ``SegmentedIndex.forward_vectors`` gives them.

The query is the full encoded query: a seismic search's ``query_cut`` and
``heap_factor`` only decide *which* documents are scored (and every
document it scores gets the full query's dot product with its full forward
row), so the contributions of a seismic hit sum to its search score, up to
float32 rounding order; on an exact index they sum to the exact score.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import QueryError
from ..sparse import SparseVectors


def check_top(top, name: str = "top") -> int:
    """``top`` as an int; QueryError for anything but an integer >= 1 (True is not a number of terms)."""
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise QueryError(f"{name} must be an integer >= 1, got {top!r}")
    return int(top)


def numbers_of(index, doc_ids: Sequence[str], where=None) -> list[int]:
    """Internal numbers of ``doc_ids`` (live documents only); KeyError naming the first unknown id."""
    if isinstance(doc_ids, str):
        raise QueryError("doc_ids must be a list of doc ids, not one string")
    ids = index.doc_ids
    out = []
    for d in doc_ids:
        try:
            out.append(int(ids.number_of(str(d))))
        except KeyError:
            raise KeyError(f"document {d!r} is not in the index {where or index.path}") from None
    return out


# ------------------------------------------------------------------ one document's weights, per index type
def _exact_row(index, number: int, terms: np.ndarray | None = None):
    """(terms, weights) of document ``number`` in an exact index, among ``terms`` (all when None).

    Postings are term-major with each list's documents ascending, so every
    list is binary-searched for the document, all lists at once: about
    log2(longest list) vectorised steps over the terms, never a scan of the
    postings."""
    ptr, docs, vals = index.post_ptr, index.post_docs, index.post_vals
    n_terms = len(ptr) - 1
    if terms is None:
        terms = np.flatnonzero(np.diff(ptr))
    terms = np.asarray(terms, dtype=np.int64)
    terms = terms[(terms >= 0) & (terms < n_terms)]
    lo, end = np.asarray(ptr[terms], dtype=np.int64), np.asarray(ptr[terms + 1], dtype=np.int64)
    hi = end.copy()
    last = max(len(docs) - 1, 0)
    while True:
        open_ = lo < hi
        if not open_.any():
            break
        mid = (lo + hi) >> 1
        right = open_ & (np.asarray(docs[np.minimum(mid, last)]) < number)
        lo = np.where(right, mid + 1, lo)
        hi = np.where(open_ & ~right, mid, hi)
    found = lo < end
    found[found] = np.asarray(docs[lo[found]]) == number
    return terms[found], np.asarray(vals[lo[found]], dtype=np.float32)


def _seismic_row(index, number: int):
    """(terms, weights) of document ``number`` as the seismic kernels score it: its forward row."""
    a, b = int(index.fwd_ptr[number]), int(index.fwd_ptr[number + 1])
    terms = np.asarray(index.fwd_idx[a:b]).astype(np.int64)
    if len(index.fwd_codes):
        weights = np.asarray(index.fwd_codes[a:b]).view(np.float16).astype(np.float32)
    else:
        weights = np.asarray(index.fwd_val[a:b], dtype=np.float32)
    return terms, weights


def _row(index, number: int, terms: np.ndarray | None = None):
    """(terms ascending, weights) of a one-folder index's document, restricted to ``terms`` when given."""
    kind = getattr(index, "index_type", None)
    if kind == "exact":
        return _exact_row(index, number, terms)
    if kind == "seismic":
        t, w = _seismic_row(index, number)
        if terms is None:
            return t, w
        keep = np.isin(t, terms)
        return t[keep], w[keep]
    raise QueryError(f"cannot read documents of a {kind!r} index")


def _segment(index, number: int):
    """(the index searched, its document number, the query scale per term or None) for ``number``."""
    if getattr(index, "index_type", None) != "segmented":
        return index, number, None
    i = int(np.searchsorted(index.offsets, number, side="right") - 1)
    scales = index.query_scales
    return index.parts[i], number - int(index.offsets[i]), None if scales is None else scales[i]


def _check_scales(index) -> None:
    if getattr(index, "_needs_scales", False) and index.query_scales is None:
        raise QueryError(f"{index.path}: a segmented BM25 index weighs with global statistics; explain through "
                         "a Searcher or Retriever (they load them)")


def contributions(index, q_idx: np.ndarray, q_val: np.ndarray, number: int):
    """Per shared token of the query (term ids ``q_idx``, weights ``q_val``) and document ``number``:
    (terms, query weights, document weights, contributions), numpy arrays in term order.

    The contribution is the product the search kernels add (float32): on a
    BM25 segment of a segmented index, the query weight times the segment's
    scale times the stored weight; the document weight reported there is the
    stored weight times the scale (the global-IDF weight)."""
    _check_scales(index)
    part, n, scale = _segment(index, number)
    q_idx = np.asarray(q_idx, dtype=np.int64)
    q_val = np.asarray(q_val, dtype=np.float32)
    keep = q_idx < part.vocab.size  # a term newer than the segment has no postings there
    q_idx, q_val = q_idx[keep], q_val[keep]
    # the query weights the segment is searched with (SegmentedIndex._query_for)
    q_eff = q_val if scale is None else (q_val * scale[q_idx]).astype(np.float32)
    terms, d = _row(part, n, q_idx)
    at = np.searchsorted(q_idx, terms)
    contrib = (q_eff[at] * d).astype(np.float32)
    if scale is not None:
        d = (d * scale[terms]).astype(np.float32)
    shared = contrib > 0  # the kernels add only positive products
    return terms[shared], q_val[at][shared], d[shared], contrib[shared]


def doc_vector(index, number: int):
    """(terms, weights) of document ``number`` with the weights its index scores with (a segmented BM25
    index: in global statistics)."""
    _check_scales(index)
    part, n, scale = _segment(index, number)
    terms, weights = _row(part, n)
    if scale is not None:
        weights = (weights * scale[terms]).astype(np.float32)
    return terms, weights


# ----------------------------------------------------------------------------------- what the API returns
def _ranked(order_by: np.ndarray, top: int | None) -> np.ndarray:
    """Positions of the ``top`` largest values, largest first (ties: lower term id first)."""
    order = np.argsort(-order_by, kind="stable")
    return order if top is None else order[:top]


def explain_vectors(index, queries: SparseVectors, numbers: Sequence[Sequence[int]], top: int | None = 10):
    """For each query row ``i`` and each document number in ``numbers[i]``: ``{"doc_id", "score", "terms"}``,
    ``score`` the sum of every contribution (the sparse score), ``terms`` the ``top`` largest (all when
    None) as ``{"token", "query_weight", "doc_weight", "contribution"}``, largest first."""
    vocab = index.vocab
    out = []
    for i, row in enumerate(numbers):
        a, b = queries.indptr[i], queries.indptr[i + 1]
        q_idx, q_val = queries.indices[a:b], queries.values[a:b]
        ids = index.doc_ids.take(np.asarray(row, dtype=np.int64)) if len(row) else []
        explained = []
        for doc_id, n in zip(ids, row):
            terms, qw, dw, c = contributions(index, q_idx, q_val, int(n))
            explained.append({"doc_id": str(doc_id), "score": float(c.astype(np.float64).sum()), "terms": [
                {"token": vocab.token(int(terms[j])), "query_weight": float(qw[j]), "doc_weight": float(dw[j]),
                 "contribution": float(c[j])} for j in _ranked(c, top)]})
        out.append(explained)
    return out


def explain(searcher, texts: Sequence[str], numbers: Sequence[Sequence[int]], top: int | None = 10):
    """:func:`explain_vectors` for query texts, encoded by ``searcher`` (a :class:`Searcher`) as its
    search encodes them; one list per text."""
    if isinstance(texts, str):
        raise QueryError("explain takes a list of queries")
    if len(texts) != len(numbers):
        raise ValueError(f"{len(texts)} queries but {len(numbers)} lists of documents")
    if top is not None:
        top = check_top(top)
    queries = searcher.encode_queries(list(texts))  # loads the model; for BM25 segments, the global scales
    return explain_vectors(searcher.index, searcher.index.check_queries(queries), numbers, top)


def doc_terms(index, number: int, top: int | None = 20) -> list[dict]:
    """Document ``number``'s ``top`` heaviest tokens: ``[{"token", "weight"}]``, heaviest first."""
    terms, weights = doc_vector(index, number)
    return [{"token": index.vocab.token(int(terms[j])), "weight": float(weights[j])} for j in _ranked(weights, top)]
