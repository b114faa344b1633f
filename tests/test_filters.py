"""Metadata in the document store and ``where`` filters applied inside the index scan (issue 7)."""
import json

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from lsr import Retriever
from lsr.cli.app import app
from lsr.errors import QueryError
from lsr.index.filters import compile_where

runner = CliRunner()

COLUMNS = {"year": pa.array([2020, 2018, 2020, None, 2015]),
           "source": pa.array(["pubmed", "arxiv", None, "pubmed", "web"]),
           "tags": pa.array([["a", "b"], ["b"], [], None, ["c"]]),
           "score": pa.array([0.5, 1.5, 2.5, 3.5, None])}


def keep(where):
    return np.flatnonzero(compile_where(where, COLUMNS)).tolist()


def test_where_expressions_on_hand_made_columns():
    assert keep({"year": 2020}) == [0, 2]
    assert keep({"year": {"$gte": 2018, "$lt": 2020}}) == [1]
    assert keep({"year": {"$ne": 2020}}) == [1, 3, 4]  # a missing value is "not equal" (MongoDB)
    assert keep({"source": {"$in": ["pubmed", "web"]}}) == [0, 3, 4]
    assert keep({"source": {"$nin": ["pubmed"]}}) == [1, 2, 4]
    assert keep({"source": {"$contains": "ub"}}) == [0, 3]
    assert keep({"tags": {"$contains": "b"}}) == [0, 1]
    assert keep({"year": {"$exists": False}}) == [3]
    assert keep({"$or": [{"year": 2015}, {"source": "arxiv"}]}) == [1, 4]
    assert keep({"$and": [{"year": 2020}, {"source": "pubmed"}]}) == [0]
    assert keep({"year": 2020, "source": "pubmed"}) == [0]  # keys are ANDed
    assert keep({"$not": {"year": 2020}}) == [1, 3, 4]
    assert keep({"score": {"$gt": 1}}) == [1, 2, 3]  # an int against a float column
    assert keep({}) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("where, message", [
    ({"yeer": 2020}, "unknown field 'yeer' (this index's documents have: score, source, tags, year)"),
    ({"source": {"$gt": 3}}, "'source' holds text values (string); $gt 3 is number"),
    ({"year": {"$in": 2020}}, "'year' $in takes a list"),
    ({"year": {"$near": 1}}, "unknown operator '$near' for 'year'"),
    ({"$xor": []}, "unknown operator '$xor' at the top level"),
    ({"$or": []}, "$or takes a non-empty list of filter dicts"),
    ({"year": {"$lt": None}}, "use {'$exists': False} for a missing value"),
    ({"source": {"$in": ["web", 3]}}, "'source' holds text values (string); $in 3 is number"),
])
def test_bad_filters_are_refused_with_the_reason(where, message):
    with pytest.raises(QueryError, match=None) as e:
        compile_where(where, COLUMNS)
    assert message in str(e.value)


