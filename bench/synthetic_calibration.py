"""Statistics that calibrate bench/synthetic.py against real splade-tiny encodings.

Compares the real beir/scifact encodings (kept by bench/reference_check.py)
with 100k synthetic documents: document and query non-zeros, weight
quantiles, the rank correlation between a term's document frequency and its
mean document weight, and how common a query's heaviest terms are (median
document frequency of each query's top-5 terms over the median of all its
terms). Writes bench/out/synthetic_calibration.json.

    python bench/synthetic_calibration.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def stats(docs, queries) -> dict:
    from scipy.stats import spearmanr
    d = docs.to_scipy().tocsc()
    q = queries.to_scipy()
    df = np.diff(d.indptr)
    used = df > 0
    mean_w = np.asarray(d.sum(axis=0)).ravel()[used] / df[used]
    top, every = [], []
    for i in range(q.shape[0]):
        a, b = q.indptr[i], q.indptr[i + 1]
        order = np.argsort(-q.data[a:b])[:5]
        top.extend(df[q.indices[a:b][order]])
        every.extend(df[q.indices[a:b]])
    v = docs.values
    return {"docs": len(docs), "doc_nnz": docs.nnz / len(docs), "query_nnz": queries.nnz / len(queries),
            "weight_median": float(np.median(v)), "weight_mean": float(v.mean()),
            "weight_p90": float(np.percentile(v, 90)), "weight_p99": float(np.percentile(v, 99)),
            "spearman_df_vs_mean_doc_weight": float(spearmanr(df[used], mean_w)[0]),
            "query_top5_df_over_all_df": float(np.median(top) / np.median(every))}


def main():
    from seismic_bench import real_data
    from synthetic import generate
    _, docs, queries = real_data("scifact")
    out = {"real scifact (splade-tiny)": stats(docs, queries)}
    sdocs, squeries = generate(100_000, 300, seed=0)
    out["synthetic (100k docs, seed 0)"] = stats(sdocs, squeries)
    for name, row in out.items():
        print(name, {k: round(v, 3) for k, v in row.items()})
    (HERE / "out" / "synthetic_calibration.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
