"""Every encoder family through the CLI on a BEIR test split: the issue-5 table.

For each model: `lsr index DATASET --model M --index-type exact`, then a
seismic index from the vectors that index keeps (`lsr index EXACT/vectors
--index-type seismic`, no second encoding), then `lsr eval` on both. Records
nDCG@10 / R@100 (exact and seismic), mean non-zeros per document and per
query, and the indexing (encoding) time. Indexes are cached under
bench/out/family/ (delete a folder to redo it); results merge into
bench/out/encoder_family.json and are also written as a CSV.

    python bench/encoder_family.py splade-tiny qbin_dmlm qmlp_dmlm prosper-splade-tiny
    python bench/encoder_family.py echo-smollm2 runs/echo/model --max-length 64
    python bench/encoder_family.py models/qidf_dmlm          # from `lsr compose qidf_dmlm ...`
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
LSR = [sys.executable, "-m", "lsr"]


def run(args: list[str]) -> str:
    res = subprocess.run(LSR + args, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"lsr {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return res.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--dataset", default="scifact", help="BEIR name: beir/NAME is indexed, beir/NAME/test evaluated")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--out", type=Path, default=OUT / "encoder_family.json")
    args = ap.parse_args()
    os.environ.setdefault("IR_DATASETS_HOME", str(HERE.parent / ".cache" / "ir_datasets"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lsr.data import load_dataset
    from lsr.index import load_index
    from lsr.retrieval import Searcher

    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    queries = [q.text for q in load_dataset(f"beir/{args.dataset}/test").queries()]
    for model in args.models:
        key = (str(Path(model).resolve()) if Path(model).exists() else model) + f" @{args.max_length}"
        folder = OUT / "family" / f"{args.dataset}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
        exact, seismic = folder / "exact", folder / "seismic"
        t = time.time()
        if not (exact / "manifest.json").exists():
            run(["index", f"beir/{args.dataset}", "--model", model, "-o", str(exact), "--index-type", "exact",
                 "--max-length", str(args.max_length), "--overwrite", "-q"])
        index_s = time.time() - t
        if not (seismic / "manifest.json").exists():
            run(["index", str(exact / "vectors"), "-o", str(seismic), "--index-type", "seismic", "--overwrite", "-q"])
        row = {"model": model, "max_length": args.max_length, "dataset": f"beir/{args.dataset}/test",
               "date": time.strftime("%Y-%m-%d")}
        if index_s > 1:
            row["index_s"] = round(index_s, 1)
        elif key in results.get(args.dataset, {}):
            row["index_s"] = results[args.dataset][key].get("index_s")
        for kind, d in (("exact", exact), ("seismic", seismic)):
            scores = json.loads(run(["eval", str(d), f"beir/{args.dataset}/test", "--json", "-q"]))
            row[f"{kind} nDCG@10"], row[f"{kind} R@100"] = scores["nDCG@10"], scores["R@100"]
        index = load_index(exact)
        q = Searcher(exact).encode_queries(queries)
        row["doc_nnz"] = round(index.n_postings / len(index), 1)
        row["query_nnz"] = round(q.nnz / len(q), 1)
        row["vocab"] = index.vocab.size
        results.setdefault(args.dataset, {})[key] = row
        print(json.dumps(row), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    rows = [r for ds in results.values() for r in ds.values()]
    cols = ["dataset", "model", "max_length", "exact nDCG@10", "seismic nDCG@10", "exact R@100", "seismic R@100",
            "doc_nnz", "query_nnz", "vocab", "index_s", "date"]
    with open(args.out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
