"""How good are the distillation teachers? Each one reranks a first-stage list.

A student distilled from a teacher can at best learn the teacher's ordering
of its candidate lists, so the teacher's nDCG@10 as a reranker of the same
kind of list (the starting model's top ``depth``) bounds what distillation
can give. For each query of a split: take the top ``depth`` of an lsr index,
score the list with each teacher, and report nDCG@10 of the first-stage
order, of each teacher's order and of the per-query normalised ensembles.
Writes bench/out/teacher_rerank_<split>.json.

    python bench/teacher_rerank.py beir/nfcorpus/dev runs/nfcorpus-ensemble/mining-index
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("index", type=Path, help="an lsr index of the dataset's corpus (the first stage)")
    ap.add_argument("--depth", type=int, default=30)
    ap.add_argument("--teachers", nargs="+", default=["dense:minilm", "sparse:splade-tiny", "bm25"])
    args = ap.parse_args()
    os.environ.setdefault("IR_DATASETS_HOME", str(HERE.parent / ".cache" / "ir_datasets"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lsr.data import load_dataset
    from lsr.eval.metrics import evaluate, parse_metrics
    from lsr.retrieval import Searcher
    from lsr.training.teachers import ensemble
    from lsr.training.trainer import _teacher

    ds = load_dataset(args.dataset)
    qrels = ds.qrels()
    queries = [q for q in ds.queries() if q.query_id in qrels]
    docs = list(ds.docs())
    text_of = {d.doc_id: d.full_text for d in docs}
    ids, first = Searcher(args.index).batch_search_ids([q.text for q in queries], args.depth)
    cands = [[d for d in row if d] for row in ids]
    metrics = parse_metrics(["nDCG@10"])

    def ndcg(scores) -> float:
        run = {q.query_id: {d: float(s) for d, s in zip(c, row) if np.isfinite(s)}
               for q, c, row in zip(queries, cands, scores)}
        return float(evaluate(run, qrels, metrics)["nDCG@10"])

    per, seconds = {}, {}
    for name in args.teachers:
        t = time.time()
        teacher = _teacher(name, [d.doc_id for d in docs], [d.full_text for d in docs], 256)
        per[name] = teacher.score([q.text for q in queries], cands, text_of.__getitem__)
        seconds[name] = round(time.time() - t, 1)
    rows = {"first stage": ndcg(first[:, :max(map(len, cands))])}
    rows.update({name: ndcg(s) for name, s in per.items()})
    for method in ("minmax", "zscore"):
        for r in range(2, len(per) + 1):
            for combo in itertools.combinations(per, r):
                rows[f"{method} mean of {' + '.join(combo)}"] = ndcg(ensemble({n: per[n] for n in combo},
                                                                              method=method))
    for name, value in rows.items():
        print(f"{value:.4f}  {name}")
    out = OUT / f"teacher_rerank_{args.dataset.replace('/', '_')}.json"
    out.write_text(json.dumps({"dataset": args.dataset, "index": str(args.index), "depth": args.depth,
                               "queries": len(queries), "nDCG@10": rows, "teacher_seconds": seconds,
                               "date": time.strftime("%Y-%m-%d")}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
