"""ExactIndex: brute-force sparse inner product over inverted lists.

Exact by construction (every posting of every query term is scored), so it
is the correctness reference for approximate indexes. Pure numpy/numba.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..sparse import as_sparse_vectors
from .base import NO_FILTER, BaseIndex, run_kernel
from .bounds import check_exact_bounds
from .params import NoParams


class ExactIndex(BaseIndex):
    index_type = "exact"
    BUILD_PARAMS = NoParams  # every posting is scored: nothing to tune
    SEARCH_PARAMS = NoParams
    ARRAYS = ("post_ptr", "post_docs", "post_vals")
    # Unchanged since version 1; lsr wrote 2 for every index type while the
    # version was global, so both load.
    FORMAT_VERSION = 2
    READABLE_VERSIONS = (1, 2)

    @classmethod
    def build(cls, vectors, doc_ids=None, vocab=None, progress: bool = False, **params) -> ExactIndex:
        """Build from SparseVectors or a scipy CSR matrix (rows = documents).

        ``doc_ids`` defaults to "0", "1", ...; ``progress`` is accepted, as
        every index type's build takes it, and ignored (the build is one
        sparse transpose). The exact index has no parameters: any name in
        ``params`` (an approximate index's, e.g. knn) raises
        :class:`lsr.errors.ParameterError` rather than being dropped.
        """
        cls.check_build_params(params)
        v = as_sparse_vectors(vectors, vocab)
        ids = cls._doc_ids_for(doc_ids, len(v))
        csc = v.to_scipy().tocsc()
        csc.sort_indices()
        arrays = {"post_ptr": csc.indptr.astype(np.int64), "post_docs": csc.indices.astype(np.int32),
                  "post_vals": csc.data.astype(np.float32)}
        return cls(arrays, ids, v.vocab)

    @property
    def n_postings(self) -> int:
        return int(self.post_ptr[-1])

    def forward_vectors(self):
        """The documents' vectors (rows in document-number order), rebuilt from the postings."""
        import scipy.sparse as sp

        from ..sparse import SparseVectors
        csc = sp.csc_matrix((np.asarray(self.post_vals), np.asarray(self.post_docs), np.asarray(self.post_ptr)),
                            shape=(len(self), self.vocab.size))
        csr = csc.tocsr()
        csr.sort_indices()
        return SparseVectors(csr.indptr, csr.indices, csr.data, self.vocab)

    def _check_arrays(self, path: Path) -> None:
        """Every index kernels/exact.py computes is in bounds, values are finite (bounds.py)."""
        check_exact_bounds(path, self, len(self), self.vocab.size)

    def _search(self, q, k, threads, scores, docs, allowed=None) -> None:
        from ..kernels.exact import batch_search, batch_search_serial
        args = (q.indptr, q.indices, q.values, self.post_ptr, self.post_docs, self.post_vals, len(self), k,
                NO_FILTER if allowed is None else allowed)
        if threads == 1 or len(q) == 1:
            local = self._scratch()
            batch_search_serial(*args, local.acc, local.touched, scores, docs)
        else:
            run_kernel(None, batch_search, threads, len(q), *args, scores, docs)

    def _new_scratch(self, local) -> None:
        # accumulator (all zero between queries) and touched list (see kernels.exact.batch_search_serial)
        local.acc = np.zeros(len(self), dtype=np.float32)
        local.touched = np.empty(len(self), dtype=np.int64)
