"""Pseudo-relevance feedback: rewrite a query from its own top-ranked documents.

* **Sparse Rocchio**: ``q' = alpha * q + beta * mean(top fb_docs document vectors)``.
  The original query's terms are always kept; of the terms the feedback
  adds, only the ``fb_terms`` heaviest are (a mean of ten SPLADE documents
  has hundreds of terms, and every extra term is a posting list to walk).
* **Dense Vector-PRF** (Li et al., "Pseudo Relevance Feedback with Deep
  Language Models and Dense Retrievers", 2021): ``average``:
  ``q' = mean(q, d_1 .. d_k)``; ``rocchio``: ``q' = alpha * q + beta * mean(d_1 .. d_k)``.

Which documents are the feedback is the caller's choice: each retriever's
own top documents, or the top of a fused list ("interpolation before PRF",
Li et al., SIGIR 2022; see :mod:`lsr.retrieval.hybrid`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sparse import SparseVectors

WHEN = ("after", "before", "both")


@dataclass(frozen=True)
class PRF:
    """Feedback settings. ``when`` places it against fusion (Li et al.):

    * ``after``: each retriever takes feedback from its own first-round top
      documents; the rewritten queries' lists are fused;
    * ``before``: the first-round lists are fused first and the fused top
      documents are the feedback of every retriever; the second-round lists
      are fused with the same weights;
    * ``both``: as ``before``, and the fused first round is fused once more
      with the fused second round (``round_weight`` on the second round).
    """

    fb_docs: int = 3
    fb_terms: int = 20
    alpha: float = 1.0
    beta: float = 0.5
    dense_method: str = "rocchio"
    when: str = "after"
    round_weight: float = 0.5
    lists: tuple | None = None  # the lists that take feedback (None: all); the others keep their first round

    def __post_init__(self):
        if self.fb_docs < 1:
            raise ValueError(f"PRF needs fb_docs >= 1, got {self.fb_docs}")
        if self.fb_terms < 0:
            raise ValueError(f"PRF fb_terms must be >= 0, got {self.fb_terms}")
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"PRF weights must be >= 0, got alpha={self.alpha}, beta={self.beta}")
        if self.dense_method not in ("rocchio", "average"):
            raise ValueError(f"dense PRF method {self.dense_method!r}; choose rocchio or average")
        if self.when not in WHEN:
            raise ValueError(f"PRF 'when' {self.when!r}; choose from {', '.join(WHEN)}")
        if self.lists is not None:
            object.__setattr__(self, "lists", tuple(self.lists))


def sparse_rocchio(queries: SparseVectors, feedback: np.ndarray, docs: SparseVectors, fb_docs: int = 3,
                   fb_terms: int = 20, alpha: float = 1.0, beta: float = 0.5) -> SparseVectors:
    """Rewritten queries; ``feedback`` (n_queries, >= fb_docs) holds document numbers (-1: none)."""
    if len(feedback) != len(queries):
        raise ValueError(f"{len(feedback)} feedback rows for {len(queries)} queries")
    indptr, indices, values = [0], [], []
    for i in range(len(queries)):
        qi, qv = queries.row(i)
        fb = [int(d) for d in feedback[i][:fb_docs] if d >= 0]
        n = max(1, len(fb))
        # Feedback terms summed in float64, document by document (the order a per-term running sum takes).
        if fb:
            terms, where = np.unique(np.concatenate([docs.row(d)[0] for d in fb]), return_inverse=True)
            sums = np.bincount(where, weights=np.concatenate([docs.row(d)[1] for d in fb]).astype(np.float64),
                               minlength=len(terms))
        else:
            terms, sums = np.zeros(0, np.int32), np.zeros(0)
        in_query = np.isin(terms, qi)
        # The original terms stay, reinforced by the feedback; the fb_terms heaviest new ones join them
        # (ties: the larger term number first).
        fed = np.zeros(len(qi))
        pos = np.searchsorted(terms, qi)
        hit = pos < len(terms)
        hit[hit] = terms[pos[hit]] == qi[hit]
        fed[hit] = sums[pos[hit]]
        q_w = alpha * qv.astype(np.float64) + beta * fed / n
        new_t, new_w = terms[~in_query], beta * sums[~in_query] / n
        top = np.lexsort((-new_t.astype(np.int64), -new_w))[:fb_terms]
        t_all = np.concatenate([qi.astype(np.int64), new_t[top].astype(np.int64)])
        w_all = np.concatenate([q_w, new_w[top]])
        keep = w_all > 0
        order = np.argsort(t_all[keep], kind="stable")
        indices.append(t_all[keep][order].astype(np.int32))
        values.append(w_all[keep][order].astype(np.float32))
        indptr.append(indptr[-1] + len(indices[-1]))
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    return SparseVectors(np.array(indptr), cat(indices, np.int32), cat(values, np.float32), queries.vocab)


def vector_prf(queries: np.ndarray, feedback: np.ndarray, embeddings, fb_docs: int = 3, alpha: float = 1.0,
               beta: float = 0.5, method: str = "rocchio") -> np.ndarray:
    """Rewritten query embeddings; ``embeddings(numbers)`` returns float32 document embeddings."""
    q = np.asarray(queries, dtype=np.float32)
    out = q.copy()
    for i in range(len(q)):
        fb = np.array([int(d) for d in feedback[i][:fb_docs] if d >= 0], dtype=np.int64)
        if len(fb) == 0:
            continue
        e = embeddings(fb)
        if method == "average":
            out[i] = (q[i] + e.sum(0)) / (len(fb) + 1)
        else:
            out[i] = alpha * q[i] + beta * e.mean(0)
    return out
