"""Encoding throughput: lsr's SPLADE encoder vs plain sentence-transformers.

Same model (splade-tiny), same documents (beir/scifact corpus, title + " " +
text, max length 256), same batch size, same process, same torch threads.
Reports docs/s for both, the ratio, and the largest absolute difference
between the two sets of vectors.

    python bench/encode_throughput.py [--limit N] [--out bench/out/encode_throughput.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lsr.eval.reference import doc_text, load_beir, st_model, to_csr  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared/data/beir/scifact")
    ap.add_argument("--limit", type=int, default=None, help="first N documents only")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "encode_throughput.json")
    args = ap.parse_args()

    import torch

    from lsr.encoders import load_encoder, resolve_model
    from lsr.sparse import SparseVectors

    corpus, _, _ = load_beir(args.data)
    texts = [doc_text(d) for d in corpus][: args.limit]
    ours = load_encoder("splade-tiny", max_length=256, batch_size=args.batch_size)
    st = st_model(resolve_model("splade-tiny").path, 256)
    # Warm both up (first-call allocations, lazy init) outside the timings.
    ours.encode(texts[:64])
    st.encode_document(texts[:64], batch_size=args.batch_size)

    t = time.perf_counter()
    with torch.inference_mode():
        ref = to_csr(st.encode_document(texts, batch_size=args.batch_size, show_progress_bar=True))
    t_st = time.perf_counter() - t

    from tqdm import tqdm
    with tqdm(total=len(texts), unit="doc", desc="lsr") as bar:
        t = time.perf_counter()
        vec = ours.encode(texts, progress=bar.update)
        t_lsr = time.perf_counter() - t

    diff = float(abs(vec.to_scipy() - SparseVectors.from_scipy(ref, vec.vocab).to_scipy()).max())
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "docs": len(texts),
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "sentence_transformers_docs_per_s": len(texts) / t_st,
        "lsr_docs_per_s": len(texts) / t_lsr,
        "speedup": t_st / t_lsr,
        "max_abs_diff": diff,
        "mean_nnz_lsr": vec.nnz / len(vec),
        "mean_nnz_st": ref.nnz / ref.shape[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
