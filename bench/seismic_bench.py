"""Approximate search side by side: lsr-seismic, pyseismic-lsr, lsr-exact, scipy brute force.

Same document vectors, same queries, one run. For every system and every
(query_cut, heap_factor) setting: recall@10 against exact search, mean / p50
/ p99 single-thread latency, 2-thread batch throughput; per system: build
time, index bytes on disk and peak RSS of the build (each build runs in its
own child process so its memory is measured alone).

Data: `--real NAME` reads the splade-tiny document vectors kept in
bench/out/indexes/NAME-splade-tiny (made by bench/reference_check.py) and
encodes the test queries of beir/NAME; `--synthetic N` generates N seeded
SPLADE-like documents and 500 queries (bench/synthetic.py).

    python bench/seismic_bench.py --real scifact
    python bench/seismic_bench.py --synthetic 1000000
Writes bench/out/seismic_<data>.json and a recall-vs-latency PNG.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
# Both systems get the same grid; a fine heap_factor step lets each reach its
# own best operating points (the acceptance compares the two frontiers).
GRID = [(qc, hf) for qc in (3, 5, 8, 10, 12, 15) for hf in (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)]
REPS = 4  # timed passes over the queries per setting and system


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() \
        else sum(p.stat().st_size for p in Path(path).parent.glob(Path(path).name + "*"))


# ------------------------------------------------------------------ data
def real_data(name: str):
    from lsr.sparse import SparseVectors, read_vectors
    root = OUT / "indexes" / f"{name}-splade-tiny"
    ids, docs = read_vectors(sorted((root / "vectors").glob("*.parquet")))
    cache = OUT / f"queries_{name}.npz"
    if not cache.exists():
        # Encode in a spawned process: torch's thread pools in this one would
        # deadlock the forked build children below.
        p = mp.get_context("spawn").Process(target=encode_queries, args=(name, root, cache))
        p.start()
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"encoding the {name} queries failed (exit code {p.exitcode})")
    z = np.load(cache)
    queries = SparseVectors(z["indptr"], z["indices"], z["values"], docs.vocab)
    return ids, docs, queries


def encode_queries(name, root, cache):
    from lsr.data import load_dataset
    from lsr.retrieval import Searcher
    ds = load_dataset(f"beir/{name}/test")
    qrels = ds.qrels()
    queries = Searcher(root).encode_queries([q.text for q in ds.queries() if q.query_id in qrels])
    np.savez(cache, indptr=queries.indptr, indices=queries.indices, values=queries.values)


# --------------------------------------------------------------- systems
def _child(fn, args, queue):
    t = time.perf_counter()
    extra = fn(*args)  # may report its own build_s (after a warm-up), which then wins
    queue.put({"build_s": time.perf_counter() - t,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **(extra or {})})


def in_child(fn, *args) -> dict:
    """Run a build in a forked process: its own peak RSS, and crashes stay contained."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn, args, q))
    p.start()
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"build {fn.__name__} failed with exit code {p.exitcode}")
    return q.get()


def build_exact(docs, ids, path):
    from lsr.index import ExactIndex
    ExactIndex.build(docs, ids).save(path, overwrite=True)


def build_lsr(docs, ids, path, params):
    from lsr.index import SeismicIndex
    # Compile (or load from numba's cache) every build kernel on a tiny
    # slice first, so the timed build measures building, not compiling.
    SeismicIndex.build(docs[:min(len(docs), 500)], **{**params, "n_postings": 50})
    t = time.perf_counter()
    idx = SeismicIndex.build(docs, ids, **params)
    idx.save(path, overwrite=True)
    return {"build_s": time.perf_counter() - t, "blocks": idx.n_blocks, "postings": idx.n_postings,
            "timings": idx.build_timings}


def build_pyseismic(docs, ids, path, params, knn=0):
    import seismic
    ds = seismic.SeismicDataset()
    st = seismic.get_seismic_string()
    tokens = np.array([str(i) for i in range(docs.vocab.size)], dtype=st)
    for i in range(len(docs)):
        ix, vals = docs.row(i)
        ds.add_document(ids[i], tokens[ix], vals.astype(np.float32))
    t = time.perf_counter()
    index = seismic.SeismicIndex.build_from_dataset(
        ds, n_postings=params["n_postings"], centroid_fraction=params["centroid_fraction"],
        min_cluster_size=params["min_cluster_size"], summary_energy=params["summary_energy"],
        max_fraction=params["max_fraction"], doc_cut=params["doc_cut"], num_threads=2)
    built = time.perf_counter() - t
    out = {"index_only_build_s": built}
    if knn:  # its own k-NN graph, found by searching the index with every document
        t = time.perf_counter()
        index.build_knn(knn)
        out["knn_build_s"] = time.perf_counter() - t
    index.save(str(path))
    return out


