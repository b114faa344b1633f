"""sentence-transformers ``backend="onnx"`` timings for bench/inference.py, run in another interpreter.

ST's ONNX backend needs optimum-onnx, whose transformers pin conflicts with lsr's venv, so
bench/inference.py runs this file with a separate Python (--st-onnx-python) and talks to it through
files: it reads a JSON job (texts, queries, models, threads) and writes ``result.json`` plus one
``<model>.npz`` of document vectors per model into the job's ``out`` folder. It imports nothing
from lsr (lsr is not installed there).

    python bench/_st_onnx_worker.py JOB.json

Export: optimum exports on first load into a temporary folder; we copy the source model folder to
the job's ``cache`` folder (never the installed package folder), export once and save the graph
there as ``onnx/model.onnx``, where ST finds it on later runs without exporting again.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def load(m: dict, threads: int | None):
    """The ST model on ONNX Runtime; ``threads`` intra-op threads (None: ORT's default)."""
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer, SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer
    cache = Path(m["cache"])
    export = not (cache / "onnx" / "model.onnx").exists()
    if export:  # ST would export from the folder it loads: give it a private copy
        shutil.rmtree(cache, ignore_errors=True)
        shutil.copytree(m["path"], cache, ignore=shutil.ignore_patterns("onnx", "openvino", "*.pt"))
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    kw = {"provider": "CPUExecutionProvider", "session_options": so}
    t = time.perf_counter()
    if m["kind"] == "sparse":  # a bare HF masked-LM folder: the SPLADE stack lsr builds for it
        body = Transformer(str(cache), transformer_task="fill-mask", backend="onnx", model_kwargs=kw,
                           max_seq_length=m["max_length"])
        model = SparseEncoder(modules=[body, SpladePooling("max")], device="cpu")
        hf = body.model
    else:
        model = SentenceTransformer(str(cache), backend="onnx", model_kwargs=kw, device="cpu")
        model.max_seq_length = m["max_length"]
        hf = model[0].model
    if export:
        hf.save_pretrained(str(cache))  # ST's wrapper writes it to cache/onnx/model.onnx
    return model, {"export": export, "load_s": time.perf_counter() - t,
                   "ort_intra_op_threads": so.intra_op_num_threads or "ort default"}


def to_csr(t):
    import scipy.sparse as sp
    t = t.coalesce().cpu()
    i, v = t.indices().numpy(), t.values().numpy()
    return sp.csr_matrix((v, (i[0], i[1])), shape=tuple(t.shape), dtype=np.float32)


def run(m: dict, job: dict, out: Path) -> dict:
    sparse = m["kind"] == "sparse"
    docs, queries, bs, warm = job["docs"], job["queries"], job["batch_size"], job["warmup"]
    model, info = load(m, job["threads"])
    enc = model.encode_document if sparse else model.encode
    enc(docs[:warm], batch_size=bs)  # first-call allocations outside the timing
    t = time.perf_counter()  # ST's encode runs under its own no-grad context
    vec = enc(docs, batch_size=bs)
    secs = time.perf_counter() - t
    if sparse:
        c = to_csr(vec)
        np.savez(out / f"{m['name']}.npz", indptr=c.indptr, indices=c.indices, data=c.data, shape=c.shape)
    else:
        np.savez(out / f"{m['name']}.npz", emb=np.asarray(vec, np.float32))
    del model
    # Single queries: ST's defaults (ORT picks its own threads), as a user would run it.
    qmodel, qinfo = load(m, None)
    qenc = qmodel.encode_query if sparse else qmodel.encode
    for q in queries[:10]:
        qenc(q)
    times = []
    for q in queries:
        t = time.perf_counter()
        qenc(q)
        times.append((time.perf_counter() - t) * 1e3)
    return {"docs": len(docs), "seconds": secs, "docs_per_s": len(docs) / secs, "query_ms": times,
            "doc_threads": info["ort_intra_op_threads"], "query_threads": qinfo["ort_intra_op_threads"],
            "exported_now": info["export"], "load_s": info["load_s"]}


def main():
    job = json.loads(Path(sys.argv[1]).read_text())
    out = Path(job["out"])
    import onnxruntime
    import sentence_transformers
    import torch
    import transformers
    if job["threads"]:
        torch.set_num_threads(job["threads"])  # ST's tokenisation / pooling around the session
    result = {"versions": {"sentence_transformers": sentence_transformers.__version__,
                           "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
                           "transformers": transformers.__version__, "python": sys.version.split()[0]},
              "torch_threads": torch.get_num_threads(), "models": {}}
    for m in job["models"]:
        try:
            result["models"][m["name"]] = run(m, job, out)
        except Exception as e:  # one model failing must not lose the other's numbers
            result["models"][m["name"]] = {"skipped": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
        print(m["name"], "done", flush=True)
    (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
