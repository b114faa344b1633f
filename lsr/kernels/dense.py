"""Dense scores of quantised storage without converting the stored matrix: float16 rows (their raw bits) and
int8 rows are multiplied by float32 queries inside the loop, so a query reads 2 or 1 bytes per stored value.

numpy had to convert every block it scored to float32 first, which made a single query 11-58x (float16)
and 2-14x (int8) slower than float32 BLAS (docs/RESULTS.md, "Dense storage").

float16 -> float32 is exact and branch-free: a float16's bits without the sign, shifted left by 13, read
as a float32, are the value times 2^-112 (for subnormals too); the queries are scaled by 2^112 instead,
and the sign bit moves to bit 31. Stored values are finite (the build refuses float16 overflow).
"""
from __future__ import annotations

import numpy as np
from numba import njit

HALF_SCALE = np.float32(2.0 ** 112)  # undoes the exponent offset of the shifted float16 bits


@njit(cache=True, fastmath={"reassoc", "contract"})  # reassociation lets LLVM vectorise the sums
def scores_half(bits, rows, q):
    """(n_queries, len(rows)) scores of stored float16 rows ``bits`` (uint16 view) for float32 queries
    ``q`` already multiplied by HALF_SCALE; ``rows``: the row numbers to score."""
    m, d = q.shape
    n = len(rows)
    out = np.empty((m, n), np.float32)
    buf = np.empty(d, np.uint32)  # one row converted at a time (it stays in L1), then its dot products
    f = buf.view(np.float32)
    for t in range(n):
        src = bits[rows[t]]
        for j in range(d):
            h = np.uint32(src[j])
            buf[j] = ((h & np.uint32(0x7FFF)) << np.uint32(13)) | ((h & np.uint32(0x8000)) << np.uint32(16))
        for i in range(m):
            s = np.float32(0.0)
            for j in range(d):
                s += f[j] * q[i, j]
            out[i, t] = s
    return out


@njit(cache=True, fastmath={"reassoc", "contract"})  # reassociation lets LLVM vectorise the sums
def scores_int8(codes, rows, q):
    """(n_queries, len(rows)) scores of stored int8 rows ``codes`` for float32 queries ``q`` (each
    dimension already multiplied by its scale)."""
    m, d = q.shape
    out = np.empty((m, len(rows)), np.float32)
    for t in range(len(rows)):
        src = codes[rows[t]]
        for i in range(m):
            s = np.float32(0.0)
            for j in range(d):
                s += np.float32(src[j]) * q[i, j]
            out[i, t] = s
    return out
