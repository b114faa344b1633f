"""The vectorised sparse dot product against numpy, for every stored encoding and loop tail."""
import numpy as np
import pytest
from numba import njit

from lsr.kernels.simd import _make_sparse_dot, prefetch, sparse_dot

# The integer float16 decoder is what CPUs without F16C run; build it here too.
soft_dot = _make_sparse_dot(False)


@njit
def _dot(q, idx, vals, a, b):
    return sparse_dot(q, idx, vals, a, b)


@njit
def _soft(q, idx, vals, a, b):
    return soft_dot(q, idx, vals, a, b)


@njit
def _prefetch_all(arr):
    for i in range(0, arr.shape[0], 16):
        prefetch(arr, i)
    return arr.sum()


def _reference(q, idx, values, a, b):
    return float((q[idx[a:b]].astype(np.float64) * values[a:b].astype(np.float64)).sum())


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 250])
@pytest.mark.parametrize("idx_dtype", [np.uint16, np.int32])
@pytest.mark.parametrize("encoding", ["f32", "f16"])
def test_sparse_dot_matches_numpy(n, idx_dtype, encoding):
    rng = np.random.default_rng(n)
    q = rng.random(30522).astype(np.float32)
    idx = rng.integers(0, 30522, n + 6).astype(idx_dtype)
    raw = rng.random(n + 6).astype(np.float32) * 3
    if encoding == "f32":
        vals, decoded = raw, raw
    else:
        vals = raw.astype(np.float16).view(np.uint16)
        decoded = raw.astype(np.float16).astype(np.float32)
    want = _reference(q, idx, decoded, 3, 3 + n)  # an offset start: unaligned vector loads
    for fn in (_dot, _soft):
        assert fn(q, idx, vals, 3, 3 + n) == pytest.approx(want, rel=1e-5, abs=1e-5)


def test_integer_float16_decoding_is_exact_for_every_bit_pattern():
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    with np.errstate(invalid="ignore"):
        want = bits.view(np.float16).astype(np.float32)
    q = np.ones(1, dtype=np.float32)
    idx = np.zeros(1, dtype=np.uint16)
    # every 7th pattern, plus zeros, subnormal and normal limits, infinities
    sel = np.r_[np.arange(0, 65536, 7), [0x0000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00, 0x8001, 0x8000]]
    got = np.array([_soft(q, idx, bits[i:i + 1], 0, 1) for i in sel], dtype=np.float32)
    w = want[sel]
    nan = np.isnan(w)
    assert np.array_equal(np.isnan(got), nan)
    # exact values (a sum starting at +0 cannot show a -0 sign, so compare values, not bits)
    assert np.array_equal(got[~nan], w[~nan])
    # and the vector lanes decode like the scalar tail
    lanes = bits[sel[np.isfinite(w)]][:4096]
    idx = np.zeros(len(lanes), dtype=np.uint16)
    total = _soft(q, idx, lanes, 0, len(lanes))
    assert total == pytest.approx(float(want[lanes].astype(np.float64).sum()), rel=1e-5)


def test_prefetch_has_no_effect_on_values():
    arr = np.arange(1000, dtype=np.float32)
    assert _prefetch_all(arr) == arr.sum()
