"""Does a refactored SeismicIndex.build write the same index? Save every array from one source tree,
compare from another.

Three seeded synthetic sets (a k-NN graph; pruning with float32 forward
weights and a restricted graph search; defaults) are built, and every stored
array, the index's params and the top-10 of 20 queries are saved (``save``)
or compared byte for byte with what was saved (``check``; exit status 1 on
any difference). Run each side in its own tree:

    git worktree add /tmp/lsr-before 8b6b76d
    PYTHONPATH=/tmp/lsr-before python bench/build_identity.py save /tmp/build-identity
    python bench/build_identity.py check /tmp/build-identity
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def data(seed: int, n: int, dim: int, nnz: int):
    rng = np.random.default_rng(seed)
    indptr, idx, val = [0], [], []
    for _ in range(n):
        k = rng.integers(1, nnz)
        idx.extend(np.sort(rng.choice(dim, size=k, replace=False)))
        val.extend(rng.random(k).astype(np.float32) + 0.01)
        indptr.append(len(idx))
    return sp.csr_matrix((np.array(val, np.float32), np.array(idx, np.int32), np.array(indptr)), shape=(n, dim))


CONFIGS = {
    "knn5": (lambda: data(0, 2000, 500, 60), dict(knn=5)),
    "pruned_f32": (lambda: data(1, 2000, 300, 40),
                   dict(n_postings=50, max_fraction=1.2, forward_dtype="f32", knn=3, knn_blocks=2, seed=7)),
    "plain": (lambda: data(2, 1500, 800, 30), dict()),
}


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("save", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, out = sys.argv[1], Path(sys.argv[2])
    import lsr
    from lsr.index.seismic import SeismicIndex
    print(f"lsr from {Path(lsr.__file__).parent}", file=sys.stderr)
    differences = 0
    for name, (make, params) in CONFIGS.items():
        docs = make()
        index = SeismicIndex.build(docs, **params)
        numbers, scores = index.search_numbers(data(99, 20, docs.shape[1], 20), k=10, threads=1)
        arrays = {a: np.asarray(getattr(index, a)) for a in index.ARRAYS}
        arrays["_top10_docs"], arrays["_top10_scores"] = numbers, scores
        folder = out / name
        stored_params = json.dumps(index.params, sort_keys=True, default=str)
        if mode == "save":
            folder.mkdir(parents=True, exist_ok=True)
            for a, arr in arrays.items():
                np.save(folder / f"{a}.npy", arr)
            (folder / "params.json").write_text(stored_params)
            print(f"{name}: saved {len(arrays)} arrays")
            continue
        for a, arr in arrays.items():
            ref = np.load(folder / f"{a}.npy")
            if ref.dtype != arr.dtype or ref.shape != arr.shape or ref.tobytes() != arr.tobytes():
                differences += 1
                print(f"DIFF {name} {a}: {ref.dtype}{ref.shape} vs {arr.dtype}{arr.shape}")
        if stored_params != (folder / "params.json").read_text():
            differences += 1
            print(f"DIFF {name} params")
        print(f"{name}: compared {len(arrays)} arrays and the params")
    if mode == "check":
        print("identical" if differences == 0 else f"{differences} differences")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
