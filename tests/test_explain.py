"""Explaining scores: per-token contributions that sum to the search's score, on every index type."""
import gzip
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import BEIR, needs_shared
from lsr import IndexWriter, Retriever
from lsr.cli.app import app
from lsr.errors import QueryError
from lsr.retrieval import build_index

pytestmark = needs_shared
runner = CliRunner()
QUERIES = ["computer indexing of documents", "information retrieval evaluation", "automatic abstracting",
           "library catalog", "machine translation of scientific text"]
ALL = 10 ** 6  # top: every shared token


@pytest.fixture(scope="module")
def adi(tmp_path_factory):
    """ADI (82 docs): splade-tiny and BM25, exact and seismic; and segmented ones grown by IndexWriter."""
    tmp = tmp_path_factory.mktemp("explain")
    rows = [json.loads(line) for line in gzip.open(BEIR / "adi" / "corpus.jsonl.gz", "rt")]
    first = tmp / "first.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in rows[:70]))
    out = {}
    build_index(BEIR / "adi", "splade-tiny", tmp / "sp-exact", index_type="exact", bm25=True, progress=False)
    out["splade-exact"] = tmp / "sp-exact"
    build_index(tmp / "sp-exact" / "vectors", None, tmp / "sp-seismic", index_type="seismic", progress=False)
    out["splade-seismic"] = tmp / "sp-seismic"
    for kind in ("exact", "seismic"):
        build_index(BEIR / "adi", "bm25", tmp / f"bm-{kind}", index_type=kind, progress=False)
        out[f"bm25-{kind}"] = tmp / f"bm-{kind}"
    # BM25: a seismic segment of 70 docs plus an exact one of 12 (global IDF through query_scales)
    build_index(first, "bm25", tmp / "bm-seg", index_type="seismic", progress=False)
    with IndexWriter(tmp / "bm-seg", merge=False) as w:
        w.add(rows[70:])
    out["bm25-segmented"] = tmp / "bm-seg"
    build_index(first, "splade-tiny", tmp / "sp-seg", index_type="exact", progress=False)
    with IndexWriter(tmp / "sp-seg", merge=False) as w:
        w.add(rows[70:])
        w.delete([rows[0]["_id"]])
    out["splade-segmented"] = tmp / "sp-seg"
    out["rows"] = rows
    return out


KINDS = ["splade-exact", "splade-seismic", "bm25-exact", "bm25-seismic", "bm25-segmented", "splade-segmented"]


def _vectors(r, query):
    """The query's and every document's vectors as {token: weight} (test only: the whole corpus), with the
    weights the index scores with (a segmented BM25 index: global IDF)."""
    q = r._searcher.encode_queries([query]).to_dicts()[0]
    docs = r.index.forward_vectors()
    return q, docs


@pytest.mark.parametrize("kind", KINDS)
def test_contributions_sum_to_the_search_score(adi, kind):
    r = Retriever(adi[kind])
    if kind == "splade-segmented":
        assert r.index.segment_types == ["exact", "exact"]
    if kind == "bm25-segmented":
        assert r.index.segment_types == ["seismic", "exact"] and r.index.query_scales is not None
    n_checked = 0
    for query in QUERIES:
        hits = r.search(query, k=10)
        assert hits
        explained = r.explain(query, [h.doc_id for h in hits], top=ALL)
        q, docs = _vectors(r, query)
        assert [e["doc_id"] for e in explained] == [h.doc_id for h in hits]
        for h, e in zip(hits, explained):
            terms = e["terms"]
            contrib = [t["contribution"] for t in terms]
            assert e["score"] == pytest.approx(h.score, rel=1e-4)
            assert sum(contrib) == pytest.approx(e["score"], rel=1e-6)
            assert contrib == sorted(contrib, reverse=True) and all(c > 0 for c in contrib)
            row = docs.row(r.index.doc_ids.number_of(h.doc_id))
            d = {r.index.vocab.token(int(t)): float(w) for t, w in zip(*row)}
            # exactly the shared tokens, with the query's and the document's weights
            assert {t["token"] for t in terms} == {t for t in q if t in d and q[t] * d[t] > 0}
            for t in terms:
                assert t["query_weight"] == pytest.approx(q[t["token"]], rel=1e-6)
                assert t["doc_weight"] == pytest.approx(d[t["token"]], rel=1e-6)
                assert t["contribution"] == pytest.approx(t["query_weight"] * t["doc_weight"], rel=1e-5)
            n_checked += 1
    assert n_checked >= 40


