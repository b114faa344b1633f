"""Dense scores of quantised storage without converting the stored matrix: float16 rows (their raw bits) and
int8 rows are multiplied by float32 queries inside the loop, so a query reads 2 or 1 bytes per stored value.

numpy had to convert every block it scored to float32 first, which made a single query 11-58x (float16)
and 2-14x (int8) slower than float32 BLAS (docs/RESULTS.md, "Dense storage").

float16 -> float32 is exact. Where the CPU converts in hardware (x86's F16C, every 64-bit ARM), the kernel
emits LLVM's ``fpext half to float`` (one ``vcvtph2ps`` per 8 or 16 values once vectorised); numba has no
float16 type, so an ``@intrinsic`` writes that instruction. Elsewhere the conversion is integer shifts: a
float16's bits without the sign, shifted left by 13, read as a float32, are the value times 2^-112
(subnormals too); the queries are scaled by 2^112 instead (``HALF_SCALE``), and the sign moves to bit 31.
Stored values are finite (the build refuses float16 overflow).

Both kernels split the rows over numba's threads: the float32 path is BLAS, which uses every core too.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

HALF_SCALE = np.float32(2.0 ** 112)  # undoes the exponent offset of the shifted float16 bits


def _hardware_half() -> bool:
    import platform
    if platform.machine().lower() in ("aarch64", "arm64"):
        return True
    try:
        import llvmlite.binding as llvm
        return bool(llvm.get_host_cpu_features().get("f16c"))
    except Exception:  # noqa: BLE001 - unknown host: the integer path is always correct
        return False


HARDWARE_HALF = _hardware_half()


@intrinsic
def _half_to_float(typingctx, bits):
    """float32 of the float16 whose bits are ``bits`` (uint16): LLVM's fpext, a hardware conversion."""
    if bits != types.uint16:
        return None

    def codegen(context, builder, sig, args):
        from llvmlite import ir
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
    return types.float32(types.uint16), codegen


FAST = {"reassoc", "contract"}  # reassociation lets LLVM vectorise the sums
PARALLEL_FROM = 1 << 20  # stored values per call from which threads pay for their start (~20-50 us)


def _scores_half_hw(bits, rows, q):
    m, d = q.shape
    out = np.empty((m, len(rows)), np.float32)
    for t in prange(len(rows)):
        src = bits[rows[t]]
        for i in range(m):
            s = np.float32(0.0)
            for j in range(d):
                s += _half_to_float(src[j]) * q[i, j]
            out[i, t] = s
    return out


def _scores_half_shift(bits, rows, q):
    m, d = q.shape
    out = np.empty((m, len(rows)), np.float32)
    for t in prange(len(rows)):
        src = bits[rows[t]]
        buf = np.empty(d, np.uint32)  # the row widened (it stays in L1), then its dot products
        f = buf.view(np.float32)
        for j in range(d):
            h = np.uint32(src[j])
            buf[j] = ((h & np.uint32(0x7FFF)) << np.uint32(13)) | ((h & np.uint32(0x8000)) << np.uint32(16))
        for i in range(m):
            s = np.float32(0.0)
            for j in range(d):
                s += f[j] * q[i, j]
            out[i, t] = s
    return out


def _scores_int8(codes, rows, q):
    m, d = q.shape
    out = np.empty((m, len(rows)), np.float32)
    for t in prange(len(rows)):
        src = codes[rows[t]]
        for i in range(m):
            s = np.float32(0.0)
            for j in range(d):
                s += np.float32(src[j]) * q[i, j]
            out[i, t] = s
    return out


# Each kernel compiled twice: over threads (prange) for big scans, serial (prange runs as range) for small ones.
_KERNELS = {name: (njit(cache=True, fastmath=FAST)(f), njit(cache=True, parallel=True, fastmath=FAST)(f))
            for name, f in (("hw", _scores_half_hw), ("shift", _scores_half_shift), ("int8", _scores_int8))}


def _run(name, stored, rows, q):
    serial, parallel = _KERNELS[name]
    return (parallel if len(rows) * stored.shape[1] >= PARALLEL_FROM else serial)(stored, rows, q)


def scores_half(bits, rows, q):
    """(n_queries, len(rows)) scores of stored float16 rows ``bits`` (their uint16 view) for float32 queries
    ``q``; ``rows``: the row numbers to score."""
    if HARDWARE_HALF:
        return _run("hw", bits, rows, q)
    return _run("shift", bits, rows, np.ascontiguousarray(q * HALF_SCALE, dtype=np.float32))


def scores_int8(codes, rows, q):
    """(n_queries, len(rows)) scores of stored int8 rows ``codes`` for float32 queries ``q`` (each
    dimension already multiplied by its scale)."""
    return _run("int8", codes, rows, q)
