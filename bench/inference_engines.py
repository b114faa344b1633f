"""bench/inference.py's engines: sentence-transformers torch / onnx and lsr's backends, each timed on the same
documents and queries; the machine's measured matmul peak and each model's FLOPs (analytic)."""
from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = {"splade-tiny": "sparse", "minilm": "dense"}
ENGINES = ("st-torch", "st-onnx", "lsr-torch", "lsr-onnx", "lsr-onnx-int8")
BACKENDS = ("torch", "onnx", "onnx-int8")
K_OVERLAP = 32
WARM_DOCS, WARM_QUERIES = 32, 10


def stats(ms) -> dict:
    ms = np.asarray(ms, float)
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def time_queries(fn, queries, desc: str, warm: int = WARM_QUERIES) -> dict:
    from tqdm import tqdm
    for q in queries[:warm]:
        fn(q)
    ms = []
    for q in tqdm(queries, desc=desc, unit="q", leave=False, mininterval=1.0):
        t = time.perf_counter()
        fn(q)
        ms.append((time.perf_counter() - t) * 1e3)
    return stats(ms)


def time_docs(fn, docs, desc: str):
    """(vectors, seconds) of ``fn(docs, progress)``, after a warm-up call on a few documents."""
    from tqdm import tqdm
    fn(docs[:WARM_DOCS], None)
    with tqdm(total=len(docs), desc=desc, unit="doc", leave=False, mininterval=1.0) as bar:
        t = time.perf_counter()
        out = fn(docs, bar.update)
        return out, time.perf_counter() - t


def best_of(fn, reps: int) -> float:
    """Fastest of ``reps`` timed calls (seconds), after an untimed one."""
    fn()
    return min(best_of_one(fn) for _ in range(reps))


