"""Vectorised sparse · dense dot products for the search kernels.

Scoring a document against the query is
``sum(q[idx[p]] * value(vals[p]) for p in a..b)``: a gather from the dense,
vocabulary-sized query vector. numba's auto-vectoriser does not turn that
loop into good SIMD code (measured slower than scalar here), so this module
writes the loop directly in LLVM vector IR through a numba intrinsic: eight
lanes per step (``llvm.masked.gather`` of the query weights, a vector load
of the stored values), four independent accumulators, a scalar tail. LLVM
lowers it to AVX2 ``vgatherdps`` + F16C ``vcvtph2ps`` where the CPU has them
and to plain scalar code where it does not, so results are the same on
every machine up to float rounding order.

Stored values come in two encodings, chosen by the array's dtype: float32
(as is) and uint16 (IEEE float16 bit patterns). Index arrays are uint16 or
int32. ``sparse_dot(q, idx, vals, a, b)`` returns the float32 sum.

Float16 decoding uses F16C on x86 (``HAVE_F16``); without it the same
intrinsic decodes the bits with integer arithmetic (exact for every
pattern), since an ``fpext half`` there would need a runtime-library call
that numba's JIT may not resolve.
"""
from __future__ import annotations

import platform

from llvmlite import ir
from llvmlite.ir import instructions
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 8
_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_I1 = ir.IntType(1)


def _host_has(*features: str) -> bool:
    """Whether numba compiles for a CPU with these features: this one's, unless
    NUMBA_CPU_NAME / NUMBA_CPU_FEATURES pick another target (a portable cache),
    in which case only features named in NUMBA_CPU_FEATURES count."""
    from numba.core import config
    if config.CPU_NAME or config.CPU_FEATURES:
        flat = (config.CPU_FEATURES or "").split(",")
    else:
        try:
            import llvmlite.binding as llvm
            flat = llvm.get_host_cpu_features().flatten().split(",")
        except Exception:  # pragma: no cover - feature query unsupported on this platform
            return False
    return all(f"+{f}" in flat for f in features)


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
# fpext <8 x half> needs F16C on x86 (otherwise LLVM emits a runtime-library
# call that numba's JIT may not resolve). Other targets convert natively.
HAVE_F16 = _host_has("f16c") if _X86 else platform.machine().lower() in ("aarch64", "arm64")


def _vec(t):
    return ir.VectorType(t, LANES)


class _VectorGEP(instructions.Instruction):
    """``getelementptr T, T* base, <8 x i32> idx`` -> ``<8 x T*>``.

    llvmlite's builder only accepts scalar indices; this one instruction is
    all the gather needs (a base pointer plus 32-bit lane offsets is what
    lets LLVM pick ``vgatherdps``).
    """

    def __init__(self, parent, ptr, idx, name=""):
        super().__init__(parent, _vec(ptr.type), "getelementptr", [ptr, idx], name=name)
        self._elem = ptr.type.pointee

    def descr(self, buf):
        p, i = self.operands
        buf.append(f"getelementptr inbounds {self._elem}, {p.type} {p.get_reference()}, "
                   f"{i.type} {i.get_reference()}\n")


def _gather(builder, base, idx32):
    gep = _VectorGEP(builder.block, base, idx32)
    builder._insert(gep)
    fnty = ir.FunctionType(_vec(_F32), [_vec(_F32.as_pointer()), _I32, _vec(_I1), _vec(_F32)])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.masked.gather.v8f32.v8p0")
    return builder.call(fn, [gep, _I32(4), ir.Constant(_vec(_I1), [1] * LANES),
                             ir.Constant(_vec(_F32), [0.0] * LANES)])


def _fmuladd(builder, x, y, acc):
    fnty = ir.FunctionType(_vec(_F32), [_vec(_F32)] * 3)
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fmuladd.v8f32")
    return builder.call(fn, [x, y, acc])


def _decode(builder, raw, kind, vector, fpext_f16=True):
    """Stored value(s) -> float32 (scalar or 8-lane vector)."""
    f32 = _vec(_F32) if vector else _F32
    if kind == "f32":
        return raw
    if fpext_f16:
        half = _vec(ir.HalfType()) if vector else ir.HalfType()
        return builder.fpext(builder.bitcast(raw, half), f32)
    return _f16_bits_to_f32(builder, raw, vector)


