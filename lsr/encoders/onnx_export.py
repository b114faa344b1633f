"""Export an encoder to an ONNX graph that carries lsr's fast path (run once per model and backend; needs torch).

SPLADE. The transformer body (up to, not including, the vocabulary
projection) is traced with torch's TorchScript exporter. lsr then appends,
by hand, the part no tracer produces: a ``Loop`` over the texts of the batch
that slices each text's real tokens (never a padding row), projects them onto
the vocabulary, and takes the max over tokens. The activation
``log1p(relu(.))`` runs once per text on that max (it is monotonic, so this
equals max-pooling the activated logits). The graph's input is token ids and
attention mask; its output the (batch, vocab) SPLADE weights. Exactly what
:meth:`.splade.SpladeEncoder._encode_fast` computes, so ``onnx`` vectors equal
``torch`` ones to float32 rounding.

onnx-int8. The body's weight matrices are quantised by ONNX Runtime's dynamic
quantisation (int8 weights per output channel, uint8 activations per
tensor). The projection is quantised by hand, per vocabulary column, and the
max over tokens is taken on the int32 accumulators before scaling back: a
column's scale is positive, so the max commutes with it, and no float
(tokens, vocab) matrix is ever formed. It is the largest matrix product of a
small model (splade-tiny: ~10x the body's multiply-adds per token), and int8
products run about twice as fast on a CPU with VNNI.

Dense bi-encoders. The whole sentence-transformers stack (transformer,
pooling, normalisation) is traced, so pooling happens inside the graph;
onnx-int8 quantises its weight matrices the same way.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .backends import FORMAT, META

OPSET = 18
log = logging.getLogger("lsr")


def export(name: str, backend: str, role: str, folder: Path, fingerprint: str) -> None:
    """Write ``name``'s graph for ``backend`` into ``folder`` (atomically: a killed export leaves nothing)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise ModelError(f"exporting {name!r} for the {backend} backend needs torch, onnx and onnxruntime: "
                         f"pip install onnx onnxruntime ({e})") from None
    from ..atomic import atomic_dir
    log.warning("exporting %s for the %s backend to %s (once)", name, backend, folder)
    with atomic_dir(folder, overwrite=True, error=ModelError) as tmp, _quiet():
        meta = (_export_splade if role == "splade" else _export_dense)(name, backend, Path(tmp))
        meta.update({"format": FORMAT, "name": str(name), "role": role, "backend": backend,
                     "fingerprint": fingerprint, "opset": OPSET})
        (Path(tmp) / META).write_text(json.dumps(meta, indent=2))


@contextlib.contextmanager
def _quiet():
    """ONNX Runtime's tools print and log advice meant for their own users (pre-process before quantising,
    symbolic shape inference); lsr's one line says what is happening."""
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