def best_of_one(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ---------------------------------------------------------------- FLOPs and peak
def model_flops(cfg: dict, batches, vocab_tokens: int) -> float:
    """FLOPs (2 per multiply-add) of a BERT encoder (HF ``config.json`` ``cfg``) over ``batches`` [(rows, width)].

    Per layer and padded token: Q, K, V and output projections 4·H², feed-forward 2·H·I, attention scores and
    mixing 2·w·H (w: the batch's padded width). A masked LM (SPLADE) adds its head's transform H² per padded
    token and the vocabulary projection H·V per token in ``vocab_tokens``: lsr projects real tokens only,
    sentence-transformers every padded one. Embeddings, norms, softmax, activations, pooling: ignored (<1%).
    """
    L, H, Im = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["intermediate_size"]
    mlm = any(a.endswith("ForMaskedLM") for a in cfg.get("architectures") or [])
    macs = sum(r * w * (L * (4 * H * H + 2 * H * Im + 2 * w * H) + (H * H if mlm else 0)) for r, w in batches)
    return 2.0 * (macs + (vocab_tokens * H * cfg["vocab_size"] if mlm else 0))


def flops_for(name: str, engine: str, docs, bs: int, max_length: int) -> float:
    """:func:`model_flops` of one engine's pass over ``docs``: the batches it pads (lsr sorts by token count,
    ``SentenceTransformer.encode`` by characters; a batch is as wide as its longest text) and the tokens its
    vocabulary projection sees."""
    from tokenizers import Tokenizer

    from lsr.encoders import resolve_model
    path = resolve_model(name).path
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    lengths = np.array([len(e.ids) for e in tok.encode_batch(list(docs))])
    # lsr's torch dense path is SentenceTransformer.encode itself; its ONNX paths batch as its SPLADE path does
    lsr = engine.startswith("lsr") and not (engine == "lsr-torch" and MODELS[name] == "dense")
    order = np.argsort(-lengths, kind="stable") if lsr else np.argsort([-len(t) for t in docs])
    batches = [(len(b), int(lengths[b].max())) for b in (order[i:i + bs] for i in range(0, len(order), bs))]
    vocab_tokens = int(lengths.sum()) if lsr else sum(r * w for r, w in batches)
    return model_flops(json.loads((path / "config.json").read_text()), batches, vocab_tokens)


def peak(threads: int, sizes=(512, 1024, 2048)) -> dict:
    """GFLOP/s of n×n×n products, the best over sizes and repeats (a busy machine slows the big ones most):
    numpy float32 (BLAS), ONNX Runtime float32 MatMul and int8 MatMulInteger (what onnx-int8 graphs run)."""
    out = {"threads": threads, "sizes": list(sizes)}
    for label in ("numpy_fp32", "ort_fp32", "ort_int8"):
        try:
            per = {n: 2 * n ** 3 / _matmul_seconds(label, n, threads) / 1e9 for n in sizes}
            out[f"{label}_gflops"], out[f"{label}_by_size"] = max(per.values()), per
        except Exception as e:  # an optional probe: say why it is missing
            out[f"{label}_gflops"], out[f"{label}_skipped"] = None, f"{type(e).__name__}: {e}"
    return out


def _matmul_seconds(label: str, n: int, threads: int) -> float:
    rng = np.random.default_rng(0)
    reps = max(3, min(50, int(4e10 / (2 * n ** 3))))
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    if label == "numpy_fp32":
        from threadpoolctl import threadpool_limits
        with threadpool_limits(threads):
            return best_of(lambda: a @ b, reps)
    import onnxruntime as ort
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper
    op, xt, yt = ("MatMul", T.FLOAT, T.FLOAT) if label == "ort_fp32" else ("MatMulInteger", T.UINT8, T.INT32)
    if label == "ort_int8":
        a, b = rng.integers(0, 255, (n, n), dtype=np.uint8), rng.integers(-127, 127, (n, n), dtype=np.int8)
    io = [helper.make_tensor_value_info(name, t, [n, n]) for name, t in (("x", xt), ("y", yt))]
    g = helper.make_graph([helper.make_node(op, ["x", "w"], ["y"])], "mm", io[:1], io[1:],
                          [numpy_helper.from_array(b, "w")])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    s = ort.InferenceSession(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString(),
                             so, providers=["CPUExecutionProvider"])
    return best_of(lambda: s.run(None, {"x": a}), reps)


# ---------------------------------------------------------------- engines
def st_torch(name, docs, queries, args, torch_default):
    import torch

    from lsr.encoders import resolve_model
    path = resolve_model(name).path
    if MODELS[name] == "sparse":  # loaded as lsr loads a bare masked-LM folder
        from lsr.encoders.splade import load_sparse_encoder
        from lsr.eval.reference import to_csr
        m = load_sparse_encoder(path, args.max_length)
        enc_docs, enc_q = lambda x, p: to_csr(m.encode_document(x, batch_size=args.batch_size)), m.encode_query
    else:
        from sentence_transformers import SentenceTransformer
        m = SentenceTransformer(str(path), device="cpu")
        m.max_seq_length = args.max_length
        enc_docs, enc_q = lambda x, p: m.encode(x, batch_size=args.batch_size, convert_to_numpy=True), m.encode
    torch.set_num_threads(args.threads)
    vec, secs = time_docs(enc_docs, docs, f"{name} st-torch")
    torch.set_num_threads(torch_default)  # single queries as a user runs them: torch's default threads
    q = time_queries(enc_q, queries, f"{name} st-torch queries")
    return vec, {"seconds": secs, **q, "doc_threads": args.threads, "query_threads": torch_default}


def lsr_engine(name, backend, docs, queries, args):
    import torch

    from lsr.encoders import load_encoder
    from lsr.encoders.backends import default_threads
    from lsr.encoders.dense import DenseEncoder
    sparse = MODELS[name] == "sparse"

    def load(threads):
        if sparse:
            return load_encoder(name, args.max_length, args.batch_size, backend=backend, threads=threads)
        return DenseEncoder(name, args.batch_size, max_length=args.max_length, backend=backend, threads=threads)
    t = time.perf_counter()
    enc = load(args.threads)  # an ONNX graph is exported (once, cached) here, outside the timings
    load_s = time.perf_counter() - t
    if sparse:
        vec, secs = time_docs(lambda x, p: enc.encode_documents(x, progress=p).to_scipy(), docs, f"{name} {backend}")
    else:  # torch's DenseEncoder is SentenceTransformer.encode: a callable would only switch ST's own bar on
        vec, secs = time_docs(lambda x, p: enc.encode(x, progress=p if backend != "torch" else False), docs,
                              f"{name} {backend}")
    # Single queries at lsr's own thread choice (threads=None): torch one thread per query, ORT the usable cores.
    if backend == "torch":
        enc.threads, qenc = None, enc
    else:  # an ORT session's threads are fixed when it is made
        qenc = enc if args.threads == default_threads() else load(None)
    q = time_queries((lambda q: qenc.encode_queries([q])) if sparse else (lambda q: qenc.encode([q])), queries,
                     f"{name} {backend} queries")
    sess = getattr(qenc, "session", None) or getattr(getattr(qenc, "_onnx", None), "session", None)
    qthreads = sess.get_session_options().intra_op_num_threads if sess else torch.get_num_threads()
    return vec, {"seconds": secs, **q, "doc_threads": args.threads, "query_threads": qthreads, "load_s": load_s}


def st_onnx(models, docs, queries, args) -> dict:
    """{model: (vectors, row)} from bench/_st_onnx_worker.py under --st-onnx-python; rows say "skipped" on failure."""
    py = Path(args.st_onnx_python)
    if not py.exists():
        return {m: (None, {"skipped": f"no interpreter at {py} (--st-onnx-python, $LSR_ST_ONNX_PYTHON)"})
                for m in models}
    from lsr.encoders import resolve_model
    from lsr.encoders.fingerprint import model_fingerprint
    from lsr.encoders.registry import cache_dir
    with tempfile.TemporaryDirectory(prefix="lsr-st-onnx-") as tmp:
        tmp = Path(tmp)
        # ST exports into a copy of the model folder under lsr's cache, keyed by the source's fingerprint
        specs = [{"name": m, "kind": MODELS[m], "path": str(resolve_model(m).path), "max_length": args.max_length,
                  "cache": str(cache_dir() / "st-onnx" / f"{m}-{model_fingerprint(m).split(':')[-1][:16]}")}
                 for m in models]
        (tmp / "job.json").write_text(json.dumps({"docs": docs, "queries": queries, "batch_size": args.batch_size,
                                                  "threads": args.threads, "warmup": WARM_DOCS, "out": str(tmp),
                                                  "models": specs}))
        print(f"sentence-transformers onnx: {py}", flush=True)
        p = subprocess.run([str(py), str(HERE / "_st_onnx_worker.py"), str(tmp / "job.json")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode or not (tmp / "result.json").exists():
            why = f"worker exited {p.returncode}: {(p.stdout.strip().splitlines() or [''])[-1]}"
            return {m: (None, {"skipped": why}) for m in models}
        res = json.loads((tmp / "result.json").read_text())
        out = {"_meta": {"versions": res["versions"], "torch_threads": res["torch_threads"]}}
        for m, r in res["models"].items():
            if "skipped" in r:
                out[m] = (None, r)
                continue
            import scipy.sparse as sp
            z = np.load(tmp / f"{m}.npz")
            vec = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"])) \
                if MODELS[m] == "sparse" else z["emb"]
            out[m] = (vec, {k: v for k, v in r.items() if k != "query_ms"} | stats(r["query_ms"]))
        return out


def agreement(kind: str, ref, vec, k: int = K_OVERLAP) -> dict:
    """``vec`` vs the reference (lsr torch): max abs diff; top-k term overlap (sparse) or min cosine (dense)."""
    if kind == "dense":
        a, b = np.asarray(ref, np.float64), np.asarray(vec, np.float64)
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        return {"max_abs_diff": float(np.abs(a - b).max()), "min_cosine": float(cos.min())}
    width = max(ref.shape[1], vec.shape[1])  # a head wider than the tokenizer pads lsr's vocabulary
    ref, vec = (m.tocsr().astype(np.float32) for m in (ref, vec))
    for m in (ref, vec):
        m.resize(m.shape[0], width)
        m.eliminate_zeros()

    def top(m, i):
        s, e = m.indptr[i], m.indptr[i + 1]
        return set(m.indices[s:e][np.argsort(-m.data[s:e], kind="stable")[:k]].tolist())
    pairs = [(top(ref, i), top(vec, i)) for i in range(ref.shape[0])]
    overlap = np.mean([len(a & b) / max(len(a), len(b), 1) for a, b in pairs])
    return {"max_abs_diff": float(abs(ref - vec).max()), f"top{k}_overlap": float(overlap)}