def test_seismic_scores_are_the_full_query_dot_product(adi):
    """query_cut prunes which lists are visited, never a scored document's score: a hit of a search with
    query_cut=1 still scores the full query, and explain's sum (from the forward index) equals it; against
    the exact index of the same vectors it differs only by the forward index's float16 rounding."""
    seismic = Retriever(adi["splade-seismic"], query_cut=1, heap_factor=0.5)
    exact = Retriever(adi["splade-exact"])
    assert seismic.index.params["forward_dtype"] == "f16"
    for query in QUERIES:
        hits = seismic.search(query, k=5)
        ids = [h.doc_id for h in hits]
        s_exp, e_exp = seismic.explain(query, ids, top=ALL), exact.explain(query, ids, top=ALL)
        for h, s, e in zip(hits, s_exp, e_exp):
            assert s["score"] == pytest.approx(h.score, rel=1e-5)
            assert len(s["terms"]) > 1  # more than the one term whose list was visited
            assert s["score"] == pytest.approx(e["score"], rel=2e-3)
            assert [t["token"] for t in s["terms"]][:1] == [t["token"] for t in e["terms"]][:1]


def test_top_cuts_the_terms_not_the_score(adi):
    r = Retriever(adi["splade-exact"])
    hit = r.search(QUERIES[0], k=1)[0]
    full = r.explain(QUERIES[0], [hit.doc_id], top=ALL)[0]
    three = r.explain(QUERIES[0], [hit.doc_id], top=3)[0]
    assert len(full["terms"]) > 3 and three["terms"] == full["terms"][:3]
    assert three["score"] == full["score"] > sum(t["contribution"] for t in three["terms"])
    assert len(r.explain(QUERIES[0], [hit.doc_id])[0]["terms"]) == min(10, len(full["terms"]))


def test_document_sharing_nothing_and_repeated_ids(adi):
    r = Retriever(adi["bm25-exact"])
    docs = r.index.forward_vectors()
    stem = r._searcher.encode_queries(["translation"]).to_dicts()[0]
    assert len(stem) == 1
    tid = r.index.vocab.index_of()[next(iter(stem))]
    without = next(i for i in range(len(docs)) if tid not in docs.row(i)[0])
    with_ = next(i for i in range(len(docs)) if tid in docs.row(i)[0])
    a, b = (r.index.doc_ids.take(np.array([n]))[0] for n in (without, with_))
    got = r.explain("translation", [a, b, a])
    assert got[0] == got[2] == {"doc_id": a, "score": 0.0, "terms": []}
    assert got[1]["score"] > 0 and [t["token"] for t in got[1]["terms"]] == list(stem)


def test_errors(adi):
    r = Retriever(adi["splade-segmented"])
    deleted = adi["rows"][0]["_id"]
    live = adi["rows"][1]["_id"]
    for bad in ("no-such-doc", deleted):
        with pytest.raises(KeyError, match=repr(bad)):
            r.explain("computer", [live, bad])
        with pytest.raises(KeyError, match=repr(bad)):
            r.doc_terms(bad)
    for q in ("", "   "):
        with pytest.raises(QueryError, match="empty"):
            r.explain(q, [live])
    for top in (0, -1, True, 2.5, "3"):
        with pytest.raises(QueryError, match="top"):
            r.explain("computer", [live], top=top)
        with pytest.raises(QueryError, match="top"):
            r.doc_terms(live, top=top)
    with pytest.raises(QueryError):
        r.explain("computer", live)  # one string where a list belongs


@pytest.mark.parametrize("kind", KINDS)
def test_doc_terms_are_the_heaviest_weights(adi, kind):
    r = Retriever(adi[kind])
    docs = r.index.forward_vectors()
    for n in (1, 40, 75):
        doc_id = r.index.doc_ids.take(np.array([n]))[0]
        idx, vals = docs.row(n)
        got = r.doc_terms(doc_id, top=7)
        weights = [t["weight"] for t in got]
        assert len(got) == min(7, len(idx)) and weights == sorted(weights, reverse=True)
        np.testing.assert_allclose(weights, np.sort(vals)[::-1][:7], rtol=1e-6)
        row = {r.index.vocab.token(int(t)): float(w) for t, w in zip(idx, vals)}
        assert all(row[t["token"]] == pytest.approx(t["weight"], rel=1e-6) for t in got)
        assert len(r.doc_terms(doc_id, top=ALL)) == np.count_nonzero(vals)


