"""Inference backends side by side (issue 23): sentence-transformers torch / onnx vs lsr torch / onnx / onnx-int8.

One run, same texts, batch size 32, max length 256, the same intra-op threads for document encoding:

* (a) documents/s on the first --docs scifact documents (title + " " + text), splade-tiny and MiniLM;
* (b) single-query encoding p50/p99 on the scifact test queries, one per call, each engine at its own thread
  choice (lsr picks its own; ST as a user gets it: torch's / ONNX Runtime's defaults);
* (c) agreement with lsr torch's vectors: max abs diff; top-32 term overlap (sparse) or min cosine (dense);
* (d) nDCG@10 of each lsr backend on scifact and nfcorpus: ``build_index(..., backend=b)`` (exact splade-tiny
  index + MiniLM + BM25 lists, cached in bench/out/inference/<dataset>-<backend>) and ``evaluate_index`` on
  ``Retriever.load(mode="sparse" | "dense", backend=b)``;
* (e) ``Retriever.search(q, k=10)`` p50/p99, sparse and hybrid, one query at a time after a first one
  (bench/retriever_latency.py's method), on each backend's scifact index;
* (f) the machine's measured peak (numpy float32 matmul; ONNX Runtime float32 / int8) and each document
  encoder's estimated share of it (analytic FLOPs: :func:`model_flops`).

ST's onnx backend needs optimum-onnx, whose transformers pin clashes with lsr's: it runs in another interpreter
(--st-onnx-python, default $LSR_ST_ONNX_PYTHON or /work/venvs/st-onnx/bin/python; bench/_st_onnx_worker.py),
recorded as skipped, with the reason, when that fails.

    python bench/inference.py                                                        # everything
    python bench/inference.py --docs 100 --queries 20 --skip-ndcg --skip-retriever   # a smoke run

Writes bench/out/inference.json (figures, machine, versions, issue 23's "acceptance" ratios), .csv and .png.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
os.environ.setdefault("IR_DATASETS_HOME", str(HERE.parent / ".cache" / "ir_datasets"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from inference_engines import (  # noqa: E402 (bench/ is on the path of a script run from it)
    BACKENDS,
    ENGINES,
    K_OVERLAP,
    MODELS,
    WARM_DOCS,
    WARM_QUERIES,
    agreement,
    flops_for,
    lsr_engine,
    peak,
    st_onnx,
    st_torch,
    time_queries,
)

NDCG_SETS = {"scifact": ("beir/scifact", "beir/scifact/test"), "nfcorpus": ("beir/nfcorpus", "beir/nfcorpus/test")}


# ---------------------------------------------------------------- the library's own paths
def ensure_index(cache: Path, ds: str, backend: str) -> tuple[Path, float | None]:
    """(the exact splade-tiny index of ``ds`` with MiniLM + BM25 lists encoded with ``backend``, build seconds
    or None when it was cached)."""
    from lsr.retrieval.build import build_index
    out = cache / f"{ds}-{backend}"
    if (out / "manifest.json").exists():
        return out, None
    t = time.perf_counter()
    build_index(NDCG_SETS[ds][0], "splade-tiny", out, index_type="exact", overwrite=True, dense="minilm",
                bm25=True, keep_vectors=False, backend=backend)
    secs = time.perf_counter() - t
    print(f"{ds}-{backend}: built in {secs:.0f}s", flush=True)
    return out, secs


def ndcg(args, models) -> list[dict]:
    from lsr import Retriever
    from lsr.data import load_dataset
    from lsr.eval import evaluate_index
    rows = []
    for ds in args.ndcg_datasets:
        dataset = load_dataset(NDCG_SETS[ds][1])
        for b in BACKENDS:
            idx, built = ensure_index(args.cache, ds, b)
            for m in models:
                r = Retriever.load(idx, mode="sparse" if MODELS[m] == "sparse" else "dense", backend=b)
                v = evaluate_index(r, dataset, metrics=["nDCG@10"], progress=False)["nDCG@10"]
                rows.append({"dataset": ds, "model": m, "backend": b, "nDCG@10": v, "index": str(idx),
                             "build_s": built})
                print(f"nDCG@10 {ds:8} {m:11} {b:9} {v:.4f}", flush=True)
    return rows


def retriever_latency(args, queries) -> list[dict]:
    """bench/retriever_latency.py's figure: load, a first search (the models load then), then every query
    once, ``search(q, 10)``, threads left to lsr."""
    from lsr import Retriever
    from lsr.encoders.backends import default_threads
    rows = []
    # "torch-all-cores": torch at its own default (every core for every call), what lsr did before issue 23
    for b in (*BACKENDS, "torch-all-cores"):
        idx, _ = ensure_index(args.cache, "scifact", b.split("-all")[0])
        for mode in ("sparse", "hybrid"):
            t = time.perf_counter()
            r = Retriever.load(idx, mode=mode, backend=b.split("-all")[0],
                               threads=default_threads() if b == "torch-all-cores" else None)
            r.search(queries[0], 10)
            first = time.perf_counter() - t
            q = time_queries(lambda x: r.search(x, 10), queries, f"Retriever {mode} {b}", warm=0)
            rows.append({"mode": mode, "backend": b, "index": str(idx), "first_query_s": first, **q})
            print(f"Retriever {mode:6} {b:9} p50 {q['p50_ms']:.2f} ms  p99 {q['p99_ms']:.2f} ms", flush=True)
    return rows


# ---------------------------------------------------------------- report
def acceptance(rows, nd, ret) -> dict:
    """Issue 23's ratios, {what: {value, target, ok}}; "best": the lsr backend with the most docs/s or the
    lowest p50, named in the key."""
    acc = {}

    def put(key, value, target, ok):
        acc[key] = {"value": value, "target": target, "ok": ok}
    by = {(r["model"], r["engine"]): r for r in rows if "docs_per_s" in r}
    for m in MODELS:
        lsr = {e: by[(m, e)] for e in ENGINES if e.startswith("lsr") and (m, e) in by}
        if "lsr-torch" not in lsr:
            continue
        best, fast = max(lsr, key=lambda e: lsr[e]["docs_per_s"]), min(lsr, key=lambda e: lsr[e]["p50_ms"])
        v = lsr[best]["docs_per_s"] / lsr["lsr-torch"]["docs_per_s"]
        put(f"{m}: docs/s {best} / lsr-torch", v, ">= 2", v >= 2)
        if (m, "st-onnx") in by:
            v = lsr[best]["docs_per_s"] / by[(m, "st-onnx")]["docs_per_s"]
            put(f"{m}: docs/s {best} / st-onnx", v, ">= 1.5", v >= 1.5)
        if (m, "st-torch") in by:
            v = lsr[fast]["p50_ms"] / by[(m, "st-torch")]["p50_ms"]
            put(f"{m}: query p50 {fast} / st-torch", v, "<= 1/3", v <= 1 / 3)
        if "lsr-onnx" in lsr:
            v = lsr["lsr-onnx"]["max_abs_diff"]
            put(f"{m}: lsr-onnx max abs diff vs lsr-torch", v, "<= 1e-4", v <= 1e-4)
    nds = {(r["dataset"], r["model"], r["backend"]): r["nDCG@10"] for r in nd}
    for (ds, m, b), v in nds.items():
        ref = nds.get((ds, m, "torch"))
        if b == "onnx" and ref is not None:
            put(f"{m}: nDCG@10 {ds} onnx - torch", v - ref, "identical to 4 decimals", round(v, 4) == round(ref, 4))
        elif b == "onnx-int8" and ref is not None:
            put(f"{m}: nDCG@10 {ds} onnx-int8 - torch", v - ref, ">= -0.005", v - ref >= -0.005)
    for mode in ("sparse", "hybrid"):
        rs = {r["backend"]: r for r in ret if r["mode"] == mode}
        onnx = [b for b in rs if b.startswith("onnx")]
        if not onnx:
            continue
        best, hybrid = min(onnx, key=lambda b: rs[b]["p50_ms"]), mode == "hybrid"  # the issue's target: hybrid
        for ref in ("torch-all-cores", "torch"):  # today's behaviour (the issue's reference), lsr's torch now
            if ref in rs:
                v = rs[best]["p50_ms"] / rs[ref]["p50_ms"]
                put(f"Retriever {mode} p50 {best} / {ref}", v, "<= 1/3" if hybrid else None,
                    v <= 1 / 3 if hybrid else None)
    return acc


def machine(args, torch_default, st_meta) -> dict:
    import onnxruntime
    import sentence_transformers
    import torch
    import transformers

    from lsr.encoders.backends import default_threads
    info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": default_threads(), "doc_threads": args.threads,
            "torch_default_threads": torch_default, "load_average": list(os.getloadavg()),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "onnxruntime": onnxruntime.__version__, "transformers": transformers.__version__,
                         "sentence_transformers": sentence_transformers.__version__}, "st_onnx": st_meta}


def plot(rows, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed; no plot", file=sys.stderr)
        return
    models = [m for m in MODELS if any(r["model"] == m for r in rows)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width, x = 0.8 / len(ENGINES), np.arange(len(models))
    for ax, key, title in ((axes[0], "docs_per_s", "documents/s (batch 32, max length 256)"),
                           (axes[1], "p50_ms", "single-query p50 (ms, log)")):
        for j, e in enumerate(ENGINES):
            vals = [next((r[key] for r in rows if r["model"] == m and r["engine"] == e), 0) for m in models]
            ax.bar(x + (j - len(ENGINES) / 2 + 0.5) * width, vals, width, label=e)
        ax.set_xticks(x, models)
        ax.set(title=title)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write(report: dict, out: Path, datasets) -> None:
    """The JSON, one CSV row per model x engine (with its backend's nDCG@10), the plot, a table on stdout."""
    rows = report["encoding"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=float))
    nds = {(r["dataset"], r["model"], r["backend"]): r["nDCG@10"] for r in report["ndcg"]}
    cols = ["model", "engine", "docs_per_s", "p50_ms", "p99_ms", "max_abs_diff", f"top{K_OVERLAP}_overlap",
            "min_cosine", "gflops", "fraction_of_fp32_peak", "doc_threads", "query_threads"]
    fmt = lambda v: "" if v is None else f"{v:.6g}" if isinstance(v, float) else v  # noqa: E731
    with open(out.with_suffix(".csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols + [f"nDCG@10 {d}" for d in datasets] + ["skipped"])
        for r in rows:
            b = r["engine"][4:] if r["engine"].startswith("lsr-") else None
            w.writerow([fmt(r.get(c)) for c in cols] + [fmt(nds.get((d, r["model"], b))) for d in datasets]
                       + [r.get("skipped", "")])
    plot([r for r in rows if "seconds" in r], out.with_suffix(".png"))
    print(f"\n{'model':11} {'engine':13} {'docs/s':>8} {'q p50':>7} {'q p99':>7} {'maxdiff':>8} {'agree':>6} "
          f"{'fp32 peak':>9}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['model']:11} {r['engine']:13} skipped: {r['skipped']}")
            continue
        agree = r.get(f"top{K_OVERLAP}_overlap", r.get("min_cosine"))
        print(f"{r['model']:11} {r['engine']:13} {r['docs_per_s']:8.1f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} "
              f"{r['max_abs_diff']:8.1e} {agree:6.4f} {100 * r['fraction_of_fp32_peak']:8.1f}%")
    for k, a in report["acceptance"].items():
        print(f"{ {True: 'ok  ', False: 'MISS'}.get(a['ok'], '    ')} {k}: {a['value']:.4g} (target {a['target']})")
    for s in report["skipped"]:
        print("skipped:", s)
    print(f"wrote {out} (.csv, .png)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=2000, help="first N scifact documents to encode")
    ap.add_argument("--queries", type=int, default=300, help="first N judged scifact test queries")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads for document encoding, every engine "
                    "(default: the cores this process may use)")
    ap.add_argument("--only", choices=list(MODELS), help="one model only")
    ap.add_argument("--skip-encoding", action="store_true", help="parts (a)-(c) and (f): encoding, agreement, peak")
    ap.add_argument("--skip-ndcg", action="store_true")
    ap.add_argument("--skip-retriever", action="store_true")
    ap.add_argument("--ndcg-datasets", nargs="+", choices=list(NDCG_SETS), default=list(NDCG_SETS))
    ap.add_argument("--st-onnx-python", help="an interpreter with sentence-transformers[onnx]",
                    default=os.environ.get("LSR_ST_ONNX_PYTHON") or "/work/venvs/st-onnx/bin/python")
    ap.add_argument("--cache", type=Path, default=OUT / "inference", help="built indexes (reused when present)")
    ap.add_argument("--out", type=Path, default=OUT / "inference.json", help="also writes .csv and .png beside it")
    args = ap.parse_args()
    import torch
    torch_default = torch.get_num_threads()  # before any engine sets it: what a plain ST user gets

    from lsr.data import load_dataset
    from lsr.encoders.backends import default_threads
    args.threads = args.threads or default_threads()
    models = [args.only] if args.only else list(MODELS)
    docs = [d.full_text for d in islice(load_dataset("beir/scifact").docs(), args.docs)]
    ds = load_dataset("beir/scifact/test")
    qrels = ds.qrels()
    queries = [q.text for q in ds.queries() if q.query_id in qrels][:args.queries]
    print(f"{len(docs)} documents, {len(queries)} queries, {args.threads} threads for documents", flush=True)

    pk, st, rows, skipped = {}, {}, [], []
    if args.skip_encoding:
        skipped.append("encoding: --skip-encoding")
    else:
        pk = peak(args.threads)
        print("peak GFLOP/s", {k: round(v, 1) for k, v in pk.items() if k.endswith("gflops") and v}, flush=True)
        st = st_onnx(models, docs, queries, args)  # first: its subprocess never overlaps our own timings
    for m in ([] if args.skip_encoding else models):
        vecs, res = {}, {}
        vecs["st-torch"], res["st-torch"] = st_torch(m, docs, queries, args, torch_default)
        vecs["st-onnx"], res["st-onnx"] = st[m]
        for b in BACKENDS:
            vecs[f"lsr-{b}"], res[f"lsr-{b}"] = lsr_engine(m, b, docs, queries, args)
        for e in ENGINES:
            r = {"model": m, "engine": e, **res[e]}
            if "seconds" in r:
                f = flops_for(m, e, docs, args.batch_size, args.max_length)
                r.update(docs_per_s=len(docs) / r["seconds"], **agreement(MODELS[m], vecs["lsr-torch"], vecs[e]),
                         gflop_per_doc=f / len(docs) / 1e9, gflops=f / r["seconds"] / 1e9)
                r["fraction_of_fp32_peak"] = r["gflops"] / pk["numpy_fp32_gflops"]
                if e.endswith("int8") and pk.get("ort_int8_gflops"):
                    r["fraction_of_int8_peak"] = r["gflops"] / pk["ort_int8_gflops"]
            else:
                skipped.append(f"{m} {e}: {r['skipped']}")
            rows.append(r)
    parts = {}
    for part, fn, skip in (("ndcg", lambda: ndcg(args, models), args.skip_ndcg),
                           ("retriever", lambda: retriever_latency(args, queries), args.skip_retriever)):
        try:  # a failed part is reported, never the loss of the encoding figures above
            parts[part] = [] if skip else fn()
        except Exception as e:
            import traceback
            traceback.print_exc()
            parts[part] = []
            skipped.append(f"{part}: failed ({type(e).__name__}: {e})")
        if skip:
            skipped.append(f"{part}: --skip-{part}")
    write({"date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join([sys.executable, *sys.argv]),
           "machine": machine(args, torch_default, st.get("_meta")),
           "settings": {"docs": len(docs), "queries": len(queries), "batch_size": args.batch_size,
                        "max_length": args.max_length, "doc_threads": args.threads, "top_k_overlap": K_OVERLAP,
                        "warmup_docs": WARM_DOCS, "warmup_queries": WARM_QUERIES},
           "peak": pk, "encoding": rows, "ndcg": parts["ndcg"], "retriever": parts["retriever"],
           "acceptance": acceptance(rows, parts["ndcg"], parts["retriever"]), "skipped": skipped},
          args.out, args.ndcg_datasets)


if __name__ == "__main__":
    main()