def _f16_bits_to_f32(builder, raw, vector):
    """IEEE half -> single by integer arithmetic (for CPUs without F16C).

    Normal numbers: move the exponent and mantissa into place and rebias the
    exponent (+112); infinities/NaNs: exponent all ones; zeros and subnormals:
    mantissa * 2**-24, which float32 represents exactly.
    """
    i32 = _vec(_I32) if vector else _I32
    f32 = _vec(_F32) if vector else _F32

    def c(v):
        return ir.Constant(i32, [v] * LANES) if vector else ir.Constant(i32, v)

    h = builder.zext(raw, i32)
    sign = builder.shl(builder.and_(h, c(0x8000)), c(16))
    em = builder.and_(h, c(0x7FFF))
    normal = builder.add(builder.shl(em, c(13)), c(112 << 23))
    special = builder.add(normal, c(112 << 23))  # exponent field 31 -> 255
    bits = builder.select(builder.icmp_unsigned(">=", em, c(0x7C00)), special, normal)
    tiny_val = builder.fmul(builder.uitofp(em, f32),
                            ir.Constant(f32, [2.0 ** -24] * LANES) if vector else ir.Constant(f32, 2.0 ** -24))
    bits = builder.select(builder.icmp_unsigned("<", em, c(0x0400)), builder.bitcast(tiny_val, i32), bits)
    return builder.bitcast(builder.or_(bits, sign), f32)


def _load_vec(context, builder, aty, arr, p):
    elem = context.get_value_type(aty.dtype)
    ptr = cgutils.get_item_pointer(context, builder, aty, arr, [p], wraparound=False)
    return builder.load(builder.bitcast(ptr, _vec(elem).as_pointer()), align=aty.dtype.bitwidth // 8)


def _load_one(context, builder, aty, arr, p):
    return builder.load(cgutils.get_item_pointer(context, builder, aty, arr, [p], wraparound=False))


def _value_kind(dtype):
    if dtype == types.float32:
        return "f32"
    if dtype == types.uint16:
        return "f16"
    return None


def _dot_operands_ok(q, idx, vals) -> bool:
    return (isinstance(q, types.Array) and q.dtype == types.float32 and isinstance(idx, types.Array)
            and idx.dtype in (types.uint16, types.int32) and isinstance(vals, types.Array)
            and _value_kind(vals.dtype) is not None)


def _emit_sparse_dot(context, builder, types_, values, fpext_f16):
    """IR for sum(q[idx[p]] * value(vals[p]) for p in [a, b)); ``types_``/``values``: (q, idx, vals, a, b)."""
    qty, ity, vty = types_[:3]
    kind = _value_kind(vty.dtype)
    qa = context.make_array(qty)(context, builder, values[0])
    ia = context.make_array(ity)(context, builder, values[1])
    va = context.make_array(vty)(context, builder, values[2])
    start, stop = values[3], values[4]
    intp = start.type
    zero = ir.Constant(_vec(_F32), [0.0] * LANES)
    accs = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]

    def lane_step(p, acc):
        iv = _load_vec(context, builder, ity, ia, p)
        if ity.dtype == types.uint16:
            iv = builder.zext(iv, _vec(_I32))
        g = _gather(builder, qa.data, iv)
        v = _decode(builder, _load_vec(context, builder, vty, va, p), kind, True, fpext_f16)
        builder.store(_fmuladd(builder, g, v, builder.load(acc)), acc)

    n = builder.sub(stop, start)
    end32 = builder.add(start, builder.and_(n, ir.Constant(intp, ~31)))
    end8 = builder.add(start, builder.and_(n, ir.Constant(intp, ~7)))
    with cgutils.for_range_slice(builder, start, end32, ir.Constant(intp, 32)) as (p, _):
        for j in range(4):
            lane_step(builder.add(p, ir.Constant(intp, 8 * j)), accs[j])
    with cgutils.for_range_slice(builder, end32, end8, ir.Constant(intp, 8)) as (p, _):
        lane_step(p, accs[0])
    total = builder.fadd(builder.fadd(builder.load(accs[0]), builder.load(accs[1])),
                         builder.fadd(builder.load(accs[2]), builder.load(accs[3])))

    def hsum(vec):
        s = builder.extract_element(vec, _I32(0))
        for j in range(1, LANES):
            s = builder.fadd(s, builder.extract_element(vec, _I32(j)))
        return s

    dot = cgutils.alloca_once_value(builder, hsum(total))
    with cgutils.for_range_slice(builder, end8, stop, ir.Constant(intp, 1)) as (p, _):
        t = _load_one(context, builder, ity, ia, p)
        t = builder.zext(t, intp) if ity.dtype == types.uint16 else builder.sext(t, intp)
        w = builder.load(builder.gep(qa.data, [t], inbounds=True))
        v = _decode(builder, _load_one(context, builder, vty, va, p), kind, False, fpext_f16)
        builder.store(builder.fadd(builder.load(dot), builder.fmul(w, v)), dot)
    return builder.load(dot)


