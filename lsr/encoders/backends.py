"""Inference backends: torch (the model as loaded), onnx and onnx-int8 (ONNX Runtime on an exported graph).

An exported graph is made once per model and backend and cached under the
lsr cache directory (``$LSR_CACHE/onnx/<model>-<fingerprint>/<backend>/``,
default ``~/.cache/lsr``), keyed by the source model's content fingerprint
(:mod:`.fingerprint`): retraining a model into the same folder exports again,
never reuses a stale graph. A cached graph loads without torch or
transformers (ONNX Runtime and the ``tokenizers`` library only), which is what
makes a cold ``lsr search`` fast.

Threads: ONNX Runtime sessions take ``threads`` as their intra-op thread
count; torch's count is process-wide (``torch.set_num_threads``). Either way
lsr picks it rather than letting a runtime spin one thread per core on a
machine that is busy with other work (the oversubscription that made a torch
query 30x slower under load).
"""
from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

from ..errors import ModelError

BACKENDS = ("torch", "onnx", "onnx-int8")
# transformers builds a model on the meta device and then moves it: two threads loading two models at once
# can fail ("Cannot copy out of meta tensor"). Loads (and exports, which load) take this lock.
LOAD_LOCK = threading.RLock()
FORMAT = 2  # bumped when the exported graph's inputs, outputs or files change: old caches export again
META = "export.json"


def check_backend(backend: str | None) -> str:
    """``backend`` validated (None means "torch")."""
    backend = backend or "torch"
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return backend


def check_threads(threads: int | None) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ModelError(f"threads must be a positive integer, got {threads!r}")
    return threads


def default_threads() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def export_dir(name: str, fingerprint: str, backend: str) -> Path:
    from .registry import cache_dir
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(name)).name or str(name)).strip("_")[:60] or "model"
    return cache_dir() / "onnx" / f"{slug}-{fingerprint.split(':')[-1][:16]}" / backend


def exported(name: str, backend: str, role: str) -> Path:
    """The folder of ``name``'s exported graph for ``backend`` (``role``: "splade" or "dense"), exporting
    it first when the cache has none for the model's current files."""
    from .fingerprint import model_fingerprint
    fp = model_fingerprint(name)
    folder = export_dir(name, fp, backend)
    fresh = lambda meta: meta is not None and (meta.get("fingerprint"), meta.get("role"), meta.get("format")) \
        == (fp, role, FORMAT)
    if fresh(read_meta(folder)):
        return folder
    with LOAD_LOCK:
        if not fresh(read_meta(folder)):  # another thread may have exported it while this one waited
            from .onnx_export import export
            export(name, backend, role, folder, fp)
    return folder


def read_meta(folder: Path) -> dict | None:
    try:
        meta = json.loads((Path(folder) / META).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def session(path: Path, threads: int | None, device: str | None):
    """An ONNX Runtime session on ``path`` with ``threads`` intra-op threads, on ``device`` (cpu or cuda)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("the onnx backends need ONNX Runtime: pip install onnxruntime "
                         "(onnxruntime-gpu for --device cuda)") from None
    providers = ["CPUExecutionProvider"]
    if device and str(device).startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ModelError(f"device {device!r}: this ONNX Runtime has no CUDA provider "
                             "(pip install onnxruntime-gpu), or use --backend torch")
        index = str(device).partition(":")[2]
        providers = [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]
    elif device not in (None, "cpu"):
        raise ModelError(f"device {device!r}: the onnx backends run on cpu or cuda")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or default_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if os.environ.get("LSR_ORT_SPIN") != "1":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's business
    try:
        return ort.InferenceSession(str(path), so, providers=providers)
    except Exception as e:  # ORT raises its own exception types; a broken cache file is one of them
        raise ModelError(f"{path}: ONNX Runtime cannot load the exported graph ({str(e).splitlines()[0]}); "
                         f"delete {Path(path).parent} to export it again") from None


def set_torch_threads(threads: int | None) -> None:
    """torch's intra-op threads (process-wide), set only when it differs: the call is not free."""
    if threads is None:
        return
    import torch
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
