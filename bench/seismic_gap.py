"""Where lsr-seismic and pyseismic-lsr differ on one collection: fixed cost per call, recall at equal settings.

    python bench/seismic_gap.py --real nfcorpus

Builds both indexes with the same parameters as bench/seismic_bench.py (no
k-NN graph), then reports:

* the cost of one public search call on a query that does almost no work
  (one term that a single document has): the per-call overhead of each
  system's Python entry and kernel call;
* recall@10 against exact search at a few (query_cut, heap_factor)
  settings, heap_factor 0 included (every block of the chosen lists scored:
  differences there come from the lists, above it from blocks and summaries);
* with ``--seeds N``: lsr's recall at the same settings for clustering seeds
  0..N-1, the spread that comes from the random choice of centroids alone
  (pyseismic fixes its seed in its source, so it has one draw).

Writes bench/out/seismic_gap_<data>.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

SETTINGS = [(3, 0.0), (3, 0.6), (3, 0.7), (10, 0.0), (10, 0.6)]


def best_us(fn, n=20000, reps=7) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n * 1e6)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", default="nfcorpus")
    ap.add_argument("--seeds", type=int, default=0, metavar="N",
                    help="also build lsr with clustering seeds 0..N-1 and report each one's recall")
    args = ap.parse_args()
    from lsr.index import ExactIndex, SeismicIndex
    from lsr.index.seismic import BUILD_DEFAULTS, default_build_params
    from lsr.sparse import SparseVectors
    from seismic_bench import OUT, PySeismicSearcher, build_pyseismic, real_data, recall_at_k
    ids, docs, queries = real_data(args.real)
    params = {k: v for k, v in BUILD_DEFAULTS.items() if k not in ("forward_dtype", "seed", "knn", "knn_blocks")}
    params.update(default_build_params(len(docs)))
    work = OUT / f"seismic_gap_{args.real}"
    work.mkdir(parents=True, exist_ok=True)
    idx = SeismicIndex.build(docs, ids, **params)
    build_pyseismic(docs, ids, work / "pyseismic", params)
    ps = PySeismicSearcher(work / "pyseismic", docs.vocab.size)
    truth, _ = ExactIndex.build(docs, ids).search_numbers(queries, 10)
    position = {d: i for i, d in enumerate(ids)}

    def recall(rows):  # rows: each query's string ids
        return recall_at_k(rows, truth, position)

    out = {"date": time.strftime("%Y-%m-%d"), "data": args.real, "params": params, "recall": []}
    for qc, hf in SETTINGS:
        got, _ = idx.batch_search(queries, 10, query_cut=qc, heap_factor=hf, threads=1)
        theirs = [[r[2] for r in ps.index.search("q", ps.tokens[queries.row(i)[0]],
                                                  queries.row(i)[1].astype(np.float32), 10,
                                                  query_cut=qc, heap_factor=hf)] for i in range(len(queries))]
        row = {"query_cut": qc, "heap_factor": hf, "lsr": recall(got), "pyseismic": recall(theirs)}
        out["recall"].append(row)
        print(row, flush=True)

    if args.seeds:
        out["recall_by_seed"] = {}
        for seed in range(args.seeds):
            other = SeismicIndex.build(docs, ids, **params, seed=seed)
            row = [recall(other.batch_search(queries, 10, query_cut=qc, heap_factor=hf, threads=1)[0])
                   for qc, hf in SETTINGS]
            out["recall_by_seed"][seed] = row
            print("seed", seed, {f"{qc}/{hf}": round(r, 4) for (qc, hf), r in zip(SETTINGS, row)}, flush=True)
        spread = np.array(list(out["recall_by_seed"].values()))
        out["recall_seed_range"] = [{"query_cut": qc, "heap_factor": hf, "min": float(lo), "max": float(hi)}
                                    for (qc, hf), lo, hi in zip(SETTINGS, spread.min(0), spread.max(0))]

    df = np.bincount(docs.indices, minlength=docs.vocab.size)
    term = int(np.flatnonzero(df == 1)[0])
    one = SparseVectors(np.array([0, 1]), np.array([term], np.int32), np.array([1.0], np.float32), docs.vocab)
    tok, val = ps.tokens[[term]], np.array([1.0], np.float32)
    lsr_call = lambda: idx.search(one, 10, query_cut=3, heap_factor=0.7)  # noqa: E731
    ps_call = lambda: ps.index.search("q", tok, val, 10, query_cut=3, heap_factor=0.7)  # noqa: E731
    lsr_call(), ps_call()
    out["one_term_query_us"] = {"lsr": best_us(lsr_call), "pyseismic": best_us(ps_call)}
    print("one-term query, best of 7 x 20,000 calls:", out["one_term_query_us"], flush=True)
    (OUT / f"seismic_gap_{args.real}.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
