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


def _make_sparse_dot(fpext_f16: bool):
    @intrinsic
    def sparse_dot(typingctx, q, idx, vals, a, b):
        """sum_p q[idx[p]] * value(vals[p]) over p in [a, b), as float32."""
        if not (isinstance(q, types.Array) and q.dtype == types.float32 and isinstance(idx, types.Array)
                and idx.dtype in (types.uint16, types.int32) and isinstance(vals, types.Array)):
            return None
        kind = _value_kind(vals.dtype)
        if kind is None:
            return None
        sig = types.float32(q, idx, vals, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            qty, ity, vty = signature.args[:3]
            qa = context.make_array(qty)(context, builder, args[0])
            ia = context.make_array(ity)(context, builder, args[1])
            va = context.make_array(vty)(context, builder, args[2])
            start, stop = args[3], args[4]
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
