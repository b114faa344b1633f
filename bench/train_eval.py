"""nDCG@10 of sparse encoders on BEIR test splits, with their sparsity: the training table.

For each model (bundled name or a folder from `lsr train`) and each dataset:
build an exact lsr index (cached under bench/out/train_eval/), evaluate the
test split, and record mean non-zeros per document and per query.
Writes bench/out/train_eval.json (merged with earlier runs of other models).

    python bench/train_eval.py splade-tiny runs/nfcorpus-ensemble/model
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
    args = ap.parse_args()
    os.environ.setdefault("IR_DATASETS_HOME", str(HERE.parent / ".cache" / "ir_datasets"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lsr.data import load_dataset
    from lsr.pipeline import Searcher, build_index, evaluate_index

    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for model in args.models:
        key = model if not Path(model).exists() else str(Path(model).resolve())
        tag = hashlib.sha1(key.encode()).hexdigest()[:8]
        for name in args.datasets:
            index_dir = OUT / "train_eval" / f"{name}-{tag}"
            t = time.time()
            if not (index_dir / "manifest.json").exists():
                build_index(f"beir/{name}", model, index_dir, index_type="exact", overwrite=True, progress=False)
            s = Searcher(index_dir)
            ds = load_dataset(f"beir/{name}/test")
            scores = evaluate_index(s, ds, ["nDCG@10", "R@100"], progress=False)
            queries = s.encode_queries([q.text for q in ds.queries()])
            row = {"nDCG@10": scores["nDCG@10"], "R@100": scores["R@100"],
                   "doc_nnz": s.index.n_postings / len(s.index), "query_nnz": queries.nnz / len(queries),
                   "date": time.strftime("%Y-%m-%d"), "seconds": round(time.time() - t, 1)}
            results.setdefault(key, {})[name] = row
            print(model, name, row, flush=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
