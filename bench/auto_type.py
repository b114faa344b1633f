"""The default index type follows size: what exact vs seismic cost on small collections (issue 21, item 5).

    python bench/auto_type.py          # writes bench/out/auto_type.json

For cranfield (1,400 docs, splade-tiny) and scifact (5,183 docs, splade-tiny
and BM25): bytes on disk, single-query latency (one thread, median of 3
passes over the test queries, queries encoded once) and nDCG@10 of an exact
and a seismic index over the same vectors, and which type `--index-type
auto` (the default) picks. Encoded vectors are kept under bench/out/auto/.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
CASES = [("cranfield", "splade-tiny", "cranfield", "cranfield"),
         ("scifact", "splade-tiny", "beir/scifact", "beir/scifact/test"),
         ("scifact", "bm25", "beir/scifact", "beir/scifact/test")]


def folder_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def latency_ms(searcher, qvecs, passes: int = 3) -> float:
    index = searcher.index
    index.search_numbers(qvecs[0], 10, threads=1)  # compile / warm
    times = []
    for _ in range(passes):
        t = time.perf_counter()
        for i in range(len(qvecs)):
            index.search_numbers(qvecs[i], 10, threads=1)
        times.append((time.perf_counter() - t) / len(qvecs) * 1000)
    return round(float(np.median(times)), 3)


def main() -> dict:
    from lsr.data import load_dataset
    from lsr.eval.run import evaluate_index
    from lsr.retrieval import Searcher, build_index
    work = OUT / "auto"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, model, corpus, judged in CASES:
        test = load_dataset(judged)
        qrels = test.qrels()
        texts = [q.text for q in test.queries() if q.query_id in qrels]
        row = {"collection": name, "model": model, "docs": None}
        auto = work / f"{name}-{model}-auto"
        shutil.rmtree(auto, ignore_errors=True)
        encoded = OUT / "living" / "vectors-whole"  # scifact encoded by bench/living.py: no second encoding
        source = str(encoded) if name == "scifact" and model != "bm25" and encoded.is_dir() else corpus
        idx = build_index(source, model, auto, progress=False)  # the default: auto
        row["auto_picks"], row["docs"] = idx.index_type, len(idx)
        for kind in ("exact", "seismic"):
            out = work / f"{name}-{model}-{kind}"
            shutil.rmtree(out, ignore_errors=True)
            kept = auto / "vectors"  # the auto build's encoding, when it encoded (not for BM25)
            build_index(str(kept) if model != "bm25" and kept.is_dir() else source, model, out, index_type=kind,
                        progress=False)
            s = Searcher(out)
            qvecs = s.encode_queries(texts)
            ndcg = evaluate_index(s, test, ["nDCG@10"], progress=False)["nDCG@10"]
            row[kind] = {"bytes": folder_bytes(out), "latency_ms": latency_ms(s, qvecs),
                         "ndcg@10": round(float(ndcg), 4)}
        row["seismic_over_exact_bytes"] = round(row["seismic"]["bytes"] / row["exact"]["bytes"], 2)
        row["seismic_over_exact_latency"] = round(row["seismic"]["latency_ms"] / row["exact"]["latency_ms"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {"date": time.strftime("%Y-%m-%d"), "command": "python bench/auto_type.py", "rows": rows}
    (OUT / "auto_type.json").write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
