"""The lists a hybrid search fuses: a sparse index (learned or BM25) and a dense index, each with its query
encoding, search and pseudo-relevance feedback."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .. import layout
from ..errors import IndexError_
from .prf import PRF, sparse_rocchio, vector_prf


class SparseList:
    """A sparse index (learned or BM25) as one list of a hybrid search."""

    def __init__(self, searcher, params: dict | None = None):
        self.searcher = searcher
        self.params = params or {}  # the index type's search parameters (query_cut, ...), checked by the index
        self._docs = None
        self._lock = threading.Lock()
        self._origin = self  # the list whose lazily loaded document vectors (PRF) this one uses

    def encode(self, texts):
        return self.searcher.encode_queries(texts)

    def with_params(self, params: dict) -> SparseList:
        """This list searched with other search parameters; the PRF document vectors stay shared."""
        other = SparseList(self.searcher, params)
        other._origin = self._origin
        return other

    def search(self, q, depth, allowed=None):
        docs, scores = self.searcher.index.search_numbers(q, depth, allowed=allowed, **self.params)
        return unmatched_as_missing(docs, scores)

    def feedback(self, q, fb, prf: PRF):
        src = self._origin or self
        with src._lock:
            if src._docs is None:  # document vectors for Rocchio, loaded on first use
                src._docs = src.searcher.index.forward_vectors()
        return sparse_rocchio(q, fb, src._docs, prf.fb_docs, prf.fb_terms, prf.alpha, prf.beta)


class DenseList:
    """A dense index as one list of a hybrid search; its query model loads on first use, on ``backend`` (None:
    the one the dense list records, torch when it records none) with ``threads`` intra-op threads on ``device``."""

    def __init__(self, index_dir: Path, n_docs: int, model: str | None = None, index=None,
                 backend: str | None = None, threads: int | None = None, device: str | None = None):
        from ..index.dense import DenseIndex
        from .inference import check_inference, query_backend
        backend, self.threads, device = check_inference(backend, threads, device, default=None)
        self.index = index if index is not None else DenseIndex.load(index_dir / layout.DENSE_DIR, n_docs=n_docs)
        self.model_name = model or self.index.model
        self.backend, self.device = query_backend(Path(index_dir) / layout.DENSE_DIR,
                                                  {"backend": getattr(self.index, "backend", None)}, backend, device)
        self._encoder = None
        self._lock = threading.Lock()

    @property
    def encoder(self):
        with self._lock:
            if self._encoder is None:
                from ..encoders.dense import DenseEncoder
                self._encoder = DenseEncoder(self.model_name, device=self.device, backend=self.backend,
                                             threads=self.threads)
                if self._encoder.dim != self.index.dim:
                    raise IndexError_(f"dense model {self.model_name!r} gives {self._encoder.dim}-d embeddings, "
                                      f"the index holds {self.index.dim}-d")
        return self._encoder

    def encode(self, texts):
        return self.encoder.encode(texts)

    def search(self, q, depth, allowed=None):
        return self.index.search(q, depth, allowed=allowed)

    def feedback(self, q, fb, prf: PRF):
        return vector_prf(q, fb, self.index.embeddings, prf.fb_docs, prf.alpha, prf.beta, prf.dense_method)


def unmatched_as_missing(docs, scores):
    """A sparse list's (docs, scores) with every slot that is not a match (a score of 0 or not finite:
    the document shares no term with the query) turned into padding (-1 / -inf), so neither fusion nor
    a one-list search can make it a hit. Sparse scores are sums of non-negative products."""
    docs, scores = np.asarray(docs), np.asarray(scores, dtype=np.float32)
    miss = (docs < 0) | ~np.isfinite(scores) | (scores == 0)
    if not miss.any():
        return docs, scores
    return np.where(miss, -1, docs), np.where(miss, np.float32(-np.inf), scores)