def _make_sparse_dot(fpext_f16: bool):
    @intrinsic
    def sparse_dot(typingctx, q, idx, vals, a, b):
        """sum_p q[idx[p]] * value(vals[p]) over p in [a, b), as float32."""
        if not _dot_operands_ok(q, idx, vals):
            return None
        sig = types.float32(q, idx, vals, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            return _emit_sparse_dot(context, builder, signature.args, args, fpext_f16)

        return sig, codegen

    return sparse_dot


# The one the kernels use: hardware float16 conversion where the CPU has it.
sparse_dot = _make_sparse_dot(HAVE_F16)


@intrinsic
def prefetch(typingctx, arr, i):
    """Hint the CPU to start loading ``arr[i]``'s cache line (no effect on results)."""
    if not isinstance(arr, types.Array):
        return None
    sig = types.void(arr, types.intp)

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, high temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), _I32(0), _I32(3), _I32(1)])
        return context.get_dummy_value()

    return sig, codegen


# ------------------------------------------------------- filtered dot product
#
# On a long document and a short query almost every gathered query weight is
# zero (nfcorpus: ~250 stored terms per document, ~16 query terms, a handful
# in common), and on AMD Zen 4 an 8-lane gather costs ~0.5 ns per lane: the
# gathers are the whole cost of scoring. The filtered dot product
# (``_emit_filtered_dot``, used through ``forward_dot``) first tests sixteen
# document terms at a time against a 1,024-bit filter of the query's terms
# (bit ``t % 1024``), held in two AVX-512 registers and read with one
# ``vpermi2d`` (no memory access), compresses the positions that pass into a
# small stack buffer (``vpcompressd``, no branch), and only then reads the
# query weights of those few candidates. False positives (another term with
# the same filter bit) read a zero weight, so the sum is exact: the same
# terms are added, in document order instead of eight interleaved lanes.
# Where AVX-512 is missing it is ``sparse_dot`` with the filter ignored.

HAVE_AVX512 = _host_has("avx512f") if _X86 else False
FILTER_WORDS = 32  # 32 x 32 bits: the filter fills exactly two 16-lane registers
_BUF = 256  # candidate positions buffered before they are summed (more are flushed)


