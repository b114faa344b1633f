"""RAG on scifact claims: does the answer cite, and are the cited documents the relevant ones?

    python bench/rag_citations.py [--index indexes/scifact-rag] [--claims 30]

For the first N claims of beir/scifact/test (dataset order), runs the RAG
pipeline (hybrid retrieval, k 3, budget 768 tokens, the bundled SmolLM2-135M,
greedy) under each prompt below and records, per claim: the answer, the
doc ids it cites and who put each citation there (the generator itself, or
post-hoc attribution), the sentences no passage supports, and whether the
cited documents are relevant according to the scifact qrels. Writes
bench/out/rag_citations.json (every answer) and .csv (the summary).

The index is the one docs/rag.md builds (splade-tiny + MiniLM + BM25):
    python -c "from lsr.retrieval import build_index; build_index('beir/scifact', 'splade-tiny', 'indexes/scifact-rag', dense='minilm')"
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"
# The prompt before 2026-11-25 (instruction first), kept to measure what the change did.
OLD_PROMPT = ("Answer the question using only the numbered passages below, and cite the passages you use "
              "by their numbers, like [1].\n\nPassages:\n{context}\n\nQuestion: {question}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default="indexes/scifact-rag")
    ap.add_argument("--claims", type=int, default=30)
    ap.add_argument("--max-new-tokens", type=int, default=120)
    args = ap.parse_args()

    from lsr import Retriever
    from lsr.data import load_dataset
    from lsr.rag.pipeline import CLAIM_PROMPT, PROMPT, LocalGenerator, RAGPipeline

    ds = load_dataset("beir/scifact/test")
    qrels = ds.qrels()
    claims = [q for q in ds.queries() if q.query_id in qrels][:args.claims]
    retriever = Retriever.load(args.index, mode="hybrid")
    generator = LocalGenerator(max_new_tokens=args.max_new_tokens)
    prompts = {"claim prompt (docs/rag.md)": CLAIM_PROMPT, "question prompt (default)": PROMPT,
               "old instruction-first prompt": OLD_PROMPT}
    runs, summary = {}, []
    for name, prompt in prompts.items():
        rag = RAGPipeline(retriever, generator, k=3, budget=768, prompt=prompt)
        rows, t0 = [], time.perf_counter()
        for i, q in enumerate(claims):
            t = time.perf_counter()
            a = rag.ask(q.text)
            rel = qrels[q.query_id]
            by = {}
            for st in a.statements:
                for n in st.cited:
                    by.setdefault(a.citations.get(n), st.by)
            rows.append({"query_id": q.query_id, "claim": q.text, "answer": a.answer, "generated": a.generated,
                         "sources": list(a.citations.values()), "cited": a.cited, "cited_by": by,
                         "relevant_retrieved": [d for d in a.citations.values() if rel.get(d, 0) > 0],
                         "relevant_cited": [d for d in a.cited if rel.get(d, 0) > 0],
                         "unsupported": a.unsupported, "seconds": round(time.perf_counter() - t, 2)})
            print(f"[{name}] {i + 1}/{len(claims)} cited {a.cited} relevant {rows[-1]['relevant_cited']}", flush=True)
        n = len(rows)
        cited = [r for r in rows if r["cited"]]
        n_cites = sum(len(r["cited"]) for r in rows)
        summary.append({
            "prompt": name, "claims": n,
            "answers citing a passage": len(cited) / n,
            "answers with a generator-written citation": sum(any(v == "generator" for v in r["cited_by"].values())
                                                             for r in rows) / n,
            "cited docs that are relevant (qrels)": (sum(len(r["relevant_cited"]) for r in rows) / n_cites
                                                     if n_cites else 0.0),
            "answers citing a relevant doc": sum(bool(r["relevant_cited"]) for r in rows) / n,
            "claims with a relevant doc among the passages": sum(bool(r["relevant_retrieved"]) for r in rows) / n,
            "unsupported sentences per answer": sum(len(r["unsupported"]) for r in rows) / n,
            "seconds per answer": (time.perf_counter() - t0) / n})
        runs[name] = rows
    OUT.mkdir(exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "index": args.index, "k": 3, "budget": 768,
            "max_new_tokens": args.max_new_tokens, "generator": "smollm2-135m (greedy)"}
    (OUT / "rag_citations.json").write_text(json.dumps({"meta": meta, "summary": summary, "answers": runs}, indent=1))
    with open(OUT / "rag_citations.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary[0]))
        w.writeheader()
        w.writerows(summary)
    for s in summary:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()}))


if __name__ == "__main__":
    main()
