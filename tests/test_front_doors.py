"""The three search front doors (Searcher, HybridSearcher, Retriever) share one convention:
``search`` -> list of Hit, ``batch_search`` -> a list of such lists, ``batch_search_ids`` -> arrays;
typed search parameters reach each of them and a name the index type does not take is refused."""
import numpy as np
import pytest

from lsr.errors import ParameterError
from lsr.retrieval import Hit, HybridConfig, HybridSearcher, Retriever, Searcher

QUERIES = ["blood glucose in diabetic children", "kidney disease and hypertension", "cancer of the breast"]


@pytest.mark.parametrize("kind", ["exact", "seismic"])
def test_one_return_convention_on_every_front_door(med_indexes, kind):
    doors = {"searcher": Searcher(med_indexes[kind]), "retriever": Retriever.load(med_indexes[kind]),
             "hybrid": HybridSearcher(med_indexes[kind], HybridConfig(lists=("sparse",)))}
    for name, door in doors.items():
        one = door.search(QUERIES[0], 5)
        assert isinstance(one, list) and all(isinstance(h, Hit) for h in one) and len(one) == 5, name
        batch = door.batch_search(QUERIES, 5)
        assert len(batch) == 3 and [h.doc_id for h in batch[0]] == [h.doc_id for h in one], name
        ids, scores = door.batch_search_ids(QUERIES, 5)
        assert ids.shape == scores.shape == (3, 5), name
        assert [list(row) for row in ids] == [[h.doc_id for h in hits] for hits in batch], name
    # a sparse-only fusion ranks as the sparse list does (min-max keeps the order)
    assert [h.doc_id for h in doors["hybrid"].search(QUERIES[1], 10)] == \
        [h.doc_id for h in doors["searcher"].search(QUERIES[1], 10)]


def test_search_parameters_reach_every_front_door(med_indexes):
    # query_cut=1 visits one inverted list, so far fewer documents match than at the index's default (10):
    # how many hits come back at a large k shows whether the parameter was applied.
    seismic = med_indexes["seismic"]
    k = 1033
    default = Searcher(seismic).search(QUERIES[2], k)
    want = Searcher(seismic).search(QUERIES[2], k, query_cut=1, heap_factor=0.0)
    assert 0 < len(want) < len(default)
    doors = {"retriever": Retriever.load(seismic, query_cut=1, heap_factor=0.0),
             "hybrid": HybridSearcher(seismic, HybridConfig(lists=("sparse",)), query_cut=1, heap_factor=0.0)}
    for name, door in doors.items():
        got = door.search(QUERIES[2], k)
        assert [h.doc_id for h in got] == [h.doc_id for h in want], name


def test_unknown_search_parameters_are_refused_everywhere(med_indexes, tiny_hybrid):
    seismic, exact = med_indexes["seismic"], med_indexes["exact"]
    with pytest.raises(ParameterError, match="'quey_cut'.*did you mean 'query_cut'"):
        Retriever.load(seismic, quey_cut=3)
    with pytest.raises(ParameterError, match="unknown exact search parameter 'query_cut'"):
        Retriever.load(exact, query_cut=3)
    with pytest.raises(ParameterError, match="unknown seismic search parameter 'heap_facter'"):
        Searcher(seismic).search(QUERIES[0], 3, heap_facter=0.1)
    with pytest.raises(ParameterError, match="unknown exact search parameter 'query_cut'"):
        Searcher(exact).batch_search(QUERIES, 3, query_cut=3)
    with pytest.raises(ParameterError, match="unknown exact search parameter 'knn'"):
        HybridSearcher(tiny_hybrid, knn=2)  # tiny_hybrid's sparse list is an exact index
    with pytest.raises(ParameterError, match="apply to the sparse list, which this hybrid search does not fuse"):
        HybridSearcher(seismic, HybridConfig(lists=("dense",)), query_cut=2)  # refused before any list opens


def test_hybrid_hits_carry_each_lists_raw_score(tiny_hybrid):
    hybrid = HybridSearcher(tiny_hybrid, HybridConfig(lists=("sparse", "dense"), weights=(0.5, 0.5)))
    sparse = {h.doc_id: h.score for h in Searcher(tiny_hybrid).search("weak bones", 4)}
    hits = hybrid.search("weak bones", 4)
    assert all(set(h.list_scores) == {"sparse", "dense"} for h in hits)
    for h in hits:
        if h.list_scores["sparse"] is not None:  # the raw dot product, not the normalised one
            assert h.list_scores["sparse"] == pytest.approx(sparse[h.doc_id], rel=1e-5)
        assert h.list_scores["dense"] is not None and -1.0 <= h.list_scores["dense"] <= 1.0
    # fused scores are min-max combinations: in [0, 1], while raw sparse scores are not
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    assert max(v for h in hits if (v := h.list_scores["sparse"]) is not None) > 1.0


def test_hit_json_has_the_same_keys_every_time(tiny_hybrid):
    hits = Retriever.load(tiny_hybrid).search("weak bones", 4)
    plain = [h.to_dict() for h in hits]
    assert all(list(d) == ["doc_id", "score", "title"] for d in plain)
    full = [h.to_dict(text=True, metadata=True) for h in hits]
    assert all(list(d) == ["doc_id", "score", "title", "text", "metadata"] for d in full)
    assert Hit("x", 1.0).to_dict() == {"doc_id": "x", "score": 1.0, "title": None}
    hybrid = Retriever.load(tiny_hybrid, mode="hybrid").search("weak bones", 2)
    assert all(list(h.to_dict()) == ["doc_id", "score", "title", "list_scores"] for h in hybrid)
    assert np.isfinite([h.score for h in hybrid]).all()