def test_metadata_is_stored_and_returned(fixtures_dir, tmp_path):
    out = tmp_path / "tiny"
    res = runner.invoke(app, ["index", str(fixtures_dir / "tiny_corpus.jsonl"), "-m", "bm25", "--index-type", "exact",
                              "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    r = Retriever.load(out)
    assert sorted(r.metadata_fields) == ["source", "tags", "year"]
    hits = {h.doc_id: h for h in r.search("bones", 4)}
    assert hits["d1"].metadata == {"year": 2020, "tags": ["nutrition", "bones"]}
    assert hits["d3"].metadata == {"year": 2020, "tags": ["bones", "heart"]}
    # fetched by id from the store, in the order asked
    assert [(d["doc_id"], d["title"], d["metadata"]) for d in r.get(["d4", "d2"])] == \
        [("d4", "", {"year": 2015, "source": "review"}), ("d2", "Smoking", {"year": 2018, "tags": ["lungs"]})]
    with pytest.raises(KeyError, match="document 'd9' is not in the index"):
        r.get(["d1", "d9"])
    got = r.search("bones", 4, where={"year": 2020, "tags": {"$contains": "heart"}})
    assert [h.doc_id for h in got] == ["d3"]
    # a filter that keeps nothing gives no hits (not an error); the CLI takes JSON
    assert r.search("bones", 4, where={"year": 1990}) == []
    res = runner.invoke(app, ["search", str(out), "bones", "--json", "--metadata", "year",
                              "--where", '{"tags": {"$contains": "bones"}}'])
    assert res.exit_code == 0, res.output
    cli = json.loads(res.stdout)["hits"]
    assert {h["doc_id"] for h in cli} == {"d1", "d3"} and cli[0]["metadata"]["year"] == 2020
    res = runner.invoke(app, ["search", str(out), "bones", "--where", '{"yeer": 2020}'])
    assert res.exit_code == 1 and "unknown field 'yeer'" in res.stderr
    res = runner.invoke(app, ["search", str(out), "bones", "--where", "year=2020"])
    assert res.exit_code == 1 and "--where 'year=2020': not valid JSON" in res.stderr


def test_hybrid_and_dense_filters(tiny_hybrid):
    out = tiny_hybrid
    for mode in ("hybrid", "dense", "sparse"):
        r = Retriever.load(out, mode=mode)
        unfiltered = [h.doc_id for h in r.search("weak bones and the heart", 4)]
        got = [h.doc_id for h in r.search("weak bones and the heart", 4, where={"year": {"$gte": 2018}})]
        # every list skips d4 (2015); the rest keep their order
        assert "d4" not in got and got == [d for d in unfiltered if d != "d4"][:len(got)], mode
        assert r.search("weak bones", 4, where={"doc_id": "d2"})[0].doc_id == "d2", mode


@pytest.fixture(scope="module")
def cranfield(tmp_path_factory):
    """Cranfield (1,400 abstracts, ir_datasets) with splade-tiny, exact and seismic: its records
    carry real metadata (author; bib: where the paper appeared, with its year)."""
    import ir_datasets

    from conftest import BEIR
    if not BEIR.is_dir():
        pytest.skip("needs the shared data")
    out = tmp_path_factory.mktemp("cran")
    res = runner.invoke(app, ["index", "cranfield", "-m", "splade-tiny", "--index-type", "exact",
                              "-o", str(out / "exact"), "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["index", str(out / "exact" / "vectors"), "-o", str(out / "seismic"), "-q"])
    assert res.exit_code == 0, res.output
    docs = {d.doc_id: d for d in ir_datasets.load("cranfield").docs_iter()}
    queries = [q.text for q in ir_datasets.load("cranfield").queries_iter()]
    return {"exact": out / "exact", "seismic": out / "seismic", "docs": docs, "queries": queries}


def _recall(approx, exact):
    out = []
    for a, e in zip(approx, exact):
        if e:
            out.append(len({h.doc_id for h in a} & {h.doc_id for h in e}) / len(e))
    return float(np.mean(out))


def test_filters_exclude_what_they_should_and_keep_recall(cranfield):
    where = {"bib": {"$contains": "1958"}}  # the 87 papers published in 1958 (6% of the collection)
    docs = cranfield["docs"]
    expected = {i for i, d in docs.items() if "1958" in (d.bib or "")}
    assert len(expected) == 87
    exact, seismic = Retriever.load(cranfield["exact"]), Retriever.load(cranfield["seismic"])
    queries = cranfield["queries"]
    full = exact.batch_search(queries, k=len(docs))  # every matching document, ranked
    filtered = exact.batch_search(queries, k=10, where=where)
    approx = seismic.batch_search(queries, k=10, where=where)
    short_post_filter = 0
    for ranked, got, app_hits in zip(full, filtered, approx):
        assert {h.doc_id for h in got} <= expected and {h.doc_id for h in app_hits} <= expected
        assert all("1958" in h.metadata["bib"] for h in got + app_hits)
        # Exact + filter = the full ranking restricted to the allowed documents, cut at 10:
        # nothing allowed is lost (the filter runs inside the scan, not on a top-k).
        reference = [(h.doc_id, h.score) for h in ranked if h.doc_id in expected][:10]
        assert [h.doc_id for h in got] == [d for d, _ in reference]
        assert np.allclose([h.score for h in got], [s for _, s in reference], atol=1e-5)
        short_post_filter += sum(h.doc_id in expected for h in ranked[:10]) < len(reference)
    # Post-filtering a top 10 would have returned short lists for most queries.
    assert short_post_filter > 0.8 * len(queries)
    # The approximate index keeps its recall on what remains: against exact search of the same
    # documents, as high as its recall without a filter.
    unfiltered = _recall(seismic.batch_search(queries, 10), exact.batch_search(queries, 10))
    with_filter = _recall(approx, filtered)
    assert with_filter >= 0.9 and with_filter >= unfiltered - 0.03, (with_filter, unfiltered)


def test_a_selective_filter_is_scored_exactly(cranfield):
    """At most 2% of the documents allowed: the seismic index scores them all (exact results)."""
    where = {"bib": {"$contains": "1941"}}
    exact, seismic = Retriever.load(cranfield["exact"]), Retriever.load(cranfield["seismic"])
    queries = cranfield["queries"][:50]
    a, e = seismic.batch_search(queries, 3, where=where), exact.batch_search(queries, 3, where=where)
    assert [[h.doc_id for h in x] for x in a] == [[h.doc_id for h in x] for x in e]
    assert sum(len(x) for x in e) > 0


def test_filtered_search_from_eight_threads(cranfield):
    from concurrent.futures import ThreadPoolExecutor
    r = Retriever.load(cranfield["seismic"])
    wheres = [{"bib": {"$contains": str(y)}} for y in (1955, 1956, 1957, 1958)]
    jobs = [(q, w) for q in cranfield["queries"][:10] for w in wheres]
    sequential = [[h.doc_id for h in r.search(q, 10, where=w)] for q, w in jobs]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda job: [h.doc_id for h in r.search(job[0], 10, where=job[1])], jobs))
    assert parallel == sequential


def test_dense_index_filter_matches_brute_force():
    from lsr.index.dense import DenseIndex
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    q = rng.normal(size=(3, 16)).astype(np.float32)
    allowed = rng.random(500) < 0.1
    for dtype in ("float32", "int8"):
        idx = DenseIndex.build(x, dtype)
        docs, scores = idx.search(q, 5, chunk=64, allowed=allowed)
        assert allowed[docs].all()
        s = q @ idx.embeddings(np.arange(500)).T
        s[:, ~allowed] = -np.inf
        assert (docs == np.argsort(-s, axis=1, kind="stable")[:, :5]).all(), dtype


def test_bad_masks_stores_and_options_are_refused_with_the_reason(tiny_hybrid, tmp_path):
    import shutil

    from lsr.errors import IndexError_
    from lsr.index import load_index
    from lsr.index.dense import DenseIndex
    from lsr.index.docs import DocStore
    index = load_index(tiny_hybrid)
    q = Retriever.load(tiny_hybrid)._searcher.encode_queries(["bones"])
    with pytest.raises(QueryError, match=r"allowed must be a bool array of shape \(4,\), got int64 \(4,\)"):
        index.search_numbers(q, 2, allowed=np.ones(4, dtype=np.int64))
    with pytest.raises(QueryError, match=r"allowed must be a bool array of shape \(4,\), got bool \(3,\)"):
        index.search_numbers(q, 2, allowed=np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match=r"allowed has shape \(3,\), the dense index 4 documents"):
        DenseIndex.load(tiny_hybrid / "dense").search(np.zeros(384, np.float32), 2, allowed=np.ones(3, bool))
    # a metadata file overwritten in place (same size, so the manifest's size check passes)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_hybrid, broken)
    meta = broken / "metadata.parquet"
    meta.write_bytes(b"\0" * meta.stat().st_size)
    with pytest.raises(IndexError_, match=f"{broken}: unreadable document store"):
        DocStore.load(broken)
    # the CLI checks --cite and --where before it loads the generator
    res = runner.invoke(app, ["ask", str(tiny_hybrid), "bones", "--cite", "always"])
    assert res.exit_code == 1 and "--cite 'always'; choose from post-hoc, generator" in res.output
    res = runner.invoke(app, ["ask", str(tiny_hybrid), "bones", "--where", '{"yeer": 1}'])
    assert res.exit_code == 1 and "unknown field 'yeer'" in res.output
