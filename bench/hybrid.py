"""Hybrid retrieval and PRF on BEIR: BM25, learned sparse, dense, their fusions, PRF variants.

For each collection an exact splade-tiny index is built with the dense
(MiniLM) and BM25 lists beside it (cached in bench/out/hybrid/<name>/):

    lsr index beir/scifact -m splade-tiny --index-type exact --dense minilm -o ...   # + the BM25 list

Fusion settings (method, normalisation, weights) are tuned on scifact's
train split and nfcorpus's dev split, never on test: "recommended" rows
use, per list subset, the settings with the best mean over the two tuning
splits, applied unchanged to all four test sets (cranfield and med are
never used for tuning). PRF rows add Rocchio / Vector-PRF before, after or
around fusion. The DEFAULT row is the configuration ``lsr search --hybrid``
uses (lsr.retrieval.hybrid.RECOMMENDED): the 3-list fusion with or without
PRF on some of its lists, chosen on the tuning splits (ties within TIE:
the cheapest). Every row is compared with BM25, and the default also with
an untuned equal-weight min-max fusion of the same lists and with the best
single list.

    python bench/hybrid.py                      # all four collections
    python bench/hybrid.py --datasets scifact   # one

Writes bench/out/hybrid.json, bench/out/hybrid.csv and bench/out/hybrid_dense_storage.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time
from itertools import combinations
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
SHARED = Path(os.environ.get("LSR_SHARED_DATA") or HERE.parents[1] / "shared" / "data")
DATASETS = {  # name: (corpus, test split, tuning split or None)
    "scifact": ("beir/scifact", "beir/scifact/test", "beir/scifact/train"),
    "nfcorpus": ("beir/nfcorpus", "beir/nfcorpus/test", "beir/nfcorpus/dev"),
    "cranfield": ("cranfield", "cranfield", None),
    "med": (str(SHARED / "beir" / "med"), str(SHARED / "beir" / "med"), None),
}
METRICS = ["nDCG@10", "R@100"]
TIE = 0.0005  # mean tuning nDCG@10 within this of the best counts as a tie (then the cheapest config wins)


def build(name: str, progress: bool):
    from lsr.retrieval import build_index
    corpus = DATASETS[name][0]
    out = OUT / "hybrid" / name
    if not (out / "manifest.json").exists():
        t = time.time()
        build_index(corpus, "splade-tiny", out, index_type="exact", overwrite=True, progress=progress,
                    dense="minilm", bm25=True, keep_vectors=False)
        print(f"{name}: built in {time.time() - t:.0f}s", flush=True)
    return out


class Queries:
    """One split's judged queries, encoded and searched once; configs only fuse."""

    def __init__(self, searcher, dataset_id: str):
        from lsr.data import load_dataset
        ds = load_dataset(dataset_id)
        self.qrels = ds.qrels()
        self.queries = [q for q in ds.queries() if q.query_id in self.qrels and q.text.strip()]
        self.ids = [q.query_id for q in self.queries]
        self.searcher = searcher
        self.reps = searcher.encode([q.text for q in self.queries])
        self.first = searcher.first_round(self.reps)

    def score(self, config, per_query: bool = False):
        from lsr.eval import evaluate, parse_metrics, run_from_results
        docs, scores = self.searcher.combine(self.reps, self.first, 101, config)
        run = run_from_results(self.ids, self.searcher.main.index.doc_ids.take(docs), scores, drop_self=True)
        return evaluate(run, self.qrels, parse_metrics(METRICS), per_query=per_query)


def configs_for(lists, step):
    from lsr.retrieval import HybridConfig
    from lsr.retrieval.tune import weight_grid
    if len(lists) == 1:
        return [HybridConfig(lists=lists)]
    out = []
    for fusion, norm in (("convex", "minmax"), ("convex", "zscore"), ("rrf", "none")):
        for w in weight_grid(len(lists), step):
            if min(w) == 0:
                continue  # a subset with a zero weight is a smaller subset
            out.append(HybridConfig(lists=lists, weights=w, fusion=fusion, norm=norm))
    return out


