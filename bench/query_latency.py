"""Query latency, encoding + search, of an inference-free encoder vs a siamese one: one run.

Both indexes are searched with the same queries in the same process,
interleaved query by query (so drift in machine speed hits both alike), on one
thread (torch and numba). For each system: per-query encoding time, search
time and their sum (mean / p50 / p99), whether torch was needed, and the
cold start of `lsr search INDEX QUERY` in a fresh process (best of 3), which
for a torch-free query side skips importing torch and loading the network.

    python bench/query_latency.py --index splade-tiny=bench/out/family/scifact-XXXX/seismic \\
        --index qidf_dmlm=bench/out/family/scifact-YYYY/seismic

Writes bench/out/query_latency.json.
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


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"mean_ms": round(float(a.mean()), 4), "p50_ms": round(float(np.percentile(a, 50)), 4),
            "p99_ms": round(float(np.percentile(a, 99)), 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", action="append", required=True, help="NAME=INDEX_DIR (repeat)")
    ap.add_argument("--queries", default="beir/scifact/test")
    ap.add_argument("--repeats", type=int, default=3, help="passes over the queries (the first is a warm-up)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "query_latency.json")
    args = ap.parse_args()
    os.environ.setdefault("IR_DATASETS_HOME", str(HERE.parent / ".cache" / "ir_datasets"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["NUMBA_NUM_THREADS"] = "1"
    from lsr.data import load_dataset
    from lsr.retrieval import Searcher

    systems = dict(s.split("=", 1) for s in args.index)
    queries = [q.text for q in load_dataset(args.queries).queries()]
    searchers = {}
    for name, d in systems.items():
        torch_before = "torch" in sys.modules
        t = time.perf_counter()
        s = Searcher(d)
        s.encode_queries(["warm up"])
        searchers[name] = (s, time.perf_counter() - t, torch_before)
    if "torch" in sys.modules:
        import torch
        torch.set_num_threads(1)
    enc = {n: [] for n in systems}
    srch = {n: [] for n in systems}
    for rep in range(args.repeats):
        for q in queries:
            for name, (s, _, _) in searchers.items():
                t0 = time.perf_counter()
                v = s.encode_queries([q])
                t1 = time.perf_counter()
                s.index.search_numbers(v, 10, threads=1)
                t2 = time.perf_counter()
                if rep:  # the first pass warms caches and JIT
                    enc[name].append((t1 - t0) * 1e3)
                    srch[name].append((t2 - t1) * 1e3)
    result = {"date": time.strftime("%Y-%m-%d"), "queries": args.queries, "n_queries": len(queries),
              "passes_timed": args.repeats - 1, "threads": 1, "systems": {}}
    for name, (s, load_s, _) in searchers.items():
        total = [a + b for a, b in zip(enc[name], srch[name])]
        cold = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lsr", "search", systems[name], queries[0], "--json"],
                           capture_output=True, check=True)
            cold.append(time.perf_counter() - t)
        probe = subprocess.run([sys.executable, "-c", "import sys; from lsr.retrieval import Searcher; "
                                f"s = Searcher({systems[name]!r}); s.encode_queries(['x']); "
                                "print('torch' in sys.modules)"], capture_output=True, text=True, check=True)
        result["systems"][name] = {
            "index": systems[name], "encoder": type(s.encoder).__name__,
            "needs_torch": probe.stdout.strip().splitlines()[-1] == "True",
            "encode": stats(enc[name]), "search": stats(srch[name]), "total": stats(total),
            "load_s": round(load_s, 3), "cold_cli_search_s": round(min(cold), 3),
        }
    names = list(systems)
    if len(names) >= 2:
        a, b = result["systems"][names[0]], result["systems"][names[1]]
        result[f"total mean {names[0]} / {names[1]}"] = round(a["total"]["mean_ms"] / b["total"]["mean_ms"], 2)
        result[f"encode mean {names[0]} / {names[1]}"] = round(a["encode"]["mean_ms"] / b["encode"]["mean_ms"], 1)
        result[f"cold start {names[0]} / {names[1]}"] = round(a["cold_cli_search_s"] / b["cold_cli_search_s"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
