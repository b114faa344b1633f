"""lsr.Retriever on scifact: load time and per-query latency, sparse and hybrid, one run.

    python bench/retriever_latency.py \
        --sparse bench/out/family/scifact-9f761d5f/seismic --hybrid bench/out/hybrid/scifact

* load: ``Retriever.load(index)`` in this process after ``import lsr`` (best of 5), and
  in a fresh process ``python -c "import lsr; lsr.Retriever.load(INDEX)"`` (best of 3);
* first query: load + the first search (the model loads here);
* per query: the 300 scifact test queries one at a time (``search(q, 10)``),
  after the first query, mean / p50 / p99.

Writes bench/out/retriever_latency.json.
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


def measure(index: str, mode: str, queries: list[str]) -> dict:
    from lsr import Retriever
    loads = []
    for _ in range(5):
        t = time.perf_counter()
        Retriever.load(index, mode=mode)
        loads.append(time.perf_counter() - t)
    cold = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import lsr; lsr.Retriever.load({index!r}, mode={mode!r})"],
                       check=True)
        cold.append(time.perf_counter() - t)
    t = time.perf_counter()
    r = Retriever.load(index, mode=mode)
    r.search(queries[0], 10)
    first = time.perf_counter() - t
    times = []
    for q in queries:
        t = time.perf_counter()
        r.search(q, 10)
        times.append((time.perf_counter() - t) * 1e3)
    times = np.array(times)
    out = {"index": index, "mode": mode, "load_s_in_process": min(loads), "load_s_fresh_process": min(cold),
           "first_query_s": first, "query_ms_mean": float(times.mean()), "query_ms_p50": float(np.percentile(times, 50)),
           "query_ms_p99": float(np.percentile(times, 99)), "queries": len(queries)}
    print(json.dumps(out), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sparse", required=True, help="a splade-tiny index of beir/scifact")
    ap.add_argument("--hybrid", required=True, help="an index of beir/scifact built with --dense minilm")
    args = ap.parse_args()
    os.environ.setdefault("IR_DATASETS_HOME", str(HERE.parent / ".cache" / "ir_datasets"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lsr.data import load_dataset
    ds = load_dataset("beir/scifact/test")
    qrels = ds.qrels()
    queries = [q.text for q in ds.queries() if q.query_id in qrels]
    rows = [measure(args.sparse, "sparse", queries), measure(args.hybrid, "sparse", queries),
            measure(args.hybrid, "hybrid", queries)]
    (HERE / "out" / "retriever_latency.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"),
                                                                      "threads": "default", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
