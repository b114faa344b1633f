"""An independent reference that uses none of lsr's other code.

Plain sentence-transformers SPLADE encodings, a scipy sparse product for
brute-force scores, and pytrec_eval (what BEIR itself uses) for nDCG. lsr's
exact search is checked against this in tests and bench/reference_check.py.
It sits in the package (not in bench/ or tests/) so both import it as a
module; it must keep importing nothing from lsr, or it stops being a
reference (the layering test checks that).
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np


def load_beir(folder: Path, split: str = "test"):
    """(corpus rows, judged query rows, qrels) straight from a BEIR folder."""
    def rows(name):
        with gzip.open(folder / name, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
        q, d, r = line.split("\t")
        qrels.setdefault(q, {})[d] = int(r)
    queries = [q for q in rows("queries.jsonl.gz") if q["_id"] in qrels]
    return rows("corpus.jsonl.gz"), queries, qrels


def doc_text(d: dict) -> str:
    return f"{d['title']} {d['text']}" if d.get("title") else d["text"]


def st_model(model_path, max_length: int = 256):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer
    return SparseEncoder(modules=[Transformer(str(model_path), transformer_task="fill-mask",
                                              max_seq_length=max_length), SpladePooling("max")], device="cpu")


def to_csr(tensor):
    import scipy.sparse as sp
    t = tensor.coalesce()
    i = t.indices().numpy()
    return sp.csr_matrix((t.values().numpy(), (i[0], i[1])), shape=tuple(t.shape))


def brute_force_run(Q, D, query_ids, doc_ids, k: int = 100):
    """Top-k per query from the scipy product, dropping self-hits (BEIR)."""
    scores = (Q @ D.T).toarray()
    run = {}
    for i, qid in enumerate(query_ids):
        top = np.argsort(-scores[i], kind="stable")[:k + 1]
        run[qid] = {doc_ids[j]: float(scores[i, j]) for j in top if doc_ids[j] != qid and scores[i, j] > 0}
    return run


def trec_eval(run, qrels, measures=("ndcg_cut_10", "recall_100")) -> dict[str, float]:
    """Mean over all judged queries (a query without hits counts 0)."""
    import pytrec_eval
    per_query = pytrec_eval.RelevanceEvaluator(qrels, set(measures)).evaluate(run)
    return {m: float(np.mean([per_query.get(q, {}).get(m, 0.0) for q in qrels])) for m in measures}


def reference_ndcg(folder: Path, model_path, split: str = "test", max_length: int = 256) -> dict:
    import torch
    corpus, queries, qrels = load_beir(folder, split)
    model = st_model(model_path, max_length)
    with torch.inference_mode():
        D = to_csr(model.encode_document([doc_text(d) for d in corpus], batch_size=32))
        Q = to_csr(model.encode_query([q["text"] for q in queries], batch_size=32))
    run = brute_force_run(Q, D, [q["_id"] for q in queries], [d["_id"] for d in corpus])
    return trec_eval(run, qrels)
