"""How an index's models run: the inference backend, intra-op threads and device, checked before any model loads.

An index records the backend its documents were encoded with (the manifest's
"encoder" entry, the dense list's config); its queries use that one unless the
caller names another. ``device`` is checked here, not when the model loads, so
that ``--device cuda`` on a machine without a GPU fails at once with the
device named, before an index opens or a graph is exported.
"""
from __future__ import annotations

import re

from ..errors import ModelError

DEVICE = re.compile(r"cpu|cuda(?::(\d+))?")


def check_inference(backend: str | None, threads: int | None, device: str | None,
                    default: str | None = "torch") -> tuple[str | None, int | None, str | None]:
    """(backend, threads, device) validated; a backend of None becomes ``default`` (None: still to be read from
    the index), and a device is checked against the backend that will run it when that one is known."""
    from ..encoders.backends import check_backend, check_threads
    backend = check_backend(backend) if backend is not None else default
    return backend, check_threads(threads), check_device(device, backend)


def check_device(device: str | None, backend: str | None = None) -> str | None:
    """``device`` ("cpu", "cuda" or "cuda:N") normalised, refused (ModelError naming it) when malformed or when
    ``backend`` cannot run there on this machine; None stays None (the runtime's default: cpu)."""
    if device is None:
        return None
    name = str(device).strip().lower()
    m = DEVICE.fullmatch(name)
    if m is None:
        raise ModelError(f"device {device!r}: choose cpu, cuda or cuda:N (the N-th GPU)")
    if name == "cpu" or backend is None:
        return name
    number = int(m.group(1) or 0)
    if backend == "torch":
        import torch  # only for a cuda device: a cpu search never pays for the import here
        if not torch.cuda.is_available():
            raise ModelError(f"device {device!r}: torch finds no CUDA GPU on this machine (or was built without "
                             "CUDA); use --device cpu")
        if number >= torch.cuda.device_count():
            raise ModelError(f"device {device!r}: torch finds {torch.cuda.device_count()} CUDA GPU(s) "
                             f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
        return name
    try:
        import onnxruntime as ort
    except ImportError:
        return name  # the session names the missing package when the model loads
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ModelError(f"device {device!r}: this ONNX Runtime has no CUDA provider (pip install "
                         "onnxruntime-gpu), or use --backend torch or --device cpu")
    return name


def query_backend(index_dir, recorded: dict, backend: str | None, device: str | None) -> tuple[str, str | None]:
    """(backend, device) the queries of a list run on: ``backend`` when given, else the one the list records
    in ``recorded`` (an index built before backends were recorded: torch); the device checked against it."""
    from ..encoders.backends import BACKENDS
    if backend is None:
        backend = recorded.get("backend") or "torch"
        if backend not in BACKENDS:
            raise ModelError(f"{index_dir} records the inference backend {backend!r}, which this lsr does not "
                             f"know ({', '.join(BACKENDS)}); pass one explicitly (--backend)")
    return backend, check_device(device, backend)