def test_nothing_to_fuse_and_mismatched_modes_are_refused(med_indexes, tiny_hybrid):
    from typer.testing import CliRunner

    from lsr.cli.app import app
    from lsr.errors import IndexError_
    with pytest.raises(IndexError_, match="no dense or BM25 list to fuse"):
        Retriever.load(med_indexes["exact"], mode="hybrid")
    with pytest.raises(IndexError_, match="no dense or BM25 list to fuse"):  # the mechanism both go through
        HybridSearcher(med_indexes["exact"])
    res = CliRunner().invoke(app, ["search", str(med_indexes["exact"]), "blood glucose", "--hybrid"])
    assert res.exit_code == 1 and "no dense or BM25 list to fuse" in res.stderr
    with pytest.raises(ValueError, match="config applies to mode='hybrid', not mode='dense'"):
        Retriever.load(tiny_hybrid, mode="dense", config=HybridConfig(lists=("sparse", "dense")))
    assert Retriever.load(tiny_hybrid, config=HybridConfig(lists=("sparse", "dense"))).mode == "hybrid"


def test_one_list_keeps_its_raw_scores(tiny_hybrid):
    # nothing is fused: a dense-only search scores by inner product, not a min-max 1.0 for the top hit
    from lsr.encoders import DenseEncoder
    from lsr.index.dense import DenseIndex
    hits = Retriever.load(tiny_hybrid, mode="dense").search("lung damage from cigarettes", 3)
    index = DenseIndex.load(tiny_hybrid / "dense")
    docs, scores = index.search(DenseEncoder(index.model).encode(["lung damage from cigarettes"]), 3)
    assert [h.score for h in hits] == pytest.approx(scores[0].tolist(), rel=1e-6)
    assert hits[0].score < 1.0 and all(h.list_scores == {"dense": h.score} for h in hits)


def test_a_string_is_not_a_batch(med_indexes):
    from lsr.errors import QueryError
    for door in (Searcher(med_indexes["exact"]), HybridSearcher(med_indexes["exact"], HybridConfig(lists=("sparse",)))):
        with pytest.raises(QueryError, match="takes a list of queries"):
            door.batch_search("weak bones", 3)
        with pytest.raises(QueryError, match="k must be an integer >= 1"):
            door.search("weak bones", 0)


def test_build_options_that_cannot_apply_are_refused_before_any_work(tmp_path, fixtures_dir):
    from lsr.retrieval import build_index
    corpus = fixtures_dir / "tiny_corpus.jsonl"
    cases = [(dict(model="bm25", max_length=3), "max_length cannot apply: 'bm25' has no neural model"),
             (dict(model="bm25", dense_dtype="int8"), "dense_dtype .* applies to the dense list"),
             (dict(model="splade-tiny", index_type="exact", params={"knn": 3}), "unknown exact build parameter 'knn'")]
    for i, (kwargs, message) in enumerate(cases):
        out = tmp_path / f"idx{i}"
        with pytest.raises(ParameterError, match=message):
            build_index(corpus, output=out, progress=False, **kwargs)
        assert not out.exists() and not (tmp_path / f"idx{i}.partial").exists()  # refused before encoding


def test_search_run_and_json_are_one_or_the_other(med_indexes, tmp_path):
    from typer.testing import CliRunner

    from lsr.cli.app import app
    queries = tmp_path / "q.tsv"
    queries.write_text("1\tblood glucose\n")
    res = CliRunner().invoke(app, ["search", str(med_indexes["exact"]), "--queries", str(queries),
                                   "--run", str(tmp_path / "run.txt"), "--json"])
    assert res.exit_code == 2 and "choose one" in res.output and not (tmp_path / "run.txt").exists()


def test_options_fixed_at_encoding_time_are_refused_for_an_encoded_folder(med_indexes, tmp_path):
    from lsr.retrieval import build_index
    vectors = med_indexes["exact"] / "vectors"  # a folder written by the encoder (encode.json, shards)
    with pytest.raises(ParameterError, match=r"max_length, split cannot apply: .*vectors is already encoded"):
        build_index(vectors, None, tmp_path / "idx", max_length=64, split="test", progress=False)
    assert not (tmp_path / "idx").exists()


def test_tune_seismic_refuses_no_queries_and_an_empty_sample(med_indexes):
    from lsr.errors import DataError, IndexError_
    from lsr.retrieval.tune import tune_seismic
    with pytest.raises(DataError, match="no queries in the given queries"):
        tune_seismic(med_indexes["seismic"], ["  "], store=False)
    with pytest.raises(DataError, match="sample must be >= 1, got 0"):
        tune_seismic(med_indexes["seismic"], ["blood glucose"], sample=0, store=False)
    with pytest.raises(IndexError_, match="is an 'exact' index; tune applies to seismic indexes"):
        tune_seismic(med_indexes["exact"], ["blood glucose"], store=False)
