"""Torch-free query encoding for models whose query side is a token-weight table.

An inference-free model (OpenSearch doc-v2/v3 style; ``lsr train`` with
``model.kind = "inference_free"``; compositions ``qidf_*`` and ``qbin_*``)
encodes a query as the table's weight at each of its tokens. That needs a
tokenizer and an array, not a neural network: this encoder reads the
table's ``tokenizer.json`` with the ``tokenizers`` library and its weights
with ``safetensors.numpy``, so ``lsr search`` on such an index never
imports torch (which alone takes about two seconds to import).

It reproduces sentence-transformers' ``SparseStaticEmbedding``: no special
tokens, truncation at the tokenizer's ``model_max_length``, each distinct
token once with its weight (tested against ST's ``encode_query``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelError
from ..sparse import SparseVectors, Vocabulary

STATIC_TYPE = "sentence_transformers.sparse_encoder.modules.sparse_static_embedding.SparseStaticEmbedding"


class StaticQueryEncoder:
    """An :class:`lsr.encoders.Encoder` for queries only (``encode_documents`` raises ModelError)."""

    kind = "static"
    inference_free = True

    def __init__(self, tokenizer_dir, weights: np.ndarray | None = None, name: str = ""):
        from tokenizers import Tokenizer
        tokenizer_dir = Path(tokenizer_dir)
        path = tokenizer_dir / "tokenizer.json"
        if not path.exists():
            raise ModelError(f"{tokenizer_dir}: no tokenizer.json for torch-free query encoding")
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_padding()
        self._counter = Tokenizer.from_file(str(path))  # untruncated, for token_length (no shared state to flip)
        max_len = 512
        cfg = tokenizer_dir / "tokenizer_config.json"
        if cfg.exists():
            max_len = int(json.loads(cfg.read_text()).get("model_max_length") or max_len)
            max_len = min(max_len, 1_000_000)  # HF's "no limit" is 1e30
        self.max_length = max_len
        self.tokenizer.enable_truncation(max_length=max_len)
        self.vocab = Vocabulary.from_tokenizer(self.tokenizer)  # same ids and names as the HF tokenizer's
        self.weights = np.ones(self.vocab.size, np.float32) if weights is None else np.asarray(weights, np.float32)
        if self.weights.shape != (self.vocab.size,):
            raise ModelError(f"{tokenizer_dir}: weight table has {self.weights.shape} entries, "
                             f"the tokenizer {self.vocab.size}")
        if not np.isfinite(self.weights).all():
            raise ModelError(f"{tokenizer_dir}: the query weight table has NaN or infinite weights")
        self.name = name

    @classmethod
    def from_st_module(cls, module_dir, name: str = "") -> StaticQueryEncoder:
        """From a saved SparseStaticEmbedding folder (its tokenizer and ``model.safetensors``)."""
        from safetensors.numpy import load_file
        module_dir = Path(module_dir)
        weights = load_file(str(module_dir / "model.safetensors"))["weight"]
        return cls(module_dir, weights, name)

    @classmethod
    def for_model(cls, name: str) -> StaticQueryEncoder | None:
        """The torch-free query encoder of model ``name``, or None if its queries need the network."""
        from .names import parse_name
        from .registry import resolve_model
        spec = parse_name(name)
        if spec is not None:
            if spec.family == "unified" and spec.query == "bin":
                return cls(resolve_model(spec.base).path, None, name)
            return None
        try:
            folder = resolve_model(name).path
        except ModelError:
            return None  # load_encoder reports it
        route = static_query_route(folder)
        return cls.from_st_module(route, name) if route is not None else None

    # ------------------------------------------------------------ encoding
    def token_length(self, text: str) -> int:
        """Tokens ``text`` has before truncation."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def encode_queries(self, texts: Sequence[str], batch_size: int | None = None, progress=None) -> SparseVectors:
        texts = list(texts)
        encs = self.tokenizer.encode_batch(texts, add_special_tokens=False) if texts else []
        indptr = np.zeros(len(texts) + 1, np.int64)
        cols, vals = [], []
        for i, e in enumerate(encs):
            ids = np.unique(np.asarray(e.ids, dtype=np.int64))
            w = self.weights[ids]
            keep = w != 0
            cols.append(ids[keep].astype(np.int32))
            vals.append(w[keep])
            indptr[i + 1] = indptr[i] + int(keep.sum())
        if progress:
            progress(len(texts))
        cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))  # noqa: E731
        return SparseVectors(indptr, cat(cols, np.int32), cat(vals, np.float32), self.vocab)

    def encode_documents(self, texts, **kw):
        raise ModelError(f"{self.name or 'this encoder'} encodes queries only; documents need the full model")


def static_query_route(folder) -> Path | None:
    """The saved SparseStaticEmbedding folder of an ST Router model's "query" route, if that is all the route holds."""
    folder = Path(folder)
    try:
        modules = json.loads((folder / "modules.json").read_text())
        router = json.loads((folder / "router_config.json").read_text())
    except (OSError, ValueError):
        return None
    if len(modules) != 1 or not modules[0].get("type", "").endswith("Router"):
        return None
    route = router.get("structure", {}).get("query") or []
    if len(route) != 1 or router.get("types", {}).get(route[0]) != STATIC_TYPE:
        return None
    sub = folder / modules[0].get("path", "") / route[0]
    return sub if (sub / "model.safetensors").exists() else None
