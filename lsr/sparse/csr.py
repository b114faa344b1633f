"""SparseVectors: the one CSR type every part of lsr passes around.

Rows are texts (documents or queries), columns are vocabulary entries.
``indptr`` int64, ``indices`` int32, ``values`` float32, as in scipy's CSR,
plus the :class:`Vocabulary` the columns refer to. The arrays may be
memory-mapped; nothing here copies them unless a conversion needs to.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import DataError
from .vocab import Vocabulary


class InvalidVectors(DataError, ValueError):
    """What validate() raises: the message, and ``row``, the bad row's number (None: not one row's fault).

    A DataError (the CLI prints it as an ``error:`` line) and a ValueError
    (what validate raised before).
    """

    def __init__(self, message: str, row: int | None = None):
        super().__init__(message)
        self.row = row


class SparseVectors:
    __slots__ = ("indptr", "indices", "values", "vocab")

    def __init__(self, indptr, indices, values, vocab: Vocabulary | int, *, validate: bool = True):
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int32)
        self.values = np.asarray(values, dtype=np.float32)
        self.vocab = vocab if isinstance(vocab, Vocabulary) else Vocabulary(int(vocab))
        if validate:
            self.validate()

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.vocab.size)

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def row_nnz(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, values) of row ``i``, as views."""
        a, b = self.indptr[i], self.indptr[i + 1]
        return self.indices[a:b], self.values[a:b]

    def __getitem__(self, rows) -> SparseVectors:
        """Select rows by slice, integer array or boolean mask."""
        if isinstance(rows, (int, np.integer)):
            rows = [rows]
        if isinstance(rows, slice):
            start, stop, step = rows.indices(len(self))
            if step == 1:  # contiguous rows: views, no copy
                stop = max(stop, start)
                a, b = self.indptr[start], self.indptr[stop]
                return SparseVectors(self.indptr[start:stop + 1] - a, self.indices[a:b],
                                     self.values[a:b], self.vocab, validate=False)
            rows = np.arange(start, stop, step)
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        m = self.to_scipy()[rows]
        return SparseVectors(m.indptr, m.indices, m.data, self.vocab, validate=False)

    def __repr__(self) -> str:
        return (f"SparseVectors(rows={len(self)}, dim={self.vocab.size}, nnz={self.nnz}, "
                f"mean_nnz={self.nnz / max(len(self), 1):.1f})")

    def equals(self, other: SparseVectors, atol: float = 0.0) -> bool:
        return (np.array_equal(self.indptr, other.indptr) and np.array_equal(self.indices, other.indices)
                and np.allclose(self.values, other.values, rtol=0, atol=atol)
                and self.vocab.size == other.vocab.size)

    # -------------------------------------------------------------- validation
    def validate(self, where: str = "sparse vectors", first_row: int = 0) -> SparseVectors:
        """Check the CSR invariants; raise InvalidVectors (a ValueError) naming the first bad row.

        Invariants: indptr starts at 0 and never decreases; per row the indices
        are strictly increasing (sorted, unique) and < vocab size; weights are
        finite and non-negative. Rows are numbered from ``first_row`` (these
        vectors' place in a larger file).
        """
        ip, ix, vals = self.indptr, self.indices, self.values
        if ip.ndim != 1 or len(ip) < 1 or ip[0] != 0:
            raise InvalidVectors(f"{where}: indptr must be 1-D and start at 0")
        if len(ix) != len(vals) or ip[-1] != len(ix):
            raise InvalidVectors(f"{where}: indptr[-1]={ip[-1]} but {len(ix)} indices and {len(vals)} values")
        if np.any(np.diff(ip) < 0):
            row = first_row + int(np.argmax(np.diff(ip) < 0))
            raise InvalidVectors(f"{where}: indptr decreases at row {row}", row)
        if len(ix):
            bad = np.flatnonzero(~np.isfinite(vals))
            if len(bad):
                row = first_row + self._row_of(bad[0])
                term = self.vocab.token(ix[bad[0]]) if 0 <= ix[bad[0]] < self.vocab.size else int(ix[bad[0]])
                raise InvalidVectors(f"{where}: non-finite weight {vals[bad[0]]} in row {row}, term {term!r}", row)
            bad = np.flatnonzero(vals < 0)
            if len(bad):
                row = first_row + self._row_of(bad[0])
                raise InvalidVectors(f"{where}: negative weight {vals[bad[0]]} in row {row}", row)
            bad = np.flatnonzero((ix < 0) | (ix >= self.vocab.size))
            if len(bad):
                row = first_row + self._row_of(bad[0])
                raise InvalidVectors(f"{where}: index {ix[bad[0]]} outside vocabulary of size "
                                     f"{self.vocab.size} in row {row}", row)
            # Strictly increasing within a row: a non-increase is only allowed
            # where a new row starts.
            step_ok = np.diff(ix) > 0
            row_starts = np.zeros(len(ix), dtype=bool)
            row_starts[ip[1:-1][ip[1:-1] < len(ix)]] = True
            bad = np.flatnonzero(~step_ok & ~row_starts[1:])
            if len(bad):
                row = first_row + self._row_of(bad[0] + 1)
                raise InvalidVectors(f"{where}: indices not sorted and unique in row {row}", row)
        return self

    def _row_of(self, pos: int) -> int:
        return int(np.searchsorted(self.indptr, pos, side="right") - 1)

    def clear_rows(self, rows) -> SparseVectors:
        """A copy with the given rows emptied (their entries dropped; the rows stay, in place).

        For texts with nothing to encode: a neural encoder gives an empty
        text a vector of its own (splade-tiny: 'is', 'means', 'and', ...),
        which would match unrelated queries sharing those terms.
        """
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if len(rows) == 0:
            return self
        if rows[0] < 0 or rows[-1] >= len(self):
            raise IndexError(f"row {int(rows[0] if rows[0] < 0 else rows[-1])} of {len(self)} rows")
        nnz = self.row_nnz()
        keep = np.repeat(~np.isin(np.arange(len(self)), rows), nnz)
        nnz[rows] = 0
        indptr = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(nnz, out=indptr[1:])
        return SparseVectors(indptr, self.indices[keep], self.values[keep], self.vocab, validate=False)

    # ------------------------------------------------------------- conversions
    def to_scipy(self):
        import scipy.sparse as sp
        return sp.csr_matrix((self.values, self.indices, self.indptr), shape=self.shape)

    @classmethod
    def from_scipy(cls, matrix, vocab: Vocabulary | None = None) -> SparseVectors:
        """From any scipy sparse matrix; duplicates are summed, explicit zeros dropped."""
        import scipy.sparse as sp
        m = sp.csr_matrix(matrix, dtype=np.float32)
        m.sum_duplicates()
        m.eliminate_zeros()
        m.sort_indices()
        return cls(m.indptr, m.indices, m.data, vocab or Vocabulary(m.shape[1]))

    @classmethod
    def from_dense(cls, array, vocab: Vocabulary | None = None) -> SparseVectors:
        import scipy.sparse as sp
        return cls.from_scipy(sp.csr_matrix(np.asarray(array, dtype=np.float32)), vocab)

    @classmethod
    def from_torch(cls, tensor, vocab: Vocabulary | None = None) -> SparseVectors:
        """From a torch tensor (sparse COO/CSR as sentence-transformers returns, or dense)."""
        import torch
        t = tensor.detach().cpu()
        if t.dim() == 1:
            t = t.unsqueeze(0)
        if t.layout == torch.strided:
            return cls.from_dense(t.float().numpy(), vocab)
        import scipy.sparse as sp
        t = t.to_sparse_coo().coalesce()  # COO: stable torch API (sparse CSR is beta)
        rows, cols = t.indices().numpy()
        m = sp.coo_matrix((t.values().float().numpy(), (rows, cols)), shape=tuple(t.shape))
        return cls.from_scipy(m, vocab)

    @classmethod
    def from_dicts(cls, rows: Iterable[Mapping[str, float]], vocab: Vocabulary) -> SparseVectors:
        """From ``{token: weight}`` dicts; zero weights are dropped, unknown tokens rejected."""
        lookup = vocab.index_of()
        indptr, indices, values = [0], [], []
        for r, row in enumerate(rows):
            items = []
            for tok, w in row.items():
                if tok not in lookup:
                    raise ValueError(f"row {r}: token {tok!r} is not in the vocabulary")
                if w != 0:
                    items.append((lookup[tok], float(w)))
            items.sort()
            indices.extend(i for i, _ in items)
            values.extend(w for _, w in items)
            indptr.append(len(indices))
        return cls(indptr, indices, values, vocab)

    def to_dicts(self, top: int | None = None) -> list[dict[str, float]]:
        """``{token: weight}`` per row, heaviest first (for display)."""
        out = []
        for i in range(len(self)):
            ix, vals = self.row(i)
            order = np.argsort(-vals, kind="stable")[:top]
            out.append({self.vocab.token(int(ix[j])): float(vals[j]) for j in order})
        return out

    @classmethod
    def concat(cls, parts: Sequence[SparseVectors]) -> SparseVectors:
        if not parts:
            raise ValueError("nothing to concatenate")
        vocab = parts[0].vocab
        for p in parts[1:]:
            if p.vocab.size != vocab.size:
                raise ValueError(f"cannot concatenate vectors of dimension {vocab.size} and {p.vocab.size}")
        offsets = np.cumsum([0] + [p.nnz for p in parts[:-1]])
        indptr = np.concatenate([[0]] + [p.indptr[1:] + o for p, o in zip(parts, offsets)])
        return cls(indptr, np.concatenate([p.indices for p in parts]),
                   np.concatenate([p.values for p in parts]), vocab, validate=False)


def as_sparse_vectors(x, vocab: Vocabulary | None = None) -> SparseVectors:
    """Accept SparseVectors, a scipy sparse matrix, or a torch tensor."""
    if isinstance(x, SparseVectors):
        return x
    mod = type(x).__module__
    if mod.startswith("scipy"):
        return SparseVectors.from_scipy(x, vocab)
    if mod.startswith("torch"):
        return SparseVectors.from_torch(x, vocab)
    if isinstance(x, np.ndarray):
        return SparseVectors.from_dense(x, vocab)
    raise TypeError(f"expected SparseVectors, a scipy sparse matrix or a torch tensor, got {type(x).__name__}")
