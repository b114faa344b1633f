"""The vectorised sparse dot products against numpy, for every stored encoding and loop tail."""
import numpy as np
import pytest
from numba import njit

from lsr.kernels.simd import FILTER_WORDS, HAVE_AVX512, _make_forward_dot, _make_sparse_dot, prefetch, sparse_dot

# The integer float16 decoder is what CPUs without F16C run; build it here too.
soft_dot = _make_sparse_dot(False)


@njit
def _dot(q, idx, vals, a, b):
    return sparse_dot(q, idx, vals, a, b)


@njit
def _soft(q, idx, vals, a, b):
    return soft_dot(q, idx, vals, a, b)


# The kernels' scoring intrinsic: with the AVX-512 filter path where the CPU
# has it, and as every other CPU builds it.
forward_fast = _make_forward_dot(HAVE_AVX512, True)
forward_plain = _make_forward_dot(False, True)


@njit
def _forward(q, bits, use_filter, idx, codes, vals, f16, a, b):
    return forward_fast(q, bits, use_filter, idx, codes, vals, f16, a, b)


@njit
def _forward_plain(q, bits, use_filter, idx, codes, vals, f16, a, b):
    return forward_plain(q, bits, use_filter, idx, codes, vals, f16, a, b)


def _stored(raw, encoding):
    """(codes, vals, f16, decoded): the forward index's two value arrays, one of them empty, as an index holds them."""
    if encoding == "f32":
        return np.zeros(0, np.uint16), raw, False, raw
    half = raw.astype(np.float16)
    return half.view(np.uint16), np.zeros(0, np.float32), True, half.astype(np.float32)


def _query(rng, terms):
    """A dense query vector over ``terms`` and its filter, built as the search kernels build them."""
    q = np.zeros(70000, dtype=np.float32)
    q[terms] = rng.random(len(terms)).astype(np.float32) + 0.1
    bits = np.zeros(FILTER_WORDS, dtype=np.uint32)
    for t in terms:
        bits[(t >> 5) & 31] |= np.uint32(1 << (int(t) & 31))
    return q, bits


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


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 31, 32, 33, 250, 700])
@pytest.mark.parametrize("idx_dtype", [np.uint16, np.int32])
@pytest.mark.parametrize("encoding", ["f32", "f16"])
@pytest.mark.parametrize("use_filter", [True, False], ids=["filtered", "plain"])
def test_forward_dot_matches_numpy(n, idx_dtype, encoding, use_filter):
    rng = np.random.default_rng(1000 + n)
    vocab = 30522 if idx_dtype == np.uint16 else 70000
    idx = rng.integers(0, vocab, n + 6).astype(idx_dtype)
    # query terms: some shared with the document, some not, and some that
    # share a filter bit with a document term without being it (t + 1024)
    shared = np.unique(idx[3:3 + n])[: max(1, n // 20)] if n else np.array([], dtype=np.int64)
    terms = np.unique(np.r_[shared, rng.integers(0, vocab - 1024, 12), (shared + 1024) % vocab]).astype(np.int64)
    q, bits = _query(rng, terms)
    codes, vals, f16, decoded = _stored(rng.random(n + 6).astype(np.float32) * 3, encoding)
    want = _reference(q, idx, decoded, 3, 3 + n)
    for fn in (_forward, _forward_plain):
        assert fn(q, bits, use_filter, idx, codes, vals, f16, 3, 3 + n) == pytest.approx(want, rel=1e-5, abs=1e-5)


def test_filtered_path_with_every_term_a_candidate_flushes_its_buffer():
    # An all-ones filter makes each of the 700 terms a candidate: more than
    # the buffer holds, so it is summed and emptied several times.
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 30522, 700).astype(np.uint16)
    q = rng.random(30522).astype(np.float32)
    codes, vals, f16, decoded = _stored(rng.random(700).astype(np.float32), "f32")
    bits = np.full(FILTER_WORDS, 0xFFFFFFFF, dtype=np.uint32)
    want = _reference(q, idx, decoded, 0, 700)
    assert _forward(q, bits, True, idx, codes, vals, f16, 0, 700) == pytest.approx(want, rel=1e-5)
