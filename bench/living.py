"""Living indexes on scifact (issue 21's acceptance): an index grown by `lsr add` scores like one built at once.

    python bench/living.py                  # writes bench/out/living.json

Splits beir/scifact's corpus into its first 4,683 documents and the other
500. For each of exact, seismic (forced) and hybrid (exact sparse + minilm
dense + BM25, fused by the recommended default), builds an index on the
4,683, adds the 500 with the IndexWriter (`lsr add` runs the same code)
and compares nDCG@10 on beir/scifact/test with the index built at once; the
grown hybrid is also merged to one segment and measured again. Then, on the
grown exact index: deletes every judged document of 20 test queries (none
may come back; `lsr info` counts them) and updates a document (found by its
new text once, never by its old copy).

The sparse vectors of the whole corpus come from a `lsr encode`d folder
(encoded once, reused: the 4,683's are a slice of it); the 500 added are
encoded by the writer with the index's recorded model, as a user's add is.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"


def ndcg(retriever, dataset) -> float:
    from lsr.eval.run import evaluate_index
    return round(float(evaluate_index(retriever, dataset, ["nDCG@10"], progress=False)["nDCG@10"]), 4)


def write_subset(vectors_dir: Path, ids, vectors, dataset: str, folder: Path) -> None:
    from lsr.sparse.parquet import write_vectors
    folder.mkdir(parents=True)
    write_vectors(folder / "shard-00000.parquet", ids, vectors)
    settings = json.loads((vectors_dir / "encode.json").read_text())
    settings.update(dataset=dataset, docs=len(ids), complete=True)
    settings.pop("corpus_fingerprint", None)
    (folder / "encode.json").write_text(json.dumps(settings))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=OUT / "living")
    ap.add_argument("--first", type=int, default=4683)
    args = ap.parse_args(argv)

    from lsr import IndexWriter, Retriever
    from lsr.data import load_dataset
    from lsr.encoders import load_encoder
    from lsr.encoders.shards import encode_corpus, shard_paths
    from lsr.retrieval import build_index
    from lsr.sparse import read_vectors

    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    corpus = load_dataset("beir/scifact")
    test = load_dataset("beir/scifact/test")
    docs = list(corpus.docs())
    first, rest = docs[:args.first], docs[args.first:]
    for name, part in (("first.jsonl", first), ("rest.jsonl", rest)):
        with open(work / name, "w") as f:
            for d in part:
                f.write(json.dumps({"_id": d.doc_id, "title": d.title, "text": d.text, "metadata": d.metadata}) + "\n")
    report = {"date": time.strftime("%Y-%m-%d"), "docs": len(docs), "first": len(first), "added": len(rest)}

    t = time.time()
    whole_vectors = work / "vectors-whole"
    encode_corpus(corpus, load_encoder("splade-tiny", max_length=256), whole_vectors, progress=True,
                  dataset_name="beir/scifact")
    report["encode_whole_s"] = round(time.time() - t, 1)
    ids, vectors = read_vectors(shard_paths(whole_vectors))
    write_subset(whole_vectors, ids[:len(first)], vectors[:len(first)], str(work / "first.jsonl"), work / "vectors-first")

    rows = {}
    for kind, index_type, dense in (("exact", "exact", None), ("seismic", "seismic", None), ("hybrid", "auto", "minilm")):
        mode = "hybrid" if dense else "sparse"
        whole, grown = work / f"{kind}-whole", work / f"{kind}-grown"
        build_index(str(whole_vectors), "splade-tiny", whole, index_type=index_type, dense=dense, progress=False)
        build_index(str(work / "vectors-first"), "splade-tiny", grown, index_type=index_type, dense=dense,
                    progress=False)
        t = time.time()
        with IndexWriter(grown, merge=False) as w:
            w.add(load_dataset(str(work / "rest.jsonl")))
        add_s = time.time() - t
        row = {"whole": ndcg(Retriever(whole, mode=mode), test), "grown": ndcg(Retriever(grown, mode=mode), test),
               "add_s_with_encoding": round(add_s, 1)}
        if kind == "hybrid":
            merged = work / "hybrid-merged"
            shutil.copytree(grown, merged)
            with IndexWriter(merged, merge=False) as w:
                w.merge(1)
            row["merged"] = ndcg(Retriever(merged, mode=mode), test)
        rows[kind] = row
        print(kind, row, flush=True)
    report["ndcg@10"] = rows
    report["seismic_grown_minus_exact_grown"] = round(rows["seismic"]["grown"] - rows["exact"]["grown"], 4)

    # deletes: every judged document of 20 test queries
    grown = work / "exact-grown"
    qrels = test.qrels()
    queries = [q for q in test.queries() if q.query_id in qrels][:20]
    judged = sorted({d for q in queries for d in qrels[q.query_id]})
    before = Retriever(grown)
    hits_before = sum(h.doc_id in judged for hs in before.batch_search([q.text for q in queries], 100) for h in hs)
    with IndexWriter(grown, merge=False) as w:
        w.delete(judged)
    r = Retriever(grown)
    hits_after = sum(h.doc_id in judged for hs in r.batch_search([q.text for q in queries], 1000) for h in hs)
    from lsr.index.info import index_info
    info = index_info(grown)
    report["delete"] = {"judged_docs_deleted": len(judged), "their_hits_in_top100_before": hits_before,
                        "their_hits_in_top1000_after": hits_after, "info_deleted": info["deleted"],
                        "info_docs": info["docs"], "before_still_answers": len(before.search(queries[0].text, 5))}
    # an update: new text, found once; the old text no longer finds it
    target = rest[0]
    new_text = "zebrafish telomerase regulates circadian bioluminescence in deep-sea anglerfish"
    old_query = target.title
    with IndexWriter(grown, merge=False) as w:
        w.add([{"doc_id": target.doc_id, "title": "", "text": new_text}])
    r.refresh()
    new_hits = [h.doc_id for h in r.search(new_text, 20)]
    old_hits = r.search(old_query, 20)
    report["update"] = {"doc_id": target.doc_id, "rank_by_new_text": new_hits.index(target.doc_id) + 1
                        if target.doc_id in new_hits else None, "times_in_top20": new_hits.count(target.doc_id),
                        "old_copy_returned_for_old_title": any(h.doc_id == target.doc_id and new_text not in h.text
                                                               for h in old_hits),
                        "get_returns_new_text": r.get([target.doc_id])[0]["text"] == new_text}
    report["info_after"] = {k: info[k] for k in ("docs", "deleted", "index_type")} | {
        "segments": [{k: s[k] for k in ("name", "docs", "deleted", "index_type")} for s in index_info(grown)["segments"]]}
    print(json.dumps(report, indent=1))
    (OUT / "living.json").write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