class PySeismicSearcher:
    def __init__(self, path, vocab_size):
        import seismic
        self.index = seismic.SeismicIndex.load(str(path) + ".index.seismic")
        self.tokens = np.array([str(i) for i in range(vocab_size)], dtype=seismic.get_seismic_string())

    def one(self, ix, vals, k, qc, hf, knn=0):
        return self.index.search("q", self.tokens[ix], vals, k, query_cut=qc, heap_factor=hf, n_knn=knn)

    def batch(self, queries, k, qc, hf, threads=2, knn=0):
        comps = [self.tokens[queries.row(i)[0]] for i in range(len(queries))]
        vals = [queries.row(i)[1].astype(np.float32) for i in range(len(queries))]
        qids = np.array([str(i) for i in range(len(queries))], dtype=self.tokens.dtype)
        return self.index.batch_search(qids, comps, vals, k,
                                       query_cut=qc, heap_factor=hf, n_knn=knn, num_threads=threads)


# --------------------------------------------------------------- measuring
def recall_at_k(result_ids, truth_numbers, position: dict) -> float:
    """recall@k of either system's string ids against exact search's doc numbers (lsr's own helper)."""
    from lsr.index.tune import recall_at_k as by_number
    got = np.full((len(truth_numbers), truth_numbers.shape[1]), -1, dtype=np.int64)
    for i, ids in enumerate(result_ids):
        nums = [position[d] for d in ids if d != ""][: got.shape[1]]
        got[i, : len(nums)] = nums
    return by_number(got, truth_numbers)


def interleaved_timings(calls: dict, n: int, reps: int = REPS) -> dict:
    """Per system, every single-query time in ms: ``reps`` passes over the queries, the systems
    taking turns pass by pass (A B B A ...), so drift in machine speed hits both alike while
    each pass runs with its own index warm in cache (alternating query by query would make
    each system evict the other's data)."""
    ms = {name: np.empty(n * reps) for name in calls}
    names = list(calls)
    for r in range(reps):
        for name in (names if r % 2 == 0 else names[::-1]):
            fn, out = calls[name], ms[name]
            for i in range(n):
                t = time.perf_counter()
                fn(i)
                out[r * n + i] = (time.perf_counter() - t) * 1000
    return ms


def timed_queries(fn, n) -> np.ndarray:
    """One system alone: each single-query time in ms, one pass."""
    return interleaved_timings({"one": fn}, n, reps=1)["one"]