def test_cli_search_explain(adi):
    path = str(adi["splade-exact"])
    query = QUERIES[1]
    why = {e["doc_id"]: e for e in Retriever(path).explain(
        query, [h.doc_id for h in Retriever(path).search(query, k=3)], top=5)}
    res = runner.invoke(app, ["search", path, query, "-k", "3", "--explain"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == query and len(lines) == 1 + 2 * 3
    for i, (head, terms) in enumerate(zip(lines[1::2], lines[2::2])):
        rank, score, doc_id = head.split()[:3]
        assert rank == str(i + 1) and doc_id in why and float(score) == pytest.approx(why[doc_id]["score"], abs=1e-3)
        want = "  ".join(f"{t['token']} {t['query_weight']:.2f}×{t['doc_weight']:.2f}={t['contribution']:.2f}"
                         for t in why[doc_id]["terms"])
        assert terms.strip() == want and len(why[doc_id]["terms"]) == 5

    plain = runner.invoke(app, ["search", path, query, "-k", "3", "--json"])
    res = runner.invoke(app, ["search", path, query, "-k", "3", "--json", "--explain", "--explain-terms", "2"])
    assert res.exit_code == 0 and plain.exit_code == 0, res.output
    hits, before = json.loads(res.stdout)["hits"], json.loads(plain.stdout)["hits"]
    assert [{k: v for k, v in h.items() if k != "explain"} for h in hits] == before  # otherwise unchanged
    for h in hits:
        want = why[h["doc_id"]]["terms"][:2]
        assert [t["token"] for t in h["explain"]] == [t["token"] for t in want]
        for key in ("query_weight", "doc_weight", "contribution"):
            assert [t[key] for t in h["explain"]] == pytest.approx([t[key] for t in want], rel=1e-6)
        assert list(h["explain"][0]) == ["token", "query_weight", "doc_weight", "contribution"]

    res = runner.invoke(app, ["search", path, "--queries", "-", "--explain"], input="q1\tcomputer\n")
    assert res.exit_code == 2 and "--explain" in res.output and "--queries" in res.output
    res = runner.invoke(app, ["search", path, query, "--explain-terms", "3"])
    assert res.exit_code == 2 and "add --explain" in res.output


def test_hybrid_explains_the_sparse_list(adi):
    """Fused scores are not dot products: explain gives the index's sparse list, whose raw score the hit
    carries in list_scores."""
    from lsr.retrieval import HybridConfig
    path = adi["splade-exact"]
    hybrid = Retriever(path, config=HybridConfig(lists=("sparse", "bm25"), weights=(0.5, 0.5)))
    query = QUERIES[0]
    hits = hybrid.search(query, k=5)
    got = hybrid.explain(query, [h.doc_id for h in hits])
    assert got == Retriever(path).explain(query, [h.doc_id for h in hits])
    for h, e in zip(hits, got):
        if h.list_scores["sparse"] is not None:
            assert e["score"] == pytest.approx(h.list_scores["sparse"], rel=1e-4)
        else:
            assert e["score"] == 0.0
    res = runner.invoke(app, ["search", str(path), query, "-k", "2", "--lists", "sparse,bm25", "--explain"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[2].strip().startswith(f"sparse {got[0]['score']:.2f}: {got[0]['terms'][0]['token']} ")


def test_cli_terms(adi):
    path = str(adi["bm25-segmented"])
    r = Retriever(path)
    doc_id = adi["rows"][75]["_id"]  # in the added segment: weights in global statistics
    want = r.doc_terms(doc_id, top=4)
    res = runner.invoke(app, ["terms", path, doc_id, "-n", "4"])
    assert res.exit_code == 0, res.output
    got = [line.split() for line in res.stdout.splitlines()]
    assert [g[0] for g in got] == [t["token"] for t in want]
    assert [float(g[1]) for g in got] == pytest.approx([t["weight"] for t in want], abs=1e-3)
    res = runner.invoke(app, ["terms", path, doc_id, "--json"])
    assert res.exit_code == 0
    out = json.loads(res.stdout)
    assert out["doc_id"] == doc_id and len(out["terms"]) == min(20, len(r.doc_terms(doc_id, top=ALL)))
    assert out["terms"][:4] == want
    res = runner.invoke(app, ["terms", path, "no-such-doc"])
    assert res.exit_code == 1 and "error: document 'no-such-doc' is not in the index" in res.output
    res = runner.invoke(app, ["terms", "-h"])
    assert res.exit_code == 0 and "terms [OPTIONS] INDEX DOC_ID" in res.stdout and "<bool>" not in res.stdout
