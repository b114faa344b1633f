"""DenseEncoder: a sentence-transformers bi-encoder (the dense list of a hybrid index)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ModelError


class DenseEncoder:
    """A sentence-transformers bi-encoder by lsr name (``minilm``), folder or HF id."""

    def __init__(self, name: str = "minilm", batch_size: int = 64, device: str | None = None,
                 max_length: int | None = None):
        from .registry import resolve_model
        resolved = resolve_model(name, expect="dense")
        from sentence_transformers import SentenceTransformer
        self.name = name
        self.model = SentenceTransformer(str(resolved.path), device=device or "cpu")
        if max_length:
            self.model.max_seq_length = int(max_length)
        self.batch_size = int(batch_size)
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim())

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        emb = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                show_progress_bar=progress)
        emb = np.asarray(emb, dtype=np.float32)
        if not np.isfinite(emb).all():
            raise ModelError(f"dense model {self.name!r} produced NaN or infinite embeddings")
        return emb

    encode_queries = encode
    encode_documents = encode
