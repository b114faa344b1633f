"""Text -> sparse vectors. Heavy imports (torch, transformers) happen on load, not here."""
from ..errors import ModelError
from .registry import BUNDLED, ResolvedModel, bundled_models, resolve_model


def load_encoder(name: str, max_length: int = 256, batch_size: int = 32, device: str | None = None):
    """Load a sparse encoder by bundled name, composition name (:mod:`lsr.encoders.compose`),
    local folder or Hugging Face id."""
    from .compose import build, parse_name
    from .splade import SpladeEncoder
    from ..retrieval.bm25 import is_bm25_name
    if is_bm25_name(name):
        raise ModelError(f"{name!r} is fitted on a corpus, not loaded: build an index with "
                         f"`lsr index DATASET --model {name}` (lsr.retrieval.bm25.BM25Encoder.fit in Python)")
    spec = parse_name(name)
    if spec is not None:
        return SpladeEncoder(build(spec, max_length=max_length, device=device), name, max_length, batch_size)
    resolved = resolve_model(name)
    if resolved.kind not in (None, "splade"):
        what = "a causal LM; use it as a sparse encoder with --model echo@" + name if resolved.kind == "causal-lm" \
            else f"a {resolved.kind} model, not a sparse encoder"
        raise ModelError(f"model {name!r} is {what}")
    return SpladeEncoder.load(name, max_length=max_length, batch_size=batch_size, device=device, resolved=resolved)


def load_query_encoder(name: str, max_length: int = 256, batch_size: int = 32, device: str | None = None):
    """The encoder for queries only: torch-free when the model's query side is a
    token-weight table (inference-free models, ``qidf_*`` / ``qbin_*``), else :func:`load_encoder`."""
    from .static import StaticQueryEncoder
    enc = StaticQueryEncoder.for_model(name)
    return enc if enc is not None else load_encoder(name, max_length, batch_size, device)


__all__ = ["load_encoder", "load_query_encoder", "resolve_model", "ResolvedModel", "BUNDLED", "bundled_models"]
