"""Numba kernels (no torch). Compiled on first use and cached on disk.

numba keys each cached function on its own module's source file only, so
editing a helper module (``simd.py``, ``topk.py``) would leave stale compiled
code for the kernels that inline it. On import we fingerprint every kernel
source together and drop this package's numba cache when the fingerprint
changed: one recompilation after an edit, never a stale kernel.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..atomic import write_text


def _drop_stale_cache(here: Path) -> None:
    cache = here / "__pycache__"
    h = hashlib.sha256()
    for src in sorted(here.glob("*.py")):
        h.update(src.name.encode())
        h.update(src.read_bytes())
    stamp = cache / "lsr-kernels.fingerprint"
    fingerprint = h.hexdigest()
    try:
        if stamp.exists() and stamp.read_text() == fingerprint:
            return
        if cache.is_dir():
            for f in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
                f.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        write_text(stamp, fingerprint)
    except OSError:  # a read-only install: numba then caches elsewhere (or not at all)
        pass


_drop_stale_cache(Path(__file__).resolve().parent)
