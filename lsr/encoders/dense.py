"""DenseEncoder: a sentence-transformers bi-encoder (the dense list of a hybrid index), on torch or ONNX Runtime."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ModelError


class DenseEncoder:
    """A sentence-transformers bi-encoder by lsr name (``minilm``), folder or HF id.

    ``backend`` "onnx" / "onnx-int8" runs the model's exported graph (pooling and normalisation inside it)
    on ONNX Runtime, without torch once exported (:mod:`.backends`); ``threads`` are intra-op threads.
    """

    def __init__(self, name: str = "minilm", batch_size: int = 64, device: str | None = None,
                 max_length: int | None = None, backend: str = "torch", threads: int | None = None):
        from .backends import check_backend, check_threads
        from .registry import resolve_model
        self.backend, self.threads = check_backend(backend), check_threads(threads)
        resolved = resolve_model(name, expect="dense")  # a sparse or unknown model fails here, before any export
        self.name = name
        self.batch_size = int(batch_size)
        self.model = self._onnx = None
        if self.backend != "torch":
            from .onnx_runtime import OnnxDenseModel
            self._onnx = OnnxDenseModel(name, self.backend, max_length, self.threads, device)
            self.dim = self._onnx.dim
            return
        from sentence_transformers import SentenceTransformer

        from .backends import LOAD_LOCK
        with LOAD_LOCK:
            self.model = SentenceTransformer(str(resolved.path), device=device or "cpu")
        if max_length:
            self.model.max_seq_length = int(max_length)
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim())

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        from .base import encode_distinct
        texts = list(texts)
        out = encode_distinct(texts, lambda t: self.encode(t, progress), progress)  # each distinct text once
        if out is not None:
            return out
        if self._onnx is not None:
            emb = self._onnx.encode(texts, self.batch_size, progress if callable(progress) else None)
        else:
            from .backends import default_threads, set_torch_threads
            set_torch_threads(self.threads or (1 if len(texts) == 1 else default_threads()))
            emb = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                    show_progress_bar=progress)
        emb = np.asarray(emb, dtype=np.float32)
        if not np.isfinite(emb).all():
            raise ModelError(f"dense model {self.name!r} produced NaN or infinite embeddings")
        return emb

    encode_queries = encode
    encode_documents = encode