def summarise(ms, recall, batch_s, n) -> dict:
    return {"recall@10": recall, "mean_ms": float(ms.mean()), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "batch_2t_qps": n / batch_s}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", default="scifact")
    ap.add_argument("--synthetic", type=int, default=None, metavar="N_DOCS",
                    help="use N_DOCS seeded synthetic SPLADE-like documents (bench/synthetic.py) instead")
    ap.add_argument("--queries", type=int, default=500, help="synthetic queries")
    ap.add_argument("--generator", default="v2", choices=("v1", "v2"),
                    help="synthetic profile (bench/synthetic.py); v1 reproduces the figures dated before 2026-11-25")
    ap.add_argument("--n-postings", type=int, default=None)
    ap.add_argument("--centroid-fraction", type=float, default=None)
    ap.add_argument("--summary-energy", type=float, default=None)
    ap.add_argument("--knn", type=int, default=0, metavar="K",
                    help="both systems also build a K-neighbour k-NN graph; every setting is run with and "
                         "without refinement")
    ap.add_argument("--pyseismic-knn", type=int, default=None, metavar="K",
                    help="pyseismic's graph size (default: --knn); 0 builds none, so only lsr refines "
                         "(its graph search costs ~1M index searches on the 1M set)")
    ap.add_argument("--skip-pyseismic", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("IR_DATASETS_HOME", str(ROOT / ".cache" / "ir_datasets"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from lsr.index import SeismicIndex, load_index
    from lsr.index.seismic import BUILD_DEFAULTS, default_build_params
    if args.synthetic:
        from synthetic import generate
        docs, queries = generate(args.synthetic, args.queries, seed=0, profile=args.generator)
        ids = [str(i) for i in range(len(docs))]
        # v1 keeps its old file names (seismic_synthetic1000000_....json)
        label = f"synthetic{args.synthetic}" if args.generator == "v1" else f"synthetic-v2-{args.synthetic}"
    else:
        ids, docs, queries = real_data(args.real)
        label = args.real
    params = {k: v for k, v in BUILD_DEFAULTS.items() if k not in ("forward_dtype", "seed")}
    params.update(default_build_params(len(docs)))
    if args.n_postings:
        params["n_postings"] = args.n_postings
        label += f"_np{args.n_postings}"
    if args.centroid_fraction:
        params["centroid_fraction"] = args.centroid_fraction
        label += f"_cf{args.centroid_fraction:g}"
    if args.summary_energy:
        params["summary_energy"] = args.summary_energy
        label += f"_se{args.summary_energy:g}"
    if args.knn:
        params["knn"] = args.knn
        label += f"_knn{args.knn}"
    else:
        params.pop("knn", None)
    params.pop("knn_blocks", None)
    work = OUT / f"seismic_{label}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    k = 10
    nq = len(queries)
    result = {"date": time.strftime("%Y-%m-%d"), "data": label, "docs": len(docs), "queries": nq,
              "mean_doc_nnz": docs.nnz / len(docs), "mean_query_nnz": queries.nnz / nq, "params": params,
              "generator": args.generator if args.synthetic else None,
              "systems": {}}

    # All builds first, each in a forked child: numba's GNU OpenMP threading
    # layer is not fork-safe once the parent has run a parallel region.
    builds = {"lsr-exact": in_child(build_exact, docs, ids, work / "exact"),
              "lsr-seismic": in_child(build_lsr, docs, ids, work / "lsr", params)}
    ps_knn = args.knn if args.pyseismic_knn is None else args.pyseismic_knn
    if not args.skip_pyseismic:
        builds["pyseismic-lsr"] = in_child(build_pyseismic, docs, ids, work / "pyseismic", params, ps_knn)
    for name, info in builds.items():
        print("built", name, info, flush=True)

    # exact reference (and its own timings)
    info = builds["lsr-exact"]
    exact = load_index(work / "exact")
    truth, _ = exact.search_numbers(queries, k)  # doc numbers = positions in `ids`
    position = {d: i for i, d in enumerate(ids)}
    lsr_rows = [queries[i:i + 1] for i in range(nq)]  # prepared one-query inputs, outside the timings
    exact.search_numbers(queries[:1], k)
    exact.search_numbers(queries[:4], k, threads=2)
    ms = timed_queries(lambda i: exact.search(lsr_rows[i], k), nq)
    t = time.perf_counter()
    exact.search_numbers(queries, k, threads=2)
    result["systems"]["lsr-exact"] = {**info, "index_bytes": dir_bytes(work / "exact"),
                                      "runs": [summarise(ms, 1.0, time.perf_counter() - t, nq)]}
    print("lsr-exact", result["systems"]["lsr-exact"]["runs"][0], flush=True)

    # scipy brute force
    DT = docs.to_scipy().T.tocsr()
    Q = queries.to_scipy()
    q_rows = [Q[i] for i in range(nq)]  # row slicing outside the timings

    def scipy_top(i):
        s = (q_rows[i] @ DT).toarray()[0]
        return np.argpartition(-s, k)[:k]
    ms = timed_queries(scipy_top, nq)
    t = time.perf_counter()
    (Q @ DT).toarray()
    result["systems"]["scipy-brute-force"] = {"runs": [summarise(ms, 1.0, time.perf_counter() - t, nq)]}
    print("scipy", result["systems"]["scipy-brute-force"]["runs"][0], flush=True)

    # Both Seismic implementations, setting by setting, their single-query
    # timings in alternating passes (REPS of them): drift in the shared
    # machine's speed then hits both alike instead of whichever ran later.
    info = builds["lsr-seismic"]
    idx = SeismicIndex.load(work / "lsr")
    idx.search_numbers(queries[:1], k, query_cut=5, heap_factor=0.9)  # compile / load both kernels first
    idx.search_numbers(queries[:4], k, query_cut=5, heap_factor=0.9, threads=2)
    ps = None
    if not args.skip_pyseismic:
        ps = PySeismicSearcher(work / "pyseismic", docs.vocab.size)
        ps_rows = [(ps.tokens[queries.row(i)[0]], queries.row(i)[1].astype(np.float32)) for i in range(nq)]
    runs = {"lsr-seismic": [], "pyseismic-lsr": []}
    for qc, hf, kn in [(qc, hf, kn) for kn in ((0, args.knn) if args.knn else (0,)) for qc, hf in GRID]:
        got, _ = idx.batch_search(queries, k, query_cut=qc, heap_factor=hf, knn=kn, threads=1)
        recall = {"lsr-seismic": recall_at_k(got, truth, position)}
        # Each system's public one-query call, returning string doc ids.
        calls = {"lsr-seismic": lambda i: idx.search(lsr_rows[i], k, query_cut=qc, heap_factor=hf, knn=kn)}
        ps_now = ps if (ps is not None and (kn == 0 or ps_knn)) else None
        if ps_now is not None:
            res = ps.batch(queries, k, qc, hf, threads=1, knn=kn)
            # Results carry their query id; do not rely on their order.
            by_query = {r[0][0]: [d for _, _, d in r] for r in res if r}
            recall["pyseismic-lsr"] = recall_at_k([by_query.get(str(i), []) for i in range(nq)], truth,
                                                      position)
            calls["pyseismic-lsr"] = lambda i: ps.index.search("q", ps_rows[i][0], ps_rows[i][1], k,
                                                               query_cut=qc, heap_factor=hf, n_knn=kn)
        ms = interleaved_timings(calls, nq)
        batch_s = {}
        t = time.perf_counter()
        idx.search_numbers(queries, k, query_cut=qc, heap_factor=hf, knn=kn, threads=2)
        batch_s["lsr-seismic"] = time.perf_counter() - t
        if ps_now is not None:
            t = time.perf_counter()
            ps.batch(queries, k, qc, hf, threads=2, knn=kn)
            batch_s["pyseismic-lsr"] = time.perf_counter() - t
        for name in calls:
            runs[name].append({"query_cut": qc, "heap_factor": hf, "knn": kn,
                               **summarise(ms[name], recall[name], batch_s[name], nq)})
            print(name, runs[name][-1], flush=True)
    result["systems"]["lsr-seismic"] = {**info, "index_bytes": dir_bytes(work / "lsr"), "runs": runs["lsr-seismic"]}
    if ps is not None:
        result["systems"]["pyseismic-lsr"] = {**builds["pyseismic-lsr"],
                                              "index_bytes": dir_bytes(work / "pyseismic.index.seismic"),
                                              "runs": runs["pyseismic-lsr"]}

    out = OUT / f"seismic_{label}.json"
    out.write_text(json.dumps(result, indent=2))
    plot(result, OUT / f"seismic_{label}.png")
    print(f"wrote {out}")


def plot(result, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed; no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, sysres in result["systems"].items():
        runs = sorted(sysres["runs"], key=lambda r: (r["mean_ms"], -r["recall@10"]))
        if len(runs) == 1:
            ax.plot([runs[0]["mean_ms"]], [runs[0]["recall@10"]], "s", label=name, markersize=5)
            continue
        # every setting as a faint dot, the recall/latency frontier as the line
        dots = ax.plot([r["mean_ms"] for r in runs], [r["recall@10"] for r in runs], "o", markersize=3, alpha=0.3)
        front, top = [], -1.0
        for r in runs:
            if r["recall@10"] > top:
                front.append(r)
                top = r["recall@10"]
        ax.plot([r["mean_ms"] for r in front], [r["recall@10"] for r in front], "o-", markersize=4,
                color=dots[0].get_color(), label=f"{name} (frontier)")
    ax.set_xscale("log")
    ax.set_xlabel("mean single-thread latency per query (ms, log)")
    ax.set_ylabel("recall@10 vs exact")
    ax.axhline(0.95, color="grey", lw=0.5, ls="--")
    ax.set_title(f"{result['data']}: {result['docs']:,} docs, {result['queries']} queries")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--plot":  # redraw a PNG from a result file
        plot(json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[2]).with_suffix(".png"))
    else:
        main()