def key(c) -> str:
    prf = f" prf-{c.prf.when}" if c.prf else ""
    if c.prf:
        prf += f"[{'+'.join(c.prf.lists) if c.prf.lists else 'all'} fb{c.prf.fb_docs} b{c.prf.beta:g}]"
    w = ",".join(f"{x:g}" for x in c.weights) if c.weights else "equal"
    return f"{'+'.join(c.lists)} {c.fusion}/{c.norm} w={w}{prf}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--step", type=float, default=0.1)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--storage-only", action="store_true", help="only the dense float32/float16/int8 comparison")
    args = ap.parse_args()
    os.environ.setdefault("IR_DATASETS_HOME", str(HERE.parent / ".cache" / "ir_datasets"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lsr.retrieval import PRF, HybridConfig, HybridSearcher

    subsets = [s for n in (1, 2, 3) for s in combinations(("bm25", "sparse", "dense"), n)]
    searchers, test, tune = {}, {}, {}
    for name in args.datasets:
        idx = build(name, not args.quiet)
        searchers[name] = HybridSearcher(idx, HybridConfig(lists=("sparse", "dense", "bm25")))
        test[name] = Queries(searchers[name], DATASETS[name][1])
        if DATASETS[name][2] and not args.storage_only:
            tune[name] = Queries(searchers[name], DATASETS[name][2])
    if args.storage_only:
        dense_storage(searchers, test)
        return

    # 1. tuning: every config of every subset on each tuning split
    tuned, recommended = {}, {}
    for lists in subsets:
        cands = configs_for(lists, args.step)
        scores = {t: [q.score(c)["nDCG@10"] for c in cands] for t, q in tune.items()}
        for t in tune:
            tuned[(t, lists)] = cands[int(np.argmax(scores[t]))]
        mean = np.mean([scores[t] for t in tune], axis=0) if tune else np.zeros(len(cands))
        recommended[lists] = cands[int(np.argmax(mean))]
        print("tuned", lists, {t: key(tuned[(t, lists)]) for t in tune}, "recommended", key(recommended[lists]),
              flush=True)

    # 2. PRF: Rocchio / Vector-PRF on each single list and on the hybrids, before / after / both.
    #    Rows at the defaults (fb_docs 3, fb_terms 20, beta 0.5), and with (fb_docs, beta) tuned per
    #    "when" on the mean of the tuning splits; the fusion settings stay the recommended ones.
    prf_rows, prf_tuned, prf_grid = [], {}, []
    for lists in [("bm25",), ("sparse",), ("dense",), ("sparse", "dense"), ("bm25", "sparse", "dense")]:
        base = recommended[lists]
        whens = ["after"] if len(lists) == 1 else ["before", "after", "both"]
        for when in whens:
            def cfg(fb_docs, beta):
                return HybridConfig(lists=lists, weights=base.weights, fusion=base.fusion, norm=base.norm,
                                    prf=PRF(fb_docs=fb_docs, fb_terms=20, alpha=1.0, beta=beta, when=when))
            prf_rows.append(("prf default", cfg(3, 0.5)))
            cands = [cfg(n, b) for n in (3, 10) for b in (0.1, 0.25, 0.5)]
            means = []
            for c in cands:
                vals = {t: q.score(c)["nDCG@10"] for t, q in tune.items()}
                means.append(float(np.mean(list(vals.values()))) if vals else 0.0)
                prf_grid.append({"config": key(c), "fb_docs": c.prf.fb_docs, "beta": c.prf.beta, **vals})
            best = cands[int(np.argmax(means))]
            prf_tuned[(lists, when)] = best
            prf_rows.append(("prf tuned", best))
            print("prf", key(best), f"fb_docs {best.prf.fb_docs} beta {best.prf.beta}", flush=True)
    # The recommended default: the 3-list fusion, without PRF or with PRF (after fusion) on any of
    # these sets of lists, fb_docs and beta; best mean nDCG@10 over the tuning splits. Within
    # TIE of the best, the cheapest wins: fewer lists re-searched (each is a second search).
    three = ("bm25", "sparse", "dense")
    base = recommended[three]
    options = [(0, base)]
    for pl in [("bm25",), ("dense",), ("bm25", "dense"), ("bm25", "sparse"), three]:
        for fb in (3, 5, 10):
            for beta in (0.05, 0.1, 0.25):
                options.append((len(pl), HybridConfig(lists=three, weights=base.weights, fusion=base.fusion,
                                                      norm=base.norm, prf=PRF(fb_docs=fb, beta=beta, when="after",
                                                                              lists=pl))))
    default_grid = []
    for cost, c in options:
        vals = {t: q.score(c)["nDCG@10"] for t, q in tune.items()}
        default_grid.append({"config": key(c), "prf_lists": list(c.prf.lists) if c.prf else [],
                             "fb_docs": c.prf.fb_docs if c.prf else 0, "beta": c.prf.beta if c.prf else 0,
                             "mean": float(np.mean(list(vals.values()))) if vals else 0.0, **vals})
    top = max(g["mean"] for g in default_grid)
    near = [i for i, g in enumerate(default_grid) if g["mean"] >= top - TIE]
    pick = min(near, key=lambda i: (options[i][0], -default_grid[i]["mean"]))
    default = options[pick][1]
    print("default", key(default), default.prf, f"tuning mean {default_grid[pick]['mean']:.4f} (best {top:.4f})",
          flush=True)

    # 3. test figures
    results = {"date": time.strftime("%Y-%m-%d"), "step": args.step, "rows": []}
    for name, q in test.items():
        bm25 = q.score(HybridConfig(lists=("bm25",)), per_query=True)
        for lists in subsets:
            rows = [("recommended", recommended[lists])]
            if (name, lists) in tuned:
                rows.append(("tuned here", tuned[(name, lists)]))
            if len(lists) > 1:
                rows.append(("equal min-max", HybridConfig(lists=lists, fusion="convex", norm="minmax")))
                rows.append(("equal rrf", HybridConfig(lists=lists, fusion="rrf", norm="none")))
            for label, c in rows:
                results["rows"].append(_row(name, label, c, q, bm25))
        for label, c in prf_rows:
            results["rows"].append(_row(name, label, c, q, bm25))
        row = _row(name, "DEFAULT", default, q, bm25)
        row["vs_equal_minmax"] = row["nDCG@10"] - q.score(HybridConfig(lists=default.lists))["nDCG@10"]
        best_single = max(q.score(HybridConfig(lists=(x,)))["nDCG@10"] for x in default.lists)
        row["vs_best_single"] = row["nDCG@10"] - best_single
        results["rows"].append(row)
        print(name, "done", flush=True)
    results["recommended"] = {"+".join(k): v.to_json() for k, v in recommended.items()}
    results["default"] = default.to_json()
    results["prf_grid"] = prf_grid
    results["default_grid"] = default_grid
    results["tie"] = TIE
    (OUT / "hybrid.json").write_text(json.dumps(results, indent=1, default=float))
    with open(OUT / "hybrid.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dataset", "kind", "config", "nDCG@10", "R@100", "vs_bm25"])
        for r in results["rows"]:
            w.writerow([r["dataset"], r["kind"], r["config"], f"{r['nDCG@10']:.4f}", f"{r['R@100']:.4f}",
                        f"{r['vs_bm25']:+.4f}"])
    _print_table(results)
    dense_storage(searchers, test)


def _row(name, label, c, q, bm25):
    means, per = q.score(c, per_query=True)
    return {"dataset": name, "kind": label, "config": key(c), "lists": list(c.lists), "nDCG@10": means["nDCG@10"],
            "R@100": means["R@100"], "vs_bm25": means["nDCG@10"] - bm25[0]["nDCG@10"],
            "settings": c.to_json()}


def _print_table(results):
    for r in results["rows"]:
        print(f"{r['dataset']:<9} {r['kind']:<14} {r['config']:<55} {r['nDCG@10']:.4f} {r['R@100']:.4f} "
              f"{r['vs_bm25']:+.4f}")


def dense_storage(searchers, test):
    """float32 vs float16 vs int8: bytes, search latency and nDCG@10 of the dense list alone."""
    from lsr.eval import evaluate, parse_metrics, run_from_results
    from lsr.index.dense import DenseIndex
    rows = []
    for name, s in searchers.items():
        dense = s._lists.get("dense") if hasattr(s, "_lists") else None
        if dense is None:
            continue
        x = np.asarray(dense.index.embeddings(np.arange(len(dense.index))))
        q = test[name]
        emb = q.reps["dense"]
        for dtype in ("float32", "float16", "int8"):
            idx = DenseIndex.build(x, dtype)
            idx.search(emb[:4], 100)  # warm
            t = time.perf_counter()
            for i in range(len(emb)):
                idx.search(emb[i:i + 1], 100)
            ms = (time.perf_counter() - t) / len(emb) * 1e3
            docs, scores = idx.search(emb, 101)
            run = run_from_results(q.ids, s.main.index.doc_ids.take(docs), scores, drop_self=True)
            nd = evaluate(run, q.qrels, parse_metrics(["nDCG@10"]))["nDCG@10"]
            rows.append({"dataset": name, "dtype": dtype, "bytes": idx.nbytes, "ms_per_query": ms, "nDCG@10": nd})
            print(rows[-1], flush=True)
    (OUT / "hybrid_dense_storage.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows},
                                                              indent=1))


if __name__ == "__main__":
    main()
