"""Hits: what every search front door returns (Searcher, HybridSearcher, Retriever), and the request
check they all make."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import QueryError
from ..index.base import valid_k


@dataclass
class Hit:
    """One search result; ``metadata`` holds the document store's other fields (often none)."""

    doc_id: str
    score: float
    title: str | None = None
    text: str | None = None
    metadata: dict = field(default_factory=dict)
    # Hybrid searches only: each fused list's raw score for this document (None where that list missed it);
    # ``score`` is then the fused score, which rescales them.
    list_scores: dict | None = None

    def to_dict(self, text: bool = False, metadata: bool = False) -> dict:
        """The hit as JSON: always ``doc_id``, ``score``, ``title`` (null when the document has none) and,
        for hybrid hits, ``list_scores``; ``text`` and ``metadata`` when asked for, so every hit of a
        response has the same keys."""
        d = {"doc_id": self.doc_id, "score": self.score, "title": self.title or None}
        if self.list_scores is not None:
            d["list_scores"] = self.list_scores
        if text:
            d["text"] = self.text
        if metadata:
            d["metadata"] = self.metadata
        return d


def hits_for(doc_ids, docstore, numbers, scores) -> list[list[Hit]]:
    """(numbers, scores) of shape (n_queries, k) as Hits with the stored title, text and metadata,
    one list per query; -1 padding is dropped. Ids and documents are looked up once for the batch."""
    flat = sorted({int(n) for n in np.asarray(numbers).reshape(-1) if n >= 0})
    ids = dict(zip(flat, doc_ids.take(np.array(flat, dtype=np.int64)))) if flat else {}
    docs = dict(zip(flat, docstore.get(flat))) if docstore and flat else {}
    out = []
    for row_n, row_s in zip(numbers, scores):
        hits = []
        for n, s in zip(row_n, row_s):
            if n >= 0:
                d = docs.get(int(n))
                hits.append(Hit(str(ids[int(n)]), float(s), d["title"] if d else None, d["text"] if d else None,
                                d["metadata"] if d else {}))
        out.append(hits)
    return out


def check_request(texts, k) -> None:
    """What every front door refuses before any work: one string where a list belongs, or a k that is not
    an integer >= 1 (True is not a k). A k beyond the number of documents is fine: the indexes clamp it."""
    if isinstance(texts, str):
        raise QueryError("batch_search takes a list of queries; use search() for one")
    valid_k(k)
