"""Bounds validated at load: whatever the array files hold, a kernel never reads out of bounds.

Checksums catch corruption; these checks make the kernels safe even where
a checksum is not verified (``verify="quick"``) or was recomputed by whoever
altered the files: every pointer array starts at 0, never decreases and
ends at the length of the array it indexes; every document number, term id,
block and directory reference is in range; float values are finite. All
vectorised numpy, one pass over each array (docs/index-format.md gives the
measured cost). A failure is an :class:`lsr.errors.IndexError_` naming the
array file, never a segfault or a score of 6e24 later.

The manifest's values that code trusts (counts, stored search defaults) are
range-checked here too, naming the manifest and the key.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import IndexError_
from ..layout import MANIFEST
from . import params as index_params
from .params import SeismicSearchParams


def _fail(path: Path, name: str, what: str):
    raise IndexError_(f"{Path(path) / (name + '.npy')}: {what} (corrupt index); rebuild the index with `lsr index`")


def pointers(path: Path, name: str, ptr: np.ndarray, n_items: int, length: int) -> None:
    """``ptr`` has ``n_items + 1`` entries, starts at 0, never decreases and ends at ``length``."""
    if ptr.ndim != 1 or len(ptr) != n_items + 1:
        _fail(path, name, f"{len(ptr)} offsets, expected {n_items + 1}")
    if ptr[0] != 0 or ptr[-1] != length:
        _fail(path, name, f"offsets run from {ptr[0]} to {ptr[-1]}, expected 0 to {length}")
    if n_items and bool(np.any(ptr[1:] < ptr[:-1])):
        _fail(path, name, "offsets decrease")


def in_range(path: Path, name: str, values: np.ndarray, hi: int, lo: int = 0) -> None:
    """Every value in [lo, hi)."""
    if not len(values):
        return
    vmin, vmax = int(values.min()), int(values.max())
    if vmin < lo or vmax >= hi:
        _fail(path, name, f"values run from {vmin} to {vmax}, outside [{lo}, {hi})")


def finite(path: Path, name: str, values: np.ndarray) -> None:
    """No NaN or infinity (float32 values, or float16 bit patterns stored as uint16)."""
    if not len(values):
        return
    if values.dtype == np.uint16:  # float16 bits: exponent all ones is inf or NaN
        bad = bool(np.any((values & np.uint16(0x7C00)) == np.uint16(0x7C00)))
    else:
        bad = not bool(np.isfinite(values).all())
    if bad:
        _fail(path, name, "NaN or infinite values")


def _manifest_fail(folder: Path, key: str, what: str):
    raise IndexError_(f"{Path(folder) / MANIFEST}: {key} {what}; rebuild the index (or rerun `lsr tune`)")


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_counts(folder: Path, manifest: dict) -> None:
    """``counts`` holds non-negative integer ``docs`` and ``postings``."""
    counts = manifest.get("counts")
    if not isinstance(counts, dict):
        _manifest_fail(folder, "'counts'", "is missing or not an object")
    for key in ("docs", "postings"):
        if not _int(counts.get(key)) or counts[key] < 0:
            _manifest_fail(folder, f"'counts.{key}'", f"is {counts.get(key)!r}, expected an integer >= 0")


def check_search_defaults(folder: Path, params) -> None:
    """Stored seismic search defaults (``lsr tune`` writes them): query_cut int >= 1, heap_factor a finite
    number >= 0, knn int >= 0; absent or null means the built-in default."""
    if params is None:
        return
    if not isinstance(params, dict):
        _manifest_fail(folder, "'params'", f"is {params!r}, expected an object")
    # The rules search applies to these parameters (params.py), read from the manifest's own wording.
    for key, rule in index_params.rules(SeismicSearchParams).items():
        value = params.get(key)
        if value is not None and rule.problem(value) is not None:
            _manifest_fail(folder, f"'params.{key}'", f"is {value!r}, expected {rule.expected}")


def check_seismic_bounds(path: Path, ix, n: int, dim: int, dir_sample: int) -> None:
    """Every array index kernels/seismic_search.py computes, checked once at load.

    * lists: ``list_block_ptr`` / ``dir_ptr`` over the vocabulary; blocks:
      ``block_ptr`` over the postings; ``fwd_ptr`` over the forward index;
    * ``block_docs`` (visited[d], allowed[d]) and ``knn_nbrs`` (< 0 ends a
      row) are document numbers; ``fwd_idx`` are term ids (q[t]);
    * ``block_fwd`` packs (start << 16 | length) of a document's forward
      row: the row lies inside the forward index;
    * summary entries: ``dir_off`` is the entry offset of every
      ``dir_sample``-th directory row and the counts ``dir_cnt + 1`` add up to
      the entries, so each directory row's entry range is inside ``ent_blk``;
      each list's entries name one of the list's own blocks (acc[bl]);
    * summary scales and forward values are finite.
    """
    n_blocks = len(ix.block_ptr) - 1
    pointers(path, "list_block_ptr", ix.list_block_ptr, dim, n_blocks)
    pointers(path, "block_ptr", ix.block_ptr, n_blocks, len(ix.block_docs))
    pointers(path, "dir_ptr", ix.dir_ptr, dim, len(ix.dir_terms))
    pointers(path, "fwd_ptr", ix.fwd_ptr, n, len(ix.fwd_idx))
    in_range(path, "block_docs", ix.block_docs, n)
    in_range(path, "knn_nbrs", ix.knn_nbrs, n, lo=-(1 << 62))
    in_range(path, "fwd_idx", ix.fwd_idx, dim)
    bf = ix.block_fwd
    if len(bf) and (int(bf.min()) < 0 or int(((bf >> 16) + (bf & 0xFFFF)).max()) > len(ix.fwd_idx)):
        _fail(path, "block_fwd", "a posting points outside the forward index")
    if np.issubdtype(ix.dir_cnt.dtype, np.signedinteger):
        in_range(path, "dir_cnt", ix.dir_cnt, 1 << 62)
    if np.issubdtype(ix.ent_blk.dtype, np.signedinteger):
        in_range(path, "ent_blk", ix.ent_blk, 1 << 62)
    # One pass in numba: the summary arrays are the index's largest, and numpy's reductions over
    # uint8 with int64 sums cost ~6x more (measured, 130 MB of summaries: 200 ms vs ~30 ms).
    code, where = _summaries(np.asarray(ix.dir_ptr), np.asarray(ix.dir_cnt), np.asarray(ix.dir_off),
                             np.asarray(ix.ent_blk), np.asarray(ix.list_block_ptr), dir_sample)
    if code == 1:
        _fail(path, "dir_off", f"sampled entry offset {where} disagrees with dir_cnt.npy")
    if code == 2:
        _fail(path, "dir_cnt", f"the summary directory counts {where} entries, ent_blk.npy has {len(ix.ent_blk)}")
    if code == 3:
        _fail(path, "ent_blk", f"a summary entry of term {where}'s list names a block outside the list")
    finite(path, "sum_min", ix.sum_min)
    finite(path, "sum_scale", ix.sum_scale)
    finite(path, "fwd_codes" if len(ix.fwd_codes) else "fwd_val", ix.fwd_codes if len(ix.fwd_codes) else ix.fwd_val)


def check_exact_bounds(path: Path, ix, n: int, dim: int) -> None:
    """kernels/exact.py: post_ptr over the postings, post_docs document numbers (acc[d]), finite values."""
    pointers(path, "post_ptr", ix.post_ptr, dim, len(ix.post_docs))
    if len(ix.post_vals) != len(ix.post_docs):
        _fail(path, "post_vals", f"{len(ix.post_vals)} values for {len(ix.post_docs)} postings")
    in_range(path, "post_docs", ix.post_docs, n)
    finite(path, "post_vals", ix.post_vals)


_SUMMARIES = None


def _summaries(dir_ptr, dir_cnt, dir_off, ent_blk, list_block_ptr, sample):
    """(0, 0) when the summary directory is consistent, else (problem, where): 1 dir_off wrong at
    sample ``where``, 2 the counts add up to ``where`` entries, not len(ent_blk), 3 list ``where`` has
    an entry naming a block beyond its own. Compiled on first use (numba, cached on disk)."""
    global _SUMMARIES
    if _SUMMARIES is None:
        from numba import njit

        @njit(cache=True)
        def check(dir_ptr, dir_cnt, dir_off, ent_blk, list_block_ptr, sample):
            rows, n_ent = dir_cnt.shape[0], ent_blk.shape[0]
            off = np.int64(0)
            for g in range(dir_off.shape[0]):
                if np.int64(dir_off[g]) != off:
                    return 1, g
                for r in range(g * sample, min(rows, (g + 1) * sample)):
                    off += np.int64(dir_cnt[r]) + 1
            if off != n_ent or dir_off.shape[0] * sample < rows:
                return 2, off
            for t in range(dir_ptr.shape[0] - 1):
                r0, r1 = dir_ptr[t], dir_ptr[t + 1]
                if r1 == r0:
                    continue
                # entry offsets of rows r0 and r1 from the (now verified) sampled offsets
                start = np.int64(dir_off[r0 // sample]) if r0 // sample < dir_off.shape[0] else off
                for r in range((r0 // sample) * sample, r0):
                    start += np.int64(dir_cnt[r]) + 1
                stop = np.int64(dir_off[r1 // sample]) if r1 // sample < dir_off.shape[0] else off
                for r in range((r1 // sample) * sample, r1):
                    stop += np.int64(dir_cnt[r]) + 1
                top = np.int64(0)
                for e in range(start, stop):
                    top = max(top, np.int64(ent_blk[e]))
                if top >= list_block_ptr[t + 1] - list_block_ptr[t]:
                    return 3, t
            return 0, 0
        _SUMMARIES = check
    return _SUMMARIES(dir_ptr, dir_cnt, dir_off, ent_blk, list_block_ptr, sample)