# ------------------------------------------------------------------ SPLADE
def _export_splade(name: str, backend: str, tmp: Path) -> dict:
    import torch

    from . import load_encoder
    enc = load_encoder(name, backend="torch")
    if enc.task_aware and not enc.inference_free:
        raise ModelError(f"model {name!r} encodes queries with modules of its own (a composition or a "
                         "task-aware stack): only --backend torch runs it")
    f = enc._fast
    if f is None:
        raise ModelError(f"model {name!r} is not a plain max-pooled SPLADE stack (fill-mask transformer, "
                         "linear vocabulary head): only --backend torch runs it")

    class Body(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hf = f["hf"]  # registered, so the exporter sees the weights as parameters

        def forward(self, input_ids, attention_mask):
            return enc._hidden_states(input_ids, attention_mask)

    body = tmp / "body.onnx"
    _eager(f["hf"])
    _trace(Body(), body)
    _fuse(body, f["hf"].config)
    if backend == "onnx-int8":
        _quantize(body)
    weight = f["head"].weight.detach().float().cpu().numpy()  # (vocab, hidden)
    bias = f["head"].bias.detach().float().cpu().numpy() if f["head"].bias is not None else None
    _append_head(body, tmp / "model.onnx", weight, bias, backend == "onnx-int8", f["double_log"])
    body.unlink()
    f["tokenizer"].backend_tokenizer.save(str(tmp / "tokenizer.json"))
    (tmp / "vocab.json").write_text(enc.vocab.to_json())
    return {"lower": f["lower"], "pad_id": int(f["tokenizer"].pad_token_id or 0),
            "inference_free": bool(enc.inference_free), "dim": int(weight.shape[0])}


def _trace(module, path: Path) -> None:
    import torch
    module.eval()
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 2178, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    import warnings
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings about Python booleans that are constant here
        torch.onnx.export(module, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["out"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"}, "out": {0: "batch"}})


def _eager(hf) -> None:
    """Trace the plain attention (matmul, softmax, matmul): the pattern ONNX Runtime fuses into one
    Attention kernel. SDPA's traced form is left as a dozen small ops (about 10% slower on a CPU)."""
    try:
        hf.set_attn_implementation("eager")
    except (AttributeError, ValueError):
        hf.config._attn_implementation = "eager"


FUSABLE = {"bert", "distilbert", "roberta", "xlm-roberta", "camembert", "electra", "mpnet"}


def _fuse(path: Path, config) -> None:
    """ONNX Runtime's transformer fusions (Attention, EmbedLayerNormalization, BiasGelu, LayerNorm), in place,
    for the encoder families it knows; any other model keeps its plain graph (correct, a little slower)."""
    kind = getattr(config, "model_type", "")
    if kind not in FUSABLE:
        return
    from onnxruntime.transformers import optimizer
    family = "bert" if kind in ("electra", "camembert", "xlm-roberta", "roberta", "mpnet") else kind
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
            fused = optimizer.optimize_model(str(path), model_type=family, opt_level=1,
                                             num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
                                             hidden_size=int(getattr(config, "hidden_size", 0) or 0))
        fused.save_model_to_file(str(path))
    except Exception as e:  # noqa: BLE001 - an unfusable graph is still a correct graph
        log.warning("ONNX Runtime's fusions failed on %s (%s); keeping the plain graph", path.name, e)


def _quantize(path: Path) -> None:
    """ONNX Runtime dynamic int8 quantisation of the weight matrices, in place."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic
    out = path.with_suffix(".int8.onnx")
    quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gemm", "Attention"],
                     extra_options={"MatMulConstBOnly": True, "DefaultTensorType": TensorProto.FLOAT})
    out.replace(path)


def _append_head(body: Path, out: Path, weight, bias, int8: bool, double_log: bool) -> None:
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as H
    from onnx import numpy_helper as N
    model = onnx.load(str(body))
    g = model.graph
    hidden = g.output[0].name
    vocab = weight.shape[0]
    c = lambda arr, name: g.initializer.append(N.from_array(np.asarray(arr), name))
    c(np.array([0], np.int64), "lsr_zero")
    c(np.array([1], np.int64), "lsr_axis1")
    c(np.array(1.0, np.float32), "lsr_one")
    # One iteration per text: its real tokens (attention mask sums; lsr pads on the right), projected, max-pooled.
    step = [H.make_node("Gather", [hidden, "i"], ["h"], axis=0),
            H.make_node("Gather", ["lsr_lengths", "i"], ["n"], axis=0),
            H.make_node("Unsqueeze", ["n", "lsr_zero"], ["n1"]),
            H.make_node("Slice", ["h", "lsr_zero", "n1", "lsr_zero"], ["tokens"])]
    if int8:
        scale = np.abs(weight).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        c(np.clip(np.rint(weight.T / scale), -127, 127).astype(np.int8), "lsr_head_q")  # (hidden, vocab)
        step += [H.make_node("DynamicQuantizeLinear", ["tokens"], ["tq", "ts", "tz"]),
                 H.make_node("MatMulInteger", ["tq", "lsr_head_q", "tz"], ["acc"]),
                 H.make_node("ReduceMax", ["acc", "lsr_zero"], ["amax"], keepdims=0),
                 H.make_node("Cast", ["amax"], ["famax"], to=T.FLOAT),
                 H.make_node("Mul", ["famax", "ts"], ["zmax"])]
    else:
        c(np.ascontiguousarray(weight.T.astype(np.float32)), "lsr_head_t")
        step += [H.make_node("MatMul", ["tokens", "lsr_head_t"], ["z"]),
                 H.make_node("ReduceMax", ["z", "lsr_zero"], ["zmax"], keepdims=0)]
    step.append(H.make_node("Identity", ["cond"], ["cond_out"]))
    loop_body = H.make_graph(step, "lsr_max_pool_one_text",
                             [H.make_tensor_value_info("i", T.INT64, []), H.make_tensor_value_info("cond", T.BOOL, [])],
                             [H.make_tensor_value_info("cond_out", T.BOOL, []),
                              H.make_tensor_value_info("zmax", T.FLOAT, [vocab])])
    nodes = [H.make_node("ReduceSum", ["attention_mask", "lsr_axis1"], ["lsr_lengths"], keepdims=0),
             H.make_node("Shape", ["input_ids"], ["lsr_shape"]),
             H.make_node("Gather", ["lsr_shape", "lsr_zero"], ["lsr_batch1"], axis=0),
             H.make_node("Squeeze", ["lsr_batch1"], ["lsr_batch"]),
             H.make_node("Loop", ["lsr_batch", ""], ["lsr_pooled"], body=loop_body)]
    last = "lsr_pooled"
    if int8:
        c(scale.astype(np.float32), "lsr_head_scale")
        nodes.append(H.make_node("Mul", [last, "lsr_head_scale"], ["lsr_scaled"]))
        last = "lsr_scaled"
    if bias is not None:  # max_t(z_t) + b == max_t(z_t + b): the bias is the same for every token
        c(bias.astype(np.float32), "lsr_head_bias")
        nodes.append(H.make_node("Add", [last, "lsr_head_bias"], ["lsr_biased"]))
        last = "lsr_biased"
    nodes += [H.make_node("Relu", [last], ["lsr_relu"]), H.make_node("Add", ["lsr_relu", "lsr_one"], ["lsr_1p"]),
              H.make_node("Log", ["lsr_1p"], ["weights" if not double_log else "lsr_log"])]
    if double_log:  # "log1p_relu" activation: log1p applied twice
        nodes += [H.make_node("Add", ["lsr_log", "lsr_one"], ["lsr_2p"]), H.make_node("Log", ["lsr_2p"], ["weights"])]
    g.node.extend(nodes)
    del g.output[:]
    g.output.append(H.make_tensor_value_info("weights", T.FLOAT, ["batch", vocab]))
    onnx.checker.check_model(model)
    _save(model, out)


def _save(model, out: Path) -> None:
    import onnx
    large = model.ByteSize() > 1_800_000_000  # protobuf's 2 GB limit: weights go to a side file
    onnx.save(model, str(out), save_as_external_data=large, location=out.name + ".data" if large else None)


# ------------------------------------------------------------------- dense
def _export_dense(name: str, backend: str, tmp: Path) -> dict:
    import torch

    from .dense import DenseEncoder
    st = DenseEncoder(name, backend="torch").model
    first = st[0]
    if not hasattr(first, "auto_model") or not hasattr(first, "tokenizer"):
        raise ModelError(f"dense model {name!r}: its first module is not a transformer; "
                         "only --backend torch runs it")

    class Stack(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.st = st

        def forward(self, input_ids, attention_mask):
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            if "token_type_ids" in first.tokenizer.model_input_names:
                features["token_type_ids"] = torch.zeros_like(input_ids)
            return self.st(features)["sentence_embedding"]

    path = tmp / "model.onnx"
    _eager(first.auto_model)
    _trace(Stack(), path)
    _fuse(path, first.auto_model.config)
    if backend == "onnx-int8":
        _quantize(path)
    first.tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
    dim = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    return {"lower": bool(getattr(first, "do_lower_case", False)),
            "pad_id": int(first.tokenizer.pad_token_id or 0), "dim": int(dim()),
            "max_seq_length": int(st.max_seq_length or 512)}
