"""What a living index costs on scifact (issue acceptance): an add against a full build, 10 unmerged
segments against one, and the merge between them.

    python bench/living_cost.py [--repeats 5] [--queries 300]   # writes bench/out/living_cost.json

Encoding is excluded everywhere: every vector comes from a `lsr encode`d folder of beir/scifact with
splade-tiny (--vectors). Builds index a slice of it (a folder of its rows, as `lsr encode` writes them);
the IndexWriter, which encodes what it adds, gets the precomputed rows instead (its encode_sparse is
replaced by a lookup), so what is timed is the real commit minus the model. Sparse index only: no dense
or BM25 list is built or added (their cost is that of encoding and an exact build of the new rows).

* add: for exact and for seismic, a full build of the 5,183 documents (median of --repeats) against
  adding the last 1% (52) to an index of the other 99%, both with IndexWriter(...) as `lsr add` runs it.
  ``add_s``: the index already segmented (a steady-state add); ``first_add_s``: the index's first write,
  which also turns its folder into a segmented index (hard links, fsync, an atomic swap). Bar: add_s /
  full build <= 0.05.
* segments: the collection as 10 segments (a build of the first 10%, then 9 commits of 10% each,
  merge=False), then merged into one (merge time: median of --repeats, each on a copy). Single-query
  latency (one thread, query vectors encoded once, untimed: ``index.search_numbers(row, 10, threads=1)``,
  one warm-up pass) and recall@10 against an exact index of the same documents, before and after the
  merge. For ``auto`` (the default: every segment exact at this size) and for forced ``seismic`` with
  exact_below=0 (otherwise segments under 1,000 documents, here all ten, would be exact).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"


def write_slice(src: Path, folder: Path, ids, vectors, docs) -> Path:
    """A vectors folder of these rows, as `lsr encode` writes it, and its corpus (for the doc store)."""
    from lsr.sparse.parquet import write_vectors
    folder.mkdir(parents=True)
    corpus = folder.parent / f"{folder.name}.jsonl"
    with open(corpus, "w") as f:
        for d in docs:
            f.write(json.dumps({"_id": d.doc_id, "title": d.title, "text": d.text, "metadata": d.metadata}) + "\n")
    write_vectors(folder / "shard-00000.parquet", ids, vectors)
    settings = json.loads((src / "encode.json").read_text())
    settings.update(dataset=str(corpus), docs=len(ids), complete=True)
    (folder / "encode.json").write_text(json.dumps(settings))
    return folder


@contextmanager
def precomputed(docs, vectors):
    """The writer's encoder replaced by a lookup of ``docs``' precomputed rows (by text, as it is called)."""
    from lsr.retrieval import writer
    row = {d.full_text: i for i, d in enumerate(docs)}
    real = writer.encode_sparse
    writer.encode_sparse = lambda models, texts, *rest: vectors[np.array([row[t] for t in texts], dtype=np.int64)]
    try:
        yield
    finally:
        writer.encode_sparse = real


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def add_cost(work, kind, whole, ninety_nine, added, added_vectors, repeats) -> dict:
    from lsr import IndexWriter
    from lsr.retrieval import build_index
    full = [timed(lambda: build_index(str(whole), "splade-tiny", fresh(work / "full"), index_type=kind,
                                      progress=False)) for _ in range(repeats)]
    base = fresh(work / f"base-{kind}")
    build_index(str(ninety_nine), "splade-tiny", base, index_type=kind, progress=False)

    def add(upgraded: bool) -> float:
        copy = fresh(work / "copy")
        shutil.copytree(base, copy)
        if upgraded:
            with IndexWriter(copy):  # the first write's upgrade (opening a writer does it), untimed
                pass

        def run():
            with IndexWriter(copy) as w:  # as `lsr add` runs it (merge policy on: nothing to merge here)
                w.add(added)
        with precomputed(added, added_vectors):
            return timed(run)
    steady = [add(True) for _ in range(repeats)]
    first = [add(False) for _ in range(repeats)]
    out = {"full_build_s": statistics.median(full), "add_s": statistics.median(steady),
           "first_add_s": statistics.median(first)}
    out["runs_s"] = {"full_build": full, "add": steady, "first_add": first}
    out["ratio"] = out["add_s"] / out["full_build_s"]
    out["first_add_ratio"] = out["first_add_s"] / out["full_build_s"]
    out["meets_5pct"] = out["ratio"] <= 0.05
    return out


def measure(index, qrows, truth, repeats) -> dict:
    """Single-query latency (ms, one thread) and recall@10 against ``truth`` (each query's exact top 10)."""
    for q in qrows:  # warm-up: page cache, numba dispatch
        index.search_numbers(q, 10, threads=1)
    times, found = [], []
    for _ in range(repeats):
        for q in qrows:
            t = time.perf_counter()
            d, _ = index.search_numbers(q, 10, threads=1)
            times.append(time.perf_counter() - t)
            found.append(d[0])
    ids = [set(index.doc_ids.take(d[d >= 0]).tolist()) for d in found[:len(qrows)]]
    recall = np.mean([len(a & t) / len(t) for a, t in zip(ids, truth)])
    return {"p50_ms": 1000 * float(np.median(times)), "mean_ms": 1000 * float(np.mean(times)), "recall@10": float(recall)}


def segments_cost(work, kind, src, ids, vectors, docs, n_segments, qrows, truth, repeats) -> dict:
    from lsr import IndexWriter, Retriever
    from lsr.index.info import index_info
    from lsr.retrieval import build_index
    bounds = np.linspace(0, len(ids), n_segments + 1).astype(int)
    path = fresh(work / f"segments-{kind}")
    first = write_slice(src, fresh(work / f"first-{kind}"), ids[:bounds[1]], vectors[:bounds[1]], docs[:bounds[1]])
    build_index(str(first), "splade-tiny", path, index_type=kind, progress=False)
    forced = {"index_type": "seismic", "exact_below": 0} if kind == "seismic" else {}
    with precomputed(docs, vectors), IndexWriter(path, merge=False, **forced) as w:
        for a, b in zip(bounds[1:-1], bounds[2:]):
            w.add(docs[a:b])
            w.commit()
    info = index_info(path)
    assert len(info["segments"]) == n_segments, info["segments"]
    out = {"segments": {"count": len(info["segments"]), "types": sorted({s["index_type"] for s in info["segments"]}),
                        **measure(Retriever(path).index, qrows, truth, repeats)}}
    merge_s = []
    for _ in range(repeats):
        copy = fresh(work / "merged")
        shutil.copytree(path, copy)
        with IndexWriter(copy, merge=False) as w:
            merge_s.append(timed(lambda: w.merge(max_segments=1)))
    info = index_info(copy)
    out["merged"] = {"count": len(info["segments"]), "types": [s["index_type"] for s in info["segments"]],
                     **measure(Retriever(copy).index, qrows, truth, repeats)}
    out["merge_s"], out["merge_runs_s"] = statistics.median(merge_s), merge_s
    out["latency_ratio_mean"] = out["segments"]["mean_ms"] / out["merged"]["mean_ms"]
    out["latency_ratio_p50"] = out["segments"]["p50_ms"] / out["merged"]["p50_ms"]
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=Path, default=ROOT / "indexes" / "scifact-splade-tiny" / "vectors",
                    help="beir/scifact encoded by `lsr encode` with splade-tiny")
    ap.add_argument("--work", type=Path, default=OUT / "living_cost")
    ap.add_argument("--out", type=Path, default=OUT / "living_cost.json")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--queries", type=int, default=300, help="scifact test queries (300 in all)")
    ap.add_argument("--add-pct", type=float, default=1.0)
    ap.add_argument("--segments", type=int, default=10)
    args = ap.parse_args(argv)

    from lsr.data import load_dataset
    from lsr.encoders import load_query_encoder
    from lsr.encoders.shards import shard_paths
    from lsr.index.exact import ExactIndex
    from lsr.sparse import read_vectors

    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ids, vectors = read_vectors(shard_paths(args.vectors))
    settings = json.loads((args.vectors / "encode.json").read_text())
    docs = list(load_dataset(settings["dataset"]).docs())
    assert [d.doc_id for d in docs] == ids, "the vectors are not the corpus's documents in its order"
    n_add = max(1, round(len(ids) * args.add_pct / 100))
    keep = len(ids) - n_add
    ninety_nine = write_slice(args.vectors, work / "vectors-kept", ids[:keep], vectors[:keep], docs[:keep])

    test = load_dataset("beir/scifact/test")
    texts = [q.text for q in test.queries()][:args.queries]
    exact = ExactIndex.build(vectors, ids)
    qv = load_query_encoder(settings["model"], max_length=settings["max_length"]).encode_queries(texts)
    qrows = [qv[i:i + 1] for i in range(len(texts))]
    truth = [set(exact.doc_ids.take(d[d >= 0]).tolist()) for d in exact.search_numbers(qv, 10)[0]]

    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join([sys.executable, *sys.argv]),
              "vectors": str(args.vectors), "docs": len(ids), "added": n_add, "repeats": args.repeats,
              "queries": len(texts), "encoding": "excluded (precomputed splade-tiny vectors)",
              "lists": "sparse only (no dense or BM25 list)", "add": {}, "segments": {}}
    for kind in ("exact", "seismic"):
        report["add"][kind] = add_cost(work, kind, args.vectors, ninety_nine, docs[keep:],
                                       vectors[keep:], args.repeats)
        print("add", kind, report["add"][kind], flush=True)
    for kind in ("auto", "seismic"):
        report["segments"][kind] = segments_cost(work, kind, args.vectors, ids, vectors, docs, args.segments,
                                                 qrows, truth, args.repeats)
        print("segments", kind, report["segments"][kind], flush=True)
    report["segments"]["seismic"]["note"] = "index_type=seismic, exact_below=0: every segment seismic"

    print(f"\n{'add ' + str(n_add) + ' docs':<16}{'full build s':>13}{'add s':>8}{'ratio':>7}{'first add s':>12}"
          f"{'ratio':>7}")
    for kind, r in report["add"].items():
        print(f"{kind:<16}{r['full_build_s']:>13.2f}{r['add_s']:>8.3f}{r['ratio']:>7.3f}{r['first_add_s']:>12.3f}"
              f"{r['first_add_ratio']:>7.3f}")
    print(f"\n{'segments':<10}{'state':<10}{'p50 ms':>8}{'mean ms':>9}{'R@10':>7}{'merge s':>9}{'ratio mean':>11}")
    for kind, r in report["segments"].items():
        for state in ("segments", "merged"):
            s = r[state]
            tail = f"{r['merge_s']:>9.2f}{r['latency_ratio_mean']:>11.2f}" if state == "merged" else ""
            print(f"{kind:<10}{str(s['count']) + ' seg':<10}{s['p50_ms']:>8.2f}{s['mean_ms']:>9.2f}"
                  f"{s['recall@10']:>7.3f}{tail}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return report


if __name__ == "__main__":
    main()
