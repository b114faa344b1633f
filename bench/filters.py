"""Metadata filters inside the index scan vs post-filtering, on cranfield's real metadata.

    python bench/filters.py

Indexes cranfield (1,400 abstracts, 225 queries; ir_datasets records carry
``author`` and ``bib``) with splade-tiny, exact and seismic (default
parameters), into bench/out/filters/ (kept for reruns). For filters of
different selectivity it reports, over all queries, k = 10:

* recall@10 of filtered seismic search against filtered exact search (the
  true best 10 allowed documents), next to seismic's unfiltered recall;
* how often post-filtering an unfiltered top 10 (what a library without
  in-scan filters does) returns fewer hits than exist, and its recall;
* mean single-thread latency of the filtered and unfiltered searches.

Writes bench/out/filters.json and .csv.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "out"


def recall(approx_docs, exact_docs) -> float:
    vals = []
    for a, e in zip(approx_docs, exact_docs):
        e = set(e[e >= 0].tolist())
        if e:
            vals.append(len(set(a[a >= 0].tolist()) & e) / len(e))
    return float(np.mean(vals))


def timed(index, q, k, allowed, repeats: int = 3):
    best = None
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(len(q)):
            index.search_numbers(q[i:i + 1], k, threads=1, allowed=allowed)
        dt = (time.perf_counter() - t) / len(q)
        best = dt if best is None else min(best, dt)
    return best * 1e3


def main():
    import ir_datasets

    from lsr.index import load_index
    from lsr.retrieval import Searcher, build_index

    base = OUT / "filters"
    if not (base / "exact" / "manifest.json").exists():
        build_index("cranfield", "splade-tiny", base / "exact", index_type="exact", overwrite=True)
    if not (base / "seismic" / "manifest.json").exists():
        build_index(base / "exact" / "vectors", None, base / "seismic", index_type="seismic", overwrite=True)
    exact = Searcher(base / "exact", verify=False)
    seismic = load_index(base / "seismic", verify=False)
    queries = [q.text for q in ir_datasets.load("cranfield").queries_iter()]
    q = exact.encode_queries(queries)
    n, k = len(exact.index), 10
    full, _ = exact.index.search_numbers(q, n)
    ex10, _ = exact.index.search_numbers(q, k)
    se10, _ = seismic.search_numbers(q, k, threads=1)
    rng = np.random.default_rng(0)
    filters = {"bib contains 1941 (0.3%)": {"bib": {"$contains": "1941"}},
               "bib contains 1958 (6%)": {"bib": {"$contains": "1958"}},
               "bib contains 1959 (9%)": {"bib": {"$contains": "1959"}},
               "random 30% of doc ids": {"doc_id": {"$in": [str(i) for i in range(1, n + 1) if rng.random() < 0.3]}},
               "author exists (96%)": {"author": {"$exists": True}}}
    rows = [{"filter": "none", "allowed docs": n, "seismic recall@10 vs exact": recall(se10, ex10),
             "post-filter: short lists": 0.0, "post-filter recall@10": 1.0,
             "exact ms/query": timed(exact.index, q, k, None), "seismic ms/query": timed(seismic, q, k, None)}]
    for name, where in filters.items():
        allowed = exact.allowed(where)
        ex_f, _ = exact.index.search_numbers(q, k, allowed=allowed)
        se_f, _ = seismic.search_numbers(q, k, threads=1, allowed=allowed)
        assert allowed[ex_f[ex_f >= 0]].all() and allowed[se_f[se_f >= 0]].all()
        # exact + filter must equal the full ranking restricted to allowed documents
        ref = [row[allowed[row]][:k] for row in full]
        assert all(np.array_equal(a[a >= 0], r) for a, r in zip(ex_f, ref)), name
        post = [row[allowed[row]] for row in ex10]  # post-filtering the unfiltered top 10
        short = np.mean([len(p) < (e >= 0).sum() for p, e in zip(post, ex_f)])
        post_recall = recall([np.pad(p, (0, k - len(p)), constant_values=-1) for p in post], ex_f)
        rows.append({"filter": name, "allowed docs": int(allowed.sum()),
                     "seismic recall@10 vs exact": recall(se_f, ex_f),
                     "post-filter: short lists": float(short), "post-filter recall@10": post_recall,
                     "exact ms/query": timed(exact.index, q, k, allowed),
                     "seismic ms/query": timed(seismic, q, k, allowed)})
        print(json.dumps({kk: round(v, 4) if isinstance(v, float) else v for kk, v in rows[-1].items()}), flush=True)
    OUT.mkdir(exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "collection": "cranfield", "model": "splade-tiny", "k": k,
            "queries": len(queries), "seismic params": seismic.params}
    (OUT / "filters.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
    with open(OUT / "filters.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(json.dumps({kk: round(v, 4) if isinstance(v, float) else v for kk, v in rows[0].items()}))


if __name__ == "__main__":
    main()
