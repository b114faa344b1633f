"""Text -> sparse vectors. Heavy imports (torch, transformers) happen on load, not here.

Model names: :mod:`.names` (grammar, :func:`describe`); weights on disk:
:mod:`.registry` (:func:`resolve_model`); the encoder contract:
:class:`Encoder` (:mod:`.base`).
"""
from ..errors import ModelError
from .backends import BACKENDS
from .base import Encoder
from .names import (
    ALIASES,
    BUNDLED,
    BundledModel,
    ModelName,
    Spec,
    bundled_models,
    describe,
    installed_location,
    is_bm25_name,
    parse_bm25_name,
    parse_name,
)
from .registry import ResolvedModel, resolve_model

# Encoder classes import numpy / pyarrow / torch at module level; PEP 562 keeps them lazy.
_LAZY = {"BM25Encoder": ".bm25", "DenseEncoder": ".dense", "SpladeEncoder": ".splade",
         "StaticQueryEncoder": ".static"}


def __getattr__(attr):
    if attr in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[attr], __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def load_encoder(name: str, max_length: int = 256, batch_size: int = 32, device: str | None = None,
                 backend: str = "torch", threads: int | None = None):
    """Load a sparse encoder by bundled name, composition name (:mod:`lsr.encoders.compose`),
    local folder or Hugging Face id.

    ``backend``: "torch" (the model as loaded), "onnx" or "onnx-int8" (ONNX
    Runtime on a graph exported once and cached, :mod:`.backends`).
    ``threads``: intra-op threads (None: the cores this process may use).
    """
    from .backends import check_backend, check_threads
    backend, threads = check_backend(backend), check_threads(threads)
    d = describe(name)
    if d.kind == "bm25":
        raise ModelError(f"{name!r} is fitted on a corpus, not loaded: build an index with "
                         f"`lsr index DATASET --model {name}` (lsr.encoders.BM25Encoder.fit in Python)")
    if backend != "torch":
        if d.kind == "composition":
            raise ModelError(f"{name!r} is a composition (task-aware modules): only backend 'torch' runs it")
        from .onnx_runtime import OnnxSpladeEncoder
        return OnnxSpladeEncoder(name, backend, max_length, batch_size, threads, device)
    from .backends import LOAD_LOCK
    from .splade import SpladeEncoder
    with LOAD_LOCK:
        if d.kind == "composition":
            from .compose import build
            enc = SpladeEncoder(build(d.composition, max_length=max_length, device=device), name, max_length,
                                batch_size)
        else:
            resolved = resolve_model(name, expect="splade")
            enc = SpladeEncoder.load(name, max_length=max_length, batch_size=batch_size, device=device,
                                     resolved=resolved)
    enc.threads = threads
    return enc


def load_query_encoder(name: str, max_length: int = 256, batch_size: int = 32, device: str | None = None,
                       backend: str = "torch", threads: int | None = None):
    """The encoder for queries only: torch-free when the model's query side is a
    token-weight table (inference-free models, ``qidf_*`` / ``qbin_*``), else :func:`load_encoder`."""
    from .backends import check_backend
    from .static import StaticQueryEncoder
    check_backend(backend)
    enc = StaticQueryEncoder.for_model(name)
    return enc if enc is not None else load_encoder(name, max_length, batch_size, device, backend, threads)


__all__ = ["BACKENDS", "load_encoder", "load_query_encoder", "resolve_model", "ResolvedModel", "BUNDLED", "ALIASES",
           "BundledModel", "bundled_models", "describe", "ModelName", "installed_location", "parse_name", "Spec",
           "is_bm25_name", "parse_bm25_name", "Encoder", "BM25Encoder", "DenseEncoder", "SpladeEncoder",
           "StaticQueryEncoder"]
