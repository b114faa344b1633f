"""ExactIndex: brute-force sparse inner product over inverted lists.

Exact by construction (every posting of every query term is scored), so it
is the correctness reference for approximate indexes. Pure numpy/numba.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import IndexError_, QueryError
from ..sparse import SparseVectors, Vocabulary, as_sparse_vectors
from . import storage
from .docs import DocIds

VOCAB_FILE = "vocab.json"


def _threads(threads: int | None):
    import numba
    return min(threads, numba.config.NUMBA_NUM_THREADS) if threads else numba.config.NUMBA_NUM_THREADS


class ExactIndex:
    index_type = "exact"

    def __init__(self, post_ptr, post_docs, post_vals, doc_ids: DocIds, vocab: Vocabulary,
                 manifest: dict | None = None, path: Path | None = None):
        self.post_ptr, self.post_docs, self.post_vals = post_ptr, post_docs, post_vals
        self.doc_ids = doc_ids
        self.vocab = vocab
        self.manifest = manifest or {}
        self.path = path

    # ----------------------------------------------------------------- build
    @classmethod
    def build(cls, vectors, doc_ids=None, vocab: Vocabulary | None = None, **params) -> "ExactIndex":
        """Build from SparseVectors or a scipy CSR matrix (rows = documents).

        ``doc_ids`` defaults to "0", "1", ...; extra keyword parameters of
        approximate indexes are accepted and ignored so callers can swap types.
        """
        v = as_sparse_vectors(vectors, vocab)
        ids = DocIds.from_list(doc_ids if doc_ids is not None else [str(i) for i in range(len(v))])
        if len(ids) != len(v):
            raise ValueError(f"{len(ids)} doc ids for {len(v)} vectors")
        csc = v.to_scipy().tocsc()
        csc.sort_indices()
        return cls(csc.indptr.astype(np.int64), csc.indices.astype(np.int32), csc.data.astype(np.float32),
                   ids, v.vocab)

    def __len__(self) -> int:
        return len(self.doc_ids)

    @property
    def n_postings(self) -> int:
        return int(self.post_ptr[-1])

    # ------------------------------------------------------------ persistence
    def save(self, path, overwrite: bool = False, meta: dict | None = None, extra_writer=None) -> Path:
        """Write the index atomically. ``extra_writer(tmp_dir)`` may add files (doc store, vectors)."""
        path = Path(path)
        with storage.atomic_dir(path, overwrite) as tmp:
            self._write_into(tmp)
            if extra_writer is not None:
                extra_writer(tmp)
            self.manifest = storage.write_manifest(tmp, self.index_type, self._meta(meta))
        self.path = path
        return path

    def _write_into(self, tmp: Path) -> None:
        storage.save_array(tmp, "post_ptr", self.post_ptr)
        storage.save_array(tmp, "post_docs", self.post_docs)
        storage.save_array(tmp, "post_vals", self.post_vals)
        self.doc_ids.save(tmp)
        (tmp / VOCAB_FILE).write_text(self.vocab.to_json())

    def _meta(self, meta: dict | None) -> dict:
        out = {
            "vocab": {"size": self.vocab.size, "fingerprint": self.vocab.fingerprint},
            "counts": {"docs": len(self), "postings": self.n_postings},
            "params": {},
        }
        out.update(meta or {})
        return out

    @classmethod
    def load(cls, path, verify: bool = True, manifest: dict | None = None) -> "ExactIndex":
        path = Path(path)
        manifest = manifest or storage.read_manifest(path)
        if manifest["index_type"] != cls.index_type:
            raise IndexError_(f"{path} is a {manifest['index_type']!r} index, not {cls.index_type!r}")
        storage.verify_files(path, manifest, checksums=verify)
        vocab = Vocabulary.from_json((path / VOCAB_FILE).read_text())
        idx = cls(storage.load_array(path, "post_ptr"), storage.load_array(path, "post_docs"),
                  storage.load_array(path, "post_vals"), DocIds.load(path), vocab, manifest, path)
        n_docs = manifest["counts"]["docs"]
        if len(idx.doc_ids) != n_docs or len(idx.post_ptr) != vocab.size + 1 or idx.post_ptr[-1] != len(idx.post_docs):
            raise IndexError_(f"{path}: array sizes disagree with the manifest (corrupt index)")
        return idx

    # ---------------------------------------------------------------- search
    def _check_queries(self, queries) -> SparseVectors:
        if not isinstance(queries, SparseVectors):
            # Unnamed columns (scipy, torch) are taken to be the index's
            # vocabulary when the width matches; otherwise refused below.
            width = queries.shape[-1]
            queries = as_sparse_vectors(queries, self.vocab if width == self.vocab.size else None)
        q = queries
        if q.vocab.size != self.vocab.size:
            raise QueryError(f"query vectors have dimension {q.vocab.size}, the index has {self.vocab.size}")
        if q.vocab is not self.vocab and q.vocab.tokens is not None and self.vocab.tokens is not None \
                and q.vocab.fingerprint != self.vocab.fingerprint:
            raise QueryError("query vectors use a different vocabulary than the index (encoded with another model?)")
        return q

    def search_numbers(self, queries, k: int = 10, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k internal doc numbers and scores, shape (n_queries, k); -1 / -inf pad."""
        import numba

        from ..kernels.exact import batch_search, batch_search_serial
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = self._check_queries(queries)
        k = int(k)
        scores = np.empty((len(q), k), dtype=np.float32)
        docs = np.empty((len(q), k), dtype=np.int64)
        if len(q) == 0:
            return docs, scores
        args = (q.indptr, q.indices, q.values, self.post_ptr, self.post_docs, self.post_vals, len(self), k,
                scores, docs)
        n_threads = _threads(threads)
        if n_threads == 1 or len(q) == 1:
            batch_search_serial(*args)
            return docs, scores
        old = numba.get_num_threads()
        numba.set_num_threads(n_threads)
        try:
            batch_search(*args)
        finally:
            numba.set_num_threads(old)
        return docs, scores

    def batch_search(self, queries, k: int = 10, threads: int | None = None, query_cut=None,
                     heap_factor=None, **_) -> tuple[np.ndarray, np.ndarray]:
        """(doc_ids, scores) arrays of shape (n_queries, k). Empty slots: id '' and score -inf."""
        docs, scores = self.search_numbers(queries, k, threads)
        return self.doc_ids.take(docs), scores

    def search(self, query, k: int = 10, **kw) -> tuple[np.ndarray, np.ndarray]:
        """One query (a 1-row SparseVectors or scipy row): (doc_ids, scores) of shape (k,)."""
        ids, scores = self.batch_search(query, k, threads=1, **kw)
        if ids.shape[0] != 1:
            raise QueryError(f"search() takes one query, got {ids.shape[0]}; use batch_search()")
        return ids[0], scores[0]
