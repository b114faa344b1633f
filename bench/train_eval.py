"""nDCG@10 of sparse encoders on BEIR test splits, with their sparsity: the training table.

For each model (bundled name or a folder from `lsr train`) and each dataset:
build an exact lsr index (cached under bench/out/train_eval/), evaluate the
test split, and record mean non-zeros per document and per query.
Writes bench/out/train_eval.json (merged with earlier runs of other models),
with per-query nDCG@10, and compares every model with the first one named:
mean difference, queries won / lost, and a paired randomisation test
(two-sided, 10,000 sign flips of the per-query differences).

    python bench/train_eval.py splade-tiny runs/nfcorpus-ensemble/model
    python bench/train_eval.py bm25 echo-smollm2 runs/echo/model --max-length 64 --datasets nfcorpus

"bm25" is the lexical reference (bm25s, as the BM25 teacher), not a model.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--datasets", nargs="+", default=["nfcorpus", "scifact"])
    ap.add_argument("--out", type=Path, default=OUT / "train_eval.json")
    ap.add_argument("--max-length", type=int, default=256, help="tokens per text (the echo decoder: per copy)")
    args = ap.parse_args()
    os.environ.setdefault("IR_DATASETS_HOME", str(HERE.parent / ".cache" / "ir_datasets"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lsr.data import load_dataset
    from lsr.eval import evaluate_index
    from lsr.retrieval import Searcher, build_index

    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for model in args.models:
        key = model if not Path(model).exists() else str(Path(model).resolve())
        if args.max_length != 256 and model != "bm25":
            key += f" @{args.max_length}"
        tag = hashlib.sha1(key.encode()).hexdigest()[:8]
        for name in args.datasets:
            index_dir = OUT / "train_eval" / f"{name}-{tag}"
            t = time.time()
            if model == "bm25":  # the lexical reference row: bm25s over the whole corpus
                row = bm25_row(name)
                row["seconds"] = round(time.time() - t, 1)
                results.setdefault(key, {})[name] = row
                print(model, name, {k: v for k, v in row.items() if not k.startswith("per_query")}, flush=True)
                continue
            if not (index_dir / "manifest.json").exists():
                build_index(f"beir/{name}", model, index_dir, index_type="exact", overwrite=True, progress=False,
                            max_length=args.max_length)
            s = Searcher(index_dir)
            ds = load_dataset(f"beir/{name}/test")
            scores, per_query = evaluate_index(s, ds, ["nDCG@10", "R@100"], progress=False, per_query=True)
            queries = s.encode_queries([q.text for q in ds.queries()])
            row = {"nDCG@10": scores["nDCG@10"], "R@100": scores["R@100"],
                   "doc_nnz": s.index.n_postings / len(s.index), "query_nnz": queries.nnz / len(queries),
                   "date": time.strftime("%Y-%m-%d"), "seconds": round(time.time() - t, 1),
                   "per_query_nDCG@10": per_query["nDCG@10"]}
            results.setdefault(key, {})[name] = row
            print(model, name, {k: v for k, v in row.items() if not k.startswith("per_query")}, flush=True)
    keys = [(m if not Path(m).exists() else str(Path(m).resolve()))
            + (f" @{args.max_length}" if args.max_length != 256 and m != "bm25" else "") for m in args.models]
    for key in keys[1:]:
        for name in args.datasets:
            c = paired(results[keys[0]][name]["per_query_nDCG@10"], results[key][name]["per_query_nDCG@10"])
            results[key][name][f"vs {args.models[0]}"] = c
            print(f"{key} vs {args.models[0]} on {name}: {c}")
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


def bm25_row(name: str) -> dict:
    """BM25 (bm25s, k1 0.9, b 0.4, English stop words and stemmer: the training teacher) on beir/NAME/test."""
    import numpy as np

    from lsr.data import load_dataset
    from lsr.eval import evaluate, parse_metrics, run_from_results
    from lsr.training.teachers import BM25Teacher
    ds = load_dataset(f"beir/{name}/test")
    docs = list(ds.docs())
    ids = np.array([d.doc_id for d in docs], dtype=object)
    bm25 = BM25Teacher(list(ids), [d.full_text for d in docs])
    qrels = ds.qrels()
    queries = [q for q in ds.queries() if q.query_id in qrels]
    tokens = bm25._bm25s.tokenize([q.text for q in queries], stopwords="en", stemmer=bm25.stemmer,
                                  return_ids=False, show_progress=False)
    top_ids, top_scores = [], []
    for tok in tokens:
        sc = bm25.model.get_scores(tok) if tok else np.zeros(len(ids))
        order = np.argsort(-sc, kind="stable")[:101]
        top_ids.append(ids[order])
        top_scores.append(sc[order])
    run = run_from_results([q.query_id for q in queries], np.array(top_ids), np.array(top_scores), drop_self=True)
    scores, per_query = evaluate(run, qrels, parse_metrics(["nDCG@10", "R@100"]), per_query=True)
    return {"nDCG@10": scores["nDCG@10"], "R@100": scores["R@100"], "date": time.strftime("%Y-%m-%d"),
            "per_query_nDCG@10": per_query["nDCG@10"]}


def paired(base: dict, other: dict, samples: int = 10_000, seed: int = 0) -> dict:
    """Paired comparison of per-query values: mean difference, wins/losses, randomisation p-value."""
    import numpy as np
    qs = sorted(base)
    d = np.array([other.get(q, 0.0) - base[q] for q in qs])
    rng = np.random.default_rng(seed)
    flips = rng.choice([-1.0, 1.0], size=(samples, len(d)))
    p = float(((np.abs((flips * d).mean(1)) >= abs(d.mean()) - 1e-12).sum() + 1) / (samples + 1))
    return {"delta": float(d.mean()), "wins": int((d > 0).sum()), "losses": int((d < 0).sum()),
            "queries": len(d), "p": round(p, 4)}


if __name__ == "__main__":
    main()