def _emit_filtered_dot(context, builder, types_, values, fpext_f16):
    """AVX-512 IR for the filtered dot product; ``types_``: (q, bits, idx, vals), ``values``: those and a, b."""
    qty, bty, ity, vty = types_
    qa = context.make_array(qty)(context, builder, values[0])
    ba = context.make_array(bty)(context, builder, values[1])
    ia = context.make_array(ity)(context, builder, values[2])
    va = context.make_array(vty)(context, builder, values[3])
    start, stop = values[4], values[5]
    kind = _value_kind(vty.dtype)
    intp = start.type
    v16 = ir.VectorType(_I32, 16)
    m16 = ir.VectorType(_I1, 16)
    table = builder.bitcast(ba.data, v16.as_pointer())
    lo = builder.load(table, align=4)
    hi = builder.load(builder.gep(table, [_I32(1)]), align=4)
    buf = cgutils.alloca_once(builder, _I32, size=_BUF + 16)
    n_buf = cgutils.alloca_once_value(builder, ir.Constant(intp, 0))
    dot = cgutils.alloca_once_value(builder, ir.Constant(_F32, 0.0))

    def add_term(p):
        t = _load_one(context, builder, ity, ia, p)
        t = builder.zext(t, intp) if ity.dtype == types.uint16 else builder.sext(t, intp)
        w = builder.load(builder.gep(qa.data, [t], inbounds=True))
        v = _decode(builder, _load_one(context, builder, vty, va, p), kind, False, fpext_f16)
        builder.store(builder.fadd(builder.load(dot), builder.fmul(w, v)), dot)

    def flush():
        with cgutils.for_range(builder, builder.load(n_buf)) as loop:
            r = builder.load(builder.gep(buf, [loop.index]))
            add_term(builder.add(start, builder.sext(r, intp)))
        builder.store(ir.Constant(intp, 0), n_buf)

    permute = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16, [v16, v16, v16]),
                                             "llvm.x86.avx512.vpermi2var.d.512")
    compress = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16, [v16, m16, v16]),
                                              "llvm.experimental.vector.compress.v16i32")
    ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(16), [ir.IntType(16)]),
                                           "llvm.ctpop.i16")

    def splat(x):
        return ir.Constant(v16, [x] * 16)

    n = builder.sub(stop, start)
    end16 = builder.add(start, builder.and_(n, ir.Constant(intp, ~15)))
    lanes = cgutils.alloca_once_value(builder, ir.Constant(v16, list(range(16))))
    with cgutils.for_range_slice(builder, start, end16, ir.Constant(intp, 16)) as (p, _):
        elem = context.get_value_type(ity.dtype)
        ptr = cgutils.get_item_pointer(context, builder, ity, ia, [p], wraparound=False)
        t = builder.load(builder.bitcast(ptr, ir.VectorType(elem, 16).as_pointer()), align=ity.dtype.bitwidth // 8)
        if ity.dtype == types.uint16:
            t = builder.zext(t, v16)
        word = builder.call(permute, [lo, builder.lshr(t, splat(5)), hi])
        hit = builder.icmp_unsigned("!=", builder.and_(builder.lshr(word, builder.and_(t, splat(31))),
                                                       splat(1)), splat(0))
        pos = builder.load(lanes)  # p - start + (0, 1, ..., 15)
        builder.store(builder.add(pos, splat(16)), lanes)
        packed = builder.call(compress, [pos, hit, ir.Constant(v16, ir.Undefined)])
        at = builder.load(n_buf)
        builder.store(packed, builder.bitcast(builder.gep(buf, [at]), v16.as_pointer()), align=4)
        count = builder.call(ctpop, [builder.bitcast(hit, ir.IntType(16))])
        at = builder.add(at, builder.zext(count, intp))
        builder.store(at, n_buf)
        with cgutils.if_unlikely(builder, builder.icmp_signed(">", at, ir.Constant(intp, _BUF))):
            flush()
    flush()
    with cgutils.for_range_slice(builder, end16, stop, ir.Constant(intp, 1)) as (p, _):
        add_term(p)
    return builder.load(dot)


def _make_forward_dot(use_avx512: bool, fpext_f16: bool):
    @intrinsic
    def forward_dot(typingctx, q, bits, use_filter, idx, codes, vals, f16, a, b):
        """A document's score from the forward index, as the search kernels need it.

        The filtered dot product (``use_filter``; plain sparse_dot where the
        CPU lacks AVX-512) or sparse_dot, over the float16 ``codes`` (``f16``)
        or the float32 ``vals``: one intrinsic, so that each kernel scores a
        document in one line and numba adds no reference counting (an njit
        helper taking these arrays would, per document).

        ``bits``: FILTER_WORDS uint32 words (all of them are read), bit
        ``t % 1024`` (word ``(t >> 5) % 32``, bit ``t % 32``) set for every
        term ``t`` where ``q`` is non-zero. The filtered sum is exact as long
        as ``q`` is zero at every term whose bit is clear, which is how the
        kernels build both.
        """
        if not (isinstance(use_filter, types.Boolean) and isinstance(f16, types.Boolean)
                and isinstance(bits, types.Array) and bits.dtype == types.uint32
                and isinstance(codes, types.Array) and codes.dtype == types.uint16
                and isinstance(vals, types.Array) and vals.dtype == types.float32
                and _dot_operands_ok(q, idx, vals)):
            return None
        sig = types.float32(q, bits, use_filter, idx, codes, vals, f16, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            qt, bt, _, it, ct, vt = signature.args[:6]
            qv, bv, filt, iv, cv, vv, is_f16, a_, b_ = args
            out = cgutils.alloca_once(builder, _F32)

            def score(stored_t, stored):
                if not use_avx512:
                    builder.store(_emit_sparse_dot(context, builder, (qt, it, stored_t), (qv, iv, stored, a_, b_),
                                                   fpext_f16), out)
                    return
                with builder.if_else(filt) as (yes, no):
                    with yes:
                        builder.store(_emit_filtered_dot(context, builder, (qt, bt, it, stored_t),
                                                         (qv, bv, iv, stored, a_, b_), fpext_f16), out)
                    with no:
                        builder.store(_emit_sparse_dot(context, builder, (qt, it, stored_t),
                                                       (qv, iv, stored, a_, b_), fpext_f16), out)

            with builder.if_else(is_f16) as (yes, no):
                with yes:
                    score(ct, cv)
                with no:
                    score(vt, vv)
            return builder.load(out)

        return sig, codegen

    return forward_dot


forward_dot = _make_forward_dot(HAVE_AVX512, HAVE_F16)
