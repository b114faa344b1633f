"""DenseIndex: exact inner-product search over stored document embeddings.

The embeddings live in ``<index>/dense/`` next to the sparse index, one row
per document in the sparse index's own document numbering, so a dense hit
and a sparse hit of the same document carry the same number and fusing
lists needs no id lookups. Storage:

* ``float32``: as encoded;
* ``float16``: half the bytes;
* ``int8``: a quarter; each dimension ``j`` has its own scale
  ``s_j = max_i |x_ij| / 127`` and ``x_ij ~ s_j * c_ij``. The scale is folded
  into the query (``q . x ~ (q * s) . c``), so search multiplies the codes
  as they are.

Search is exact: ``scores = Q @ X.T`` in document chunks (bounded memory),
top-k by ``argpartition``; float32 through BLAS, float16 and int8 through
numba kernels that read the stored bytes (:mod:`lsr.kernels.dense`), never a
float32 copy of the matrix. With ``faiss`` installed and float32 storage,
``use_faiss=True`` hands the product to ``faiss.IndexFlatIP`` instead.
Nothing here imports torch; the encoder (:class:`lsr.encoders.dense.DenseEncoder`)
does, when a query is first encoded. ``backend`` records the inference backend
the documents were encoded with ("torch", "onnx", "onnx-int8"; an index written
before backends were recorded reads as "torch"): queries use it by default.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir, write_json
from ..errors import IndexError_
from ..layout import DENSE_CONFIG as CONFIG
from ..layout import DENSE_EMBEDDINGS as EMBEDDINGS
from ..layout import DENSE_SCALE as SCALE
from .base import valid_k

FORMAT = 1
DTYPES = ("float32", "float16", "int8")


class DenseIndex:
    """Exact inner-product search over stored document embeddings."""

    def __init__(self, data: np.ndarray, scale: np.ndarray | None, dtype: str, model: str,
                 meta: dict | None = None, backend: str = "torch"):
        if dtype not in DTYPES:
            raise ValueError(f"dense dtype {dtype!r}; choose from {', '.join(DTYPES)}")
        self.data, self.scale, self.dtype, self.model = data, scale, dtype, model
        self.backend = backend
        self.meta = meta or {}

    def __len__(self) -> int:
        return self.data.shape[0]

    @property
    def dim(self) -> int:
        return self.data.shape[1]

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes + (self.scale.nbytes if self.scale is not None else 0))

    # ---------------------------------------------------------------- build
    @classmethod
    def build(cls, embeddings: np.ndarray, dtype: str = "float32", model: str = "",
              backend: str = "torch") -> DenseIndex:
        """``embeddings`` stored as ``dtype``; ``model`` and ``backend`` (the inference backend that encoded
        them) are recorded for the queries."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"dense embeddings must be a non-empty (documents, dim) array, got shape {x.shape}")
        if not np.isfinite(x).all():
            bad = int(np.argwhere(~np.isfinite(x))[0, 0])
            raise ValueError(f"dense embedding of document number {bad} has NaN or infinite values")
        if dtype == "float32":
            return cls(np.ascontiguousarray(x), None, dtype, model, backend=backend)
        if dtype == "float16":
            big = np.flatnonzero(np.abs(x).max(axis=1) > np.finfo(np.float16).max)
            if len(big):  # float16 would store inf there: refuse, never serve an inf score
                raise ValueError(f"dense embedding of document number {int(big[0])} has a value beyond float16's "
                                 "range (65504); use dense dtype 'float32' or 'int8'")
            return cls(x.astype(np.float16), None, dtype, model, backend=backend)
        if dtype == "int8":
            scale = np.abs(x).max(axis=0) / 127.0
            scale[scale == 0] = 1.0  # an all-zero dimension: codes are 0 anyway
            codes = np.clip(np.rint(x / scale), -127, 127).astype(np.int8)
            return cls(codes, scale.astype(np.float32), dtype, model, backend=backend)
        raise ValueError(f"dense dtype {dtype!r}; choose from {', '.join(DTYPES)}")

    # --------------------------------------------------------------- search
    def search(self, queries: np.ndarray, k: int = 10, chunk: int = 65536, use_faiss: bool = False,
               allowed: np.ndarray | None = None):
        """Top-k document numbers and scores, shape (n_queries, k); -1 / -inf pad.

        ``allowed`` (one bool per document) restricts the scan to the rows it
        marks: only those rows are read and scored. FAISS has no such mask
        here, so a filtered search always takes the numpy path (same results).
        """
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.shape[1] != self.dim:
            raise ValueError(f"query embeddings have dimension {q.shape[1]}, the dense index {self.dim}")
        k = min(valid_k(k), len(self))  # clamped, as the sparse indexes do: k=10**12 allocates nothing huge
        n, kk = len(self), k
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.bool_)
            if allowed.shape != (n,):
                raise ValueError(f"allowed has shape {allowed.shape}, the dense index {n} documents")
        elif use_faiss:
            return self._faiss_search(q, int(k))
        if self.scale is not None:
            q = q * self.scale  # fold the per-dimension int8 scale into the query
        quantised = self.dtype != "float32"
        if quantised:  # scored by the kernels straight from the stored bytes, no float32 copy of the matrix
            from ..kernels.dense import scores_half, scores_int8
            stored = self.data.view(np.uint16) if self.dtype == "float16" else self.data
            kernel = scores_half if self.dtype == "float16" else scores_int8
            q = np.ascontiguousarray(q, dtype=np.float32)
        best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
        best_d = np.zeros((len(q), 0), dtype=np.int64)
        for start in range(0, n, chunk):
            if allowed is None:
                rows = None
            else:
                rows = start + np.flatnonzero(allowed[start:start + chunk])
                if not len(rows):
                    continue
            if quantised:
                s = kernel(stored, np.arange(start, min(n, start + chunk)) if rows is None else rows, q)
            else:
                s = q @ np.asarray(self.data[start:start + chunk] if rows is None else self.data[rows],
                                   dtype=np.float32).T
            take = min(kk, s.shape[1])
            part = np.argpartition(-s, take - 1, axis=1)[:, :take]
            best_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], axis=1)
            best_d = np.concatenate([best_d, part + start if rows is None else rows[part]], axis=1)
            if best_s.shape[1] > kk:
                keep = np.argpartition(-best_s, kk - 1, axis=1)[:, :kk]
                best_s, best_d = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_d, keep, 1)
        order = np.lexsort((best_d, -best_s), axis=1) if best_s.size else np.zeros_like(best_d)
        best_s, best_d = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_d, order, 1)
        return _pad(best_d, best_s, int(k))

    def _faiss_search(self, q: np.ndarray, k: int):
        try:
            import faiss
        except ImportError:
            raise ImportError("use_faiss needs faiss: pip install faiss-cpu") from None
        if self.dtype != "float32":
            raise ValueError(f"faiss search takes float32 storage; this dense index is {self.dtype}")
        if getattr(self, "_faiss", None) is None:
            self._faiss = faiss.IndexFlatIP(self.dim)
            self._faiss.add(np.ascontiguousarray(self.data, dtype=np.float32))
        s, d = self._faiss.search(np.ascontiguousarray(q), min(k, len(self)))
        return _pad(d.astype(np.int64), s.astype(np.float32), k)

    def embeddings(self, numbers: np.ndarray) -> np.ndarray:
        """Float32 embeddings (dequantised) of the given document numbers."""
        x = np.asarray(self.data[np.asarray(numbers, dtype=np.int64)], dtype=np.float32)
        return x * self.scale if self.scale is not None else x

    # ------------------------------------------------------------ save/load
    def save(self, folder, overwrite: bool = False) -> Path:
        """Write ``folder`` (the index's ``dense/``) whole or not at all: into a temporary folder renamed
        into place (config last inside it, so even a copied half-folder never loads)."""
        folder = Path(folder)
        with atomic_dir(folder, overwrite=overwrite, error=IndexError_) as tmp:
            np.save(tmp / EMBEDDINGS, self.data)
            if self.scale is not None:
                np.save(tmp / SCALE, self.scale)
            cfg = {"format": FORMAT, "model": self.model, "backend": self.backend, "dtype": self.dtype,
                   "dim": self.dim, "docs": len(self), **self.meta}
            write_json(tmp / CONFIG, cfg)
        return folder

    @classmethod
    def load(cls, folder, n_docs: int | None = None) -> DenseIndex:
        folder = Path(folder)
        path = folder / CONFIG
        if not path.exists():
            raise IndexError_(f"{folder.parent} has no dense index (build it with `lsr index ... --dense minilm`)")
        try:
            cfg = json.loads(path.read_text())
        except ValueError as e:
            raise IndexError_(f"{path}: not valid JSON ({e})") from None
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
            raise IndexError_(f"{path}: dense index format {cfg.get('format') if isinstance(cfg, dict) else cfg!r}; "
                              f"this lsr reads {FORMAT}")
        cfg.setdefault("backend", "torch")  # written before backends were recorded: encoded with torch
        for key, ok in (("dtype", cfg.get("dtype") in DTYPES), ("model", isinstance(cfg.get("model"), str)),
                        ("backend", isinstance(cfg.get("backend"), str) and cfg["backend"] != ""),
                        *((key, isinstance(cfg.get(key), int) and cfg[key] >= 0) for key in ("docs", "dim"))):
            if not ok:
                raise IndexError_(f"{path}: {key} is {cfg.get(key)!r}, not a valid value (corrupt or edited); "
                                  f"rebuild the index")
        try:
            data = np.load(folder / EMBEDDINGS, mmap_mode="r")
            scale = np.load(folder / SCALE) if cfg["dtype"] == "int8" else None
        except Exception as e:  # noqa: BLE001 - a damaged .npy header fails in numpy's literal parser, any way
            raise IndexError_(f"{folder}: unreadable dense embeddings ({type(e).__name__}: {e})") from None
        want = {"float32": np.float32, "float16": np.float16, "int8": np.int8}[cfg["dtype"]]
        if data.dtype != want or data.shape != (cfg["docs"], cfg["dim"]):
            raise IndexError_(f"{folder / EMBEDDINGS}: {data.dtype} {data.shape}, the config says "
                              f"{cfg['dtype']} ({cfg['docs']}, {cfg['dim']}); the file is truncated or replaced")
        if n_docs is not None and cfg["docs"] != n_docs:
            raise IndexError_(f"{folder}: {cfg['docs']} dense embeddings for {n_docs} indexed documents")
        if scale is not None and scale.shape != (cfg["dim"],):
            raise IndexError_(f"{folder / SCALE}: shape {scale.shape}, expected ({cfg['dim']},)")
        if scale is not None and not np.isfinite(scale).all():
            raise IndexError_(f"{folder / SCALE}: NaN or infinite scales (corrupt index); rebuild the index")
        meta = {k: v for k, v in cfg.items() if k not in ("format", "model", "backend", "dtype", "dim", "docs")}
        return cls(data, scale, cfg["dtype"], cfg["model"], meta, backend=cfg["backend"])


def _pad(docs: np.ndarray, scores: np.ndarray, k: int):
    if docs.shape[1] >= k:
        return docs[:, :k], scores[:, :k]
    pad = k - docs.shape[1]
    return (np.concatenate([docs, np.full((len(docs), pad), -1, np.int64)], 1),
            np.concatenate([scores, np.full((len(docs), pad), -np.inf, np.float32)], 1))
