"""Statistics that calibrate bench/synthetic.py against real splade-tiny encodings.

Compares the real beir/scifact and beir/nfcorpus encodings (kept by
bench/reference_check.py, or made by `lsr index beir/NAME --model splade-tiny
--output bench/out/indexes/NAME-splade-tiny`) with synthetic samples of the
same size from each generator profile (v1, v2). Writes
bench/out/synthetic_calibration.json.

    python bench/synthetic_calibration.py

Per collection:

* shape: document and query non-zeros, weight quantiles, the log-log slope
  of document frequency against rank (ranks 10 to 3,000), the rank
  correlation between a term's document frequency and its mean document
  weight, and how common a query's heaviest terms are (median document
  frequency of each query's top-5 terms over the median of all its terms);
* neighbourhood structure (what decides how hard approximate top-10 search
  is; medians over queries, exact scores against the whole collection):
  best score / 10th best; 10th / 100th; 10th / the mean score of the
  documents that match at all ("relative contrast", He, Kumar and Chang,
  ICML 2012, for inner products); how many documents score at least 80% of
  the 10th; and the share of a median matching document's score that comes
  from the query's 5 heaviest terms.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def shape_stats(docs, queries) -> dict:
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
    ranked = np.sort(df)[::-1]
    rank = np.arange(1, len(ranked) + 1)
    fit = (rank >= 10) & (rank <= 3000) & (ranked > 0)
    v = docs.values
    return {"docs": len(docs), "doc_nnz": docs.nnz / len(docs), "query_nnz": queries.nnz / len(queries),
            "weight_median": float(np.median(v)), "weight_mean": float(v.mean()),
            "weight_p90": float(np.percentile(v, 90)), "weight_p99": float(np.percentile(v, 99)),
            "df_rank_slope": float(np.polyfit(np.log(rank[fit]), np.log(ranked[fit]), 1)[0]),
            "spearman_df_vs_mean_doc_weight": float(spearmanr(df[used], mean_w)[0]),
            "query_top5_df_over_all_df": float(np.median(top) / np.median(every))}


def neighbourhood_stats(docs, queries) -> dict:
    d = docs.to_scipy().tocsr()
    q = queries.to_scipy().tocsr()
    scores = (q @ d.T).toarray()
    best_over_10, s10_over_100, s10_over_mean, near, heavy_share = [], [], [], [], []
    for i in range(scores.shape[0]):
        s = scores[i]
        ranked = np.sort(s)[::-1]
        if ranked[9] <= 0:
            continue
        s10 = ranked[9]
        best_over_10.append(ranked[0] / s10)
        s10_over_100.append(s10 / ranked[99])
        matching = np.flatnonzero(s > 0)
        s10_over_mean.append(s10 / s[matching].mean())
        near.append(int((s >= 0.8 * s10).sum()))
        # the median matching document: how much of its score the heaviest query terms give
        a, b = q.indptr[i], q.indptr[i + 1]
        heavy = q.indices[a:b][np.argsort(-q.data[a:b])[:5]]
        mid = matching[np.argsort(s[matching])[len(matching) // 2]]
        row = d[mid]
        in_heavy = np.isin(row.indices, heavy)
        qw = dict(zip(q.indices[a:b], q.data[a:b]))
        part = sum(row.data[j] * qw[row.indices[j]] for j in np.flatnonzero(in_heavy))
        heavy_share.append(part / s[mid])
    med = lambda x: float(np.median(x))  # noqa: E731
    return {"best_over_10th": med(best_over_10), "10th_over_100th": med(s10_over_100),
            "10th_over_mean_matching": med(s10_over_mean), "docs_within_80pct_of_10th": med(near),
            "heavy5_share_of_median_doc_score": med(heavy_share)}


def stats(docs, queries) -> dict:
    return {**shape_stats(docs, queries), **neighbourhood_stats(docs, queries)}


def main():
    from seismic_bench import real_data
    from synthetic import PROFILES, generate
    out = {}
    for name in ("scifact", "nfcorpus"):
        _, docs, queries = real_data(name)
        out[f"real {name} (splade-tiny)"] = stats(docs, queries)
        for profile in PROFILES:
            sdocs, squeries = generate(len(docs), 300, seed=0, profile=profile)
            out[f"synthetic {profile}, {len(docs)} docs"] = stats(sdocs, squeries)
    for name, row in out.items():
        print(name, {k: round(v, 3) for k, v in row.items()}, flush=True)
    (HERE / "out" / "synthetic_calibration.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
