"""Text -> sparse vectors. Heavy imports (torch, transformers) happen on load, not here."""
from ..errors import ModelError
from .registry import BUNDLED, ResolvedModel, bundled_models, resolve_model


def load_encoder(name: str, max_length: int = 256, batch_size: int = 32, device: str | None = None):
    """Load a sparse encoder by bundled name, local folder or Hugging Face id."""
    from .splade import SpladeEncoder
    resolved = resolve_model(name)
    if resolved.kind not in (None, "splade"):
        raise ModelError(f"model {name!r} is a {resolved.kind} model, not a sparse encoder")
    return SpladeEncoder.load(name, max_length=max_length, batch_size=batch_size, device=device, resolved=resolved)


__all__ = ["load_encoder", "resolve_model", "ResolvedModel", "BUNDLED", "bundled_models"]
