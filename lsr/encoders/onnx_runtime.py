"""Encoders on ONNX Runtime: the graphs :mod:`.onnx_export` writes, run without torch or transformers.

Tokenisation is the model's own ``tokenizer.json`` through the ``tokenizers``
library (the Rust tokenizer transformers' fast tokenizers wrap: same ids).
Texts are tokenised once, sorted by length and batched, so a batch carries
almost no padding; a single query is one row with none. Per call there is no
model object to build: tokenise, two int64 arrays, one ``session.run``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelError
from .backends import check_threads, exported, read_meta, session


class _Tokens:
    """Token ids of texts, truncated to ``max_length``, special tokens added, as lsr's torch path has them."""

    def __init__(self, folder: Path, max_length: int, lower: bool, pad_id: int):
        from tokenizers import Tokenizer
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.no_padding()
        self.counter = Tokenizer.from_file(str(folder / "tokenizer.json"))  # untruncated, for token_length
        self.counter.no_padding()
        self.counter.no_truncation()
        self.tok.enable_truncation(max_length=max_length)
        self.lower = lower
        self.pad_id = pad_id

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        if self.lower:
            texts = [t.lower() for t in texts]
        return [e.ids for e in self.tok.encode_batch(list(texts), add_special_tokens=True)]

    def length(self, text: str) -> int:
        return len(self.counter.encode(text.lower() if self.lower else text, add_special_tokens=True).ids)

    def batches(self, texts: Sequence[str], batch_size: int):
        """(positions, input_ids, attention_mask) batches, longest texts first, each padded to its longest."""
        ids = self.ids(texts)
        lengths = np.fromiter((len(t) for t in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(ids), batch_size):
            idx = order[start:start + batch_size]
            width = int(lengths[idx[0]])
            arr = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for j, i in enumerate(idx):
                arr[j, :lengths[i]] = ids[i]
                mask[j, :lengths[i]] = 1
            yield idx, arr, mask


def _load(name: str, backend: str, role: str, threads, device):
    folder = exported(name, backend, role)
    meta = read_meta(folder)
    return folder, meta, session(folder / "model.onnx", check_threads(threads), device)


class OnnxSpladeEncoder:
    """An :class:`lsr.encoders.Encoder`: a SPLADE model (or an inference-free model's document side) on
    ONNX Runtime. Build with ``lsr.encoders.load_encoder(name, backend="onnx" | "onnx-int8")``."""

    kind = "splade"
    task_aware = False

    def __init__(self, name: str, backend: str = "onnx", max_length: int = 256, batch_size: int = 32,
                 threads: int | None = None, device: str | None = None):
        from ..sparse import Vocabulary
        folder, meta, self.session = _load(name, backend, "splade", threads, device)
        self.name, self.backend, self.threads, self.device = name, backend, threads, device
        self.max_length, self.batch_size = int(max_length), int(batch_size)
        self.vocab = Vocabulary.from_json((folder / "vocab.json").read_text())
        self.inference_free = bool(meta.get("inference_free"))
        self.tokens = _Tokens(folder, self.max_length, bool(meta.get("lower")), int(meta.get("pad_id", 0)))
        self._query_side = None

    def token_length(self, text: str) -> int:
        return self.tokens.length(text)

    def encode_documents(self, texts: Sequence[str], **kw):
        return self.encode(texts, **kw)

    def encode_queries(self, texts: Sequence[str], batch_size: int | None = None, progress=None):
        if self.inference_free:  # queries go through the model's token-weight table, not the document side
            if self._query_side is None:
                from .static import StaticQueryEncoder
                self._query_side = StaticQueryEncoder.for_model(self.name)
            return self._query_side.encode_queries(texts)
        return self.encode(texts, batch_size=batch_size, progress=progress)

    def encode(self, texts: Sequence[str], batch_size: int | None = None, progress=None):
        """SPLADE vectors of ``texts``, in input order; ``progress(n)`` after each batch."""
        from ..sparse import SparseVectors
        from .base import encode_distinct
        texts = list(texts)
        out = encode_distinct(texts, lambda t: self.encode(t, batch_size, progress), progress)  # each distinct text once
        if out is not None:
            return out
        n = len(texts)
        rows: list = [None] * n
        for idx, ids, mask in self.tokens.batches(texts, batch_size or self.batch_size):
            weights = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            if not np.isfinite(weights).all():
                raise ModelError(f"model {self.name!r} ({self.backend}) produced NaN or infinite weights")
            for j, i in enumerate(idx):
                nz = np.flatnonzero(weights[j])
                rows[i] = (nz, weights[j, nz])
            if progress:
                progress(len(idx))
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum([len(r[0]) for r in rows], out=indptr[1:])
        cat = lambda k, dt: np.concatenate([r[k] for r in rows]).astype(dt) if n else np.zeros(0, dt)
        return SparseVectors(indptr, cat(0, np.int32), cat(1, np.float32), self.vocab, validate=False)


class OnnxDenseModel:
    """A dense bi-encoder's pooled, normalised embeddings from its exported graph (DenseEncoder's onnx path)."""

    def __init__(self, name: str, backend: str, max_length: int | None = None, threads: int | None = None,
                 device: str | None = None):
        folder, meta, self.session = _load(name, backend, "dense", threads, device)
        self.dim = int(meta["dim"])
        self.max_length = int(max_length or meta.get("max_seq_length") or 512)
        self.tokens = _Tokens(folder, self.max_length, bool(meta.get("lower")), int(meta.get("pad_id", 0)))

    def encode(self, texts: Sequence[str], batch_size: int, progress=None) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for idx, ids, mask in self.tokens.batches(texts, batch_size):
            out[idx] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            if progress:
                progress(len(idx))
        return out


def exported_meta(name: str, backend: str, role: str) -> dict:
    """The export record of ``name`` for ``backend`` (exporting first if needed): for ``lsr info``-style reports."""
    return read_meta(exported(name, backend, role)) or {}
