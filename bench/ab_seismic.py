"""A/B latency of lsr's seismic search between two source trees (e.g. before / after a refactor).

Both trees search the same saved index with the same encoded queries, in
separate worker processes (two versions of ``lsr`` cannot share one), and
take turns pass by pass (A B B A A B ...), so drift in machine speed hits
both alike. Each pass warms up (numba cache, page cache), then times every
query once, single-threaded, per setting. Reported per setting: each side's
median over passes of the pass mean, and the ratio B / A.

Data: the splade-tiny document vectors in bench/out/indexes/NAME-splade-tiny
(``lsr index beir/NAME -m splade-tiny -o bench/out/indexes/NAME-splade-tiny
--index-type exact``) and beir/NAME/test queries (seismic_bench's cache).

    python bench/ab_seismic.py --a /tmp/lsr-before --b . --real nfcorpus \\
        --setting 5/0.8 --setting 10/0.8 --passes 8
Writes bench/out/ab_seismic_NAME[_TAG].json. Run the same tree as A and B
(``--tag aa``) for the spread an A/B ratio has when nothing changed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def worker(index_dir: str, queries: str, settings: list[tuple[int, float]]) -> dict:
    """One pass in this process's lsr: mean single-query ms per setting, and the top-10 ids (for equality)."""
    import lsr
    from lsr.index import load_index
    from lsr.sparse import SparseVectors
    idx = load_index(index_dir, verify=False)
    z = np.load(queries)
    q = SparseVectors(z["indptr"], z["indices"], z["values"], idx.vocab)
    rows = [q[i:i + 1] for i in range(len(q))]
    out = {"lsr": str(Path(lsr.__file__).parent)}  # which tree this pass really ran
    for qc, hf in settings:
        for r in rows[:50]:  # warm-up: compiled kernels, index pages, per-thread scratch
            idx.search(r, 10, query_cut=qc, heap_factor=hf)
        ms = np.empty(len(rows))
        first = []
        for i, r in enumerate(rows):
            t = time.perf_counter()
            ids, _ = idx.search(r, 10, query_cut=qc, heap_factor=hf)
            ms[i] = (time.perf_counter() - t) * 1000
            first.append(str(ids[0]))
        out[f"{qc}/{hf}"] = {"mean_ms": float(ms.mean()), "p50_ms": float(np.median(ms)), "top1": first}
    return out


def run_pass(tree: Path, index_dir: Path, queries: Path, settings) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "NUMBA_NUM_THREADS": "1"}
    spec = json.dumps(settings)
    res = subprocess.run([sys.executable, __file__, "--worker", str(index_dir), str(queries), spec],
                         env=env, capture_output=True, text=True, cwd=tree)
    if res.returncode != 0:
        raise RuntimeError(f"worker in {tree} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], sys.argv[3], [tuple(s) for s in json.loads(sys.argv[4])])))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, required=True, help="source tree A (the baseline)")
    ap.add_argument("--b", type=Path, required=True, help="source tree B (the change)")
    ap.add_argument("--real", default="nfcorpus")
    ap.add_argument("--setting", action="append", default=[], metavar="QUERY_CUT/HEAP_FACTOR")
    ap.add_argument("--passes", type=int, default=8)
    ap.add_argument("--tag", default="", help="suffix of the output file (e.g. 'aa' for an A/A control run)")
    args = ap.parse_args()
    settings = [(int(s.split("/")[0]), float(s.split("/")[1])) for s in (args.setting or ["5/0.8", "10/0.8"])]
    os.environ.setdefault("IR_DATASETS_HOME", str(HERE.parent / ".cache" / "ir_datasets"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from lsr.index import SeismicIndex
    from seismic_bench import real_data  # sibling module: encodes and caches the test queries once
    ids, docs, queries = real_data(args.real)
    index_dir = OUT / "indexes" / f"ab-{args.real}-seismic"
    if not (index_dir / "manifest.json").exists():
        SeismicIndex.build(docs, ids).save(index_dir, overwrite=True)
    cache = OUT / f"queries_{args.real}.npz"

    passes = {"a": [], "b": []}
    order = ["a", "b"]
    for p in range(args.passes):
        for side in (order if p % 2 == 0 else order[::-1]):
            tree = args.a if side == "a" else args.b
            passes[side].append(run_pass(tree, index_dir, cache, settings))
            got = passes[side][-1]
            if not got["lsr"].startswith(str(tree.resolve())):
                raise RuntimeError(f"pass for {tree} imported lsr from {got['lsr']}")
            print(f"pass {p + 1}/{args.passes} {side}: " + ", ".join(
                f"{k} {v['mean_ms']:.4f} ms" for k, v in got.items() if k != "lsr"), file=sys.stderr)
    result = {"data": args.real, "a": str(args.a.resolve()), "b": str(args.b.resolve()), "passes": args.passes,
              "queries": len(queries), "date": time.strftime("%Y-%m-%d"), "settings": {}}
    for qc, hf in settings:
        key = f"{qc}/{hf}"
        a = [x[key]["mean_ms"] for x in passes["a"]]
        b = [x[key]["mean_ms"] for x in passes["b"]]
        same = passes["a"][0][key]["top1"] == passes["b"][0][key]["top1"]
        result["settings"][key] = {"a_median_ms": float(np.median(a)), "b_median_ms": float(np.median(b)),
                                   "ratio_b_over_a": float(np.median(b) / np.median(a)),
                                   "a_passes_ms": a, "b_passes_ms": b, "same_top1": same}
        print(f"query_cut={qc} heap_factor={hf}: A {np.median(a):.4f} ms, B {np.median(b):.4f} ms, "
              f"B/A {np.median(b) / np.median(a):.3f}, same top-1 ids: {same}")
    path = OUT / f"ab_seismic_{args.real}{'_' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
