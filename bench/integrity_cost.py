"""What verifying an index costs when it is opened, warm and cold.

    python bench/integrity_cost.py INDEX [--repeats 5] [--name NAME]
    python bench/integrity_cost.py --synthetic 1000000 [--repeats 3]

``--synthetic N`` opens bench/out/indexes/synthetic-v2-N, building it first
when missing: N SPLADE-like documents from bench/synthetic.py (generator v2,
seed 0), a seismic index with n_postings 2500 as in the 1M rows of
docs/RESULTS.md.

Opens INDEX (any lsr index directory) three ways, in this process:

* ``none``: what opening cost without verification: ``read_manifest`` plus
  ``np.load(mmap_mode="r")`` of every array (the floor; lsr never does only this);
* ``quick``: ``load_index(INDEX, verify="quick")``: manifest checksum, sizes,
  array headers, unlisted files, head+tail hash (first and last 64 KiB),
  bounds of every array;
* ``full``: ``load_index(INDEX)`` (the default): the same plus xxh3_128 of
  every byte of every file.

Also the pieces: ``bounds`` (``index._check_arrays`` alone, on loaded arrays),
``xxh3`` (hashing every listed file) and ``sha256`` (what ``lsr check --full``
adds). Warm: the files in the page cache (one untimed open first), median of
``--repeats``. Cold: before every timed open, each file of the index is
dropped from the page cache (``posix_fadvise(POSIX_FADV_DONTNEED)``; pages
still dirty or mapped by another process may stay). Prints a table and
writes bench/out/integrity_cost_<name>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def drop_cache(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            except OSError:
                pass
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def open_none(folder: Path):
    from lsr.index import storage
    manifest = storage.read_manifest(folder)
    return [np.load(folder / name, mmap_mode="r") for name in manifest["files"] if name.endswith(".npy")]


def ways(folder: Path) -> dict:
    from lsr.index import load_index, storage
    manifest = storage.read_manifest(folder)
    names = list(manifest["files"])
    loaded = load_index(folder, verify="quick")
    return {
        "none": lambda: open_none(folder),
        "quick": lambda: load_index(folder, verify="quick"),
        "full": lambda: load_index(folder, verify="full"),
        "bounds": lambda: loaded._check_arrays(folder),
        "xxh3": lambda: [storage.xxh3_file(folder / n) for n in names],
        "sha256": lambda: [storage.sha256_file(folder / n) for n in names],
    }


def timed(fn, repeats: int, cold_folder: Path | None) -> float:
    times = []
    for _ in range(repeats):
        if cold_folder is not None:
            drop_cache(cold_folder)
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def synthetic_index(n: int) -> Path:
    folder = HERE / "out" / "indexes" / f"synthetic-v2-{n}"
    if (folder / "manifest.json").exists():
        return folder
    from lsr.index import SeismicIndex
    from synthetic import generate  # a sibling module of this script
    docs, _ = generate(n, 1, seed=0)
    SeismicIndex.build(docs, n_postings=2500, progress=True).save(folder, overwrite=True)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index", type=Path, nargs="?")
    ap.add_argument("--synthetic", type=int, metavar="N", help="use (or build) the N-document synthetic index")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--name", help="name in the output file (default: the index folder's name)")
    args = ap.parse_args()
    if (args.index is None) == (args.synthetic is None):
        ap.error("give an INDEX or --synthetic N")
    folder = args.index or synthetic_index(args.synthetic)
    import lsr.index  # noqa: F401  (imports outside the timings)
    from lsr.index import storage
    manifest = storage.read_manifest(folder)
    total = sum(info["bytes"] for info in manifest["files"].values())
    fns = ways(folder)
    for fn in fns.values():
        fn()  # warm-up: page cache, imports, first-call costs
    rows = {}
    for way, fn in fns.items():
        rows[way] = {"warm_s": timed(fn, args.repeats, None),
                     "cold_s": timed(fn, max(1, min(args.repeats, 3)), folder)}
    result = {"index": str(folder), "index_type": manifest.get("index_type"),
              "docs": manifest.get("counts", {}).get("docs"), "files": len(manifest["files"]), "bytes": total,
              "legacy_manifest": storage.is_legacy(manifest), "repeats": args.repeats, "seconds": rows}
    print(f"{folder}: {manifest.get('index_type')}, {result['docs']} docs, {len(manifest['files'])} files, "
          f"{total / 1e6:.1f} MB")
    print(f"{'open':>8} {'warm ms':>10} {'cold ms':>10} {'warm GB/s':>10}")
    for way, r in rows.items():
        rate = total / r["warm_s"] / 1e9 if way in ("full", "xxh3", "sha256") else float("nan")
        print(f"{way:>8} {1000 * r['warm_s']:>10.1f} {1000 * r['cold_s']:>10.1f} {rate:>10.2f}")
    out = HERE / "out" / f"integrity_cost_{args.name or folder.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
