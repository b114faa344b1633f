"""lsr exact search vs an independent brute-force reference, and search latency.

For each collection (default beir/scifact/test and beir/nfcorpus/test):
  reference  plain sentence-transformers encodings of splade-tiny, scipy
             product, pytrec_eval (lsr/eval/reference.py; no other lsr code);
  lsr        `lsr index <corpus> --model splade-tiny` then
             `lsr eval <index> <split> --json` through the installed CLI;
  latency    exact search per query (single thread, queries pre-encoded)
             and 2-thread batch throughput on the same index.
Writes bench/out/reference_check.json.

    python bench/reference_check.py [--datasets scifact nfcorpus]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lsr.eval.reference import reference_ndcg  # noqa: E402


def lsr_cli(*args) -> str:
    exe = Path(sys.executable).with_name("lsr")
    p = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"lsr {' '.join(map(str, args))} failed:\n{p.stderr}")
    return p.stdout


def latency(index_dir: Path, split_id: str) -> dict:
    from lsr.data import load_dataset
    from lsr.retrieval import Searcher
    s = Searcher(index_dir)
    ds = load_dataset(split_id)
    qrels = ds.qrels()
    texts = [q.text for q in ds.queries() if q.query_id in qrels]
    q = s.encode_queries(texts)
    s.index.search_numbers(q[:2], 10, threads=1)  # compile outside the timing
    times = []
    for i in range(len(q)):
        t = time.perf_counter()
        s.index.search_numbers(q[i:i + 1], 10, threads=1)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    s.index.search_numbers(q, 10, threads=2)
    batch = time.perf_counter() - t
    ms = np.array(times) * 1000
    return {"queries": len(q), "mean_query_nnz": q.nnz / len(q), "docs": len(s.index),
            "mean_ms": float(ms.mean()), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "batch_2_threads_qps": len(q) / batch}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared/data")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "reference_check.json")
    args = ap.parse_args()
    if "IR_DATASETS_HOME" not in os.environ:
        os.environ["IR_DATASETS_HOME"] = str(ROOT / ".cache" / "ir_datasets")

    from lsr.encoders import resolve_model
    model_path = resolve_model("splade-tiny").path
    results = {"date": time.strftime("%Y-%m-%d"), "model": "splade-tiny", "max_length": 256, "collections": {}}
    for name in args.datasets:
        index_dir = HERE / "out" / "indexes" / f"{name}-splade-tiny"
        t = time.perf_counter()
        lsr_cli("index", f"beir/{name}", "--model", "splade-tiny", "--output", index_dir, "--overwrite", "-q")
        t_index = time.perf_counter() - t
        ours = json.loads(lsr_cli("eval", index_dir, f"beir/{name}/test", "--json"))
        t = time.perf_counter()
        ref = reference_ndcg(args.shared / "beir" / name, model_path)
        t_ref = time.perf_counter() - t
        row = {
            "lsr_nDCG@10": ours["nDCG@10"], "reference_nDCG@10": ref["ndcg_cut_10"],
            "abs_diff_nDCG@10": abs(ours["nDCG@10"] - ref["ndcg_cut_10"]),
            "lsr_R@100": ours["R@100"], "reference_R@100": ref["recall_100"],
            "lsr_RR@10": ours["RR@10"],
            "lsr_index_seconds": t_index, "reference_seconds": t_ref,
            "exact_search": latency(index_dir, f"beir/{name}/test"),
        }
        results["collections"][name] = row
        print(name, json.dumps(row, indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
