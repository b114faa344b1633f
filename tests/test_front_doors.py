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
