import numpy as np
import pytest
import scipy.sparse as sp

from lsr.errors import IndexError_, QueryError
from lsr.index import ExactIndex, load_index
from lsr.sparse import SparseVectors, Vocabulary

VOCAB = Vocabulary.from_tokens(["a", "b", "c", "d"])
# doc 0: a=1, b=2 ; doc 1: b=1, c=3 ; doc 2: a=2, d=1 ; doc 3: (empty)
DOCS = SparseVectors.from_dicts([{"a": 1, "b": 2}, {"b": 1, "c": 3}, {"a": 2, "d": 1}, {}], VOCAB)
IDS = ["d0", "d1", "d2", "d3"]


def test_hand_computed_scores():
    idx = ExactIndex.build(DOCS, IDS)
    q = SparseVectors.from_dicts([{"a": 1.0, "b": 0.5}, {"c": 2.0, "d": 1.0}], VOCAB)
    ids, scores = idx.batch_search(q, k=3)
    # q0: d0 = 1*1 + 0.5*2 = 2.0 ; d1 = 0.5*1 = 0.5 ; d2 = 1*2 = 2.0  -> tie d0/d2, lower number first
    assert ids[0].tolist() == ["d0", "d2", "d1"]
    np.testing.assert_allclose(scores[0], [2.0, 2.0, 0.5])
    # q1: d1 = 2*3 = 6 ; d2 = 1*1 = 1 ; only two documents match -> padded
    assert ids[1].tolist() == ["d1", "d2", ""]
    assert scores[1][:2].tolist() == [6.0, 1.0] and scores[1][2] == -np.inf


def test_search_single_and_empty_query():
    idx = ExactIndex.build(DOCS, IDS)
    ids, scores = idx.search(SparseVectors.from_dicts([{"d": 1}], VOCAB), k=2)
    assert ids.tolist() == ["d2", ""]
    ids, scores = idx.search(SparseVectors.from_dicts([{}], VOCAB), k=2)
    assert ids.tolist() == ["", ""]


def test_matches_scipy_brute_force():
    rng = np.random.default_rng(3)
    d = sp.random(3000, 500, density=0.03, format="csr", random_state=rng, dtype=np.float32)
    q = sp.random(40, 500, density=0.03, format="csr", random_state=rng, dtype=np.float32)
    idx = ExactIndex.build(d)
    docs, scores = idx.search_numbers(q, k=20, threads=2)
    dense = (q @ d.T).toarray()
    for i in range(q.shape[0]):
        positive = np.flatnonzero(dense[i] > 0)
        order = positive[np.lexsort((positive, -dense[i][positive]))][:20]
        assert docs[i][:len(order)].tolist() == order.tolist()
        np.testing.assert_allclose(scores[i][:len(order)], dense[i][order], rtol=1e-5)


def test_query_dimension_mismatch_refused():
    idx = ExactIndex.build(sp.csr_matrix(np.array([[1.0, 0, 0]], dtype=np.float32)))
    with pytest.raises(QueryError, match="dimension 5, the index has 3"):
        idx.batch_search(sp.csr_matrix(np.ones((1, 5), dtype=np.float32)), k=1)


def test_vocabulary_mismatch_refused():
    idx = ExactIndex.build(DOCS, IDS)
    other = Vocabulary.from_tokens(["w", "x", "y", "z"])
    with pytest.raises(QueryError, match="different vocabulary"):
        idx.batch_search(SparseVectors.from_dicts([{"w": 1}], other), k=1)


def test_save_load_round_trip(tmp_path):
    idx = ExactIndex.build(DOCS, IDS)
    idx.save(tmp_path / "i", meta={"encoder": {"name": "x"}})
    back = load_index(tmp_path / "i")
    assert isinstance(back, ExactIndex) and back.manifest["encoder"] == {"name": "x"}
    assert back.manifest["counts"] == {"docs": 4, "postings": 6}
    q = SparseVectors.from_dicts([{"a": 1.0, "c": 1.0}], VOCAB)
    for a, b in zip(idx.batch_search(q, 4), back.batch_search(q, 4)):
        assert np.array_equal(a, b)
    assert isinstance(back.post_docs, np.memmap)


def test_refuses_to_overwrite(tmp_path):
    ExactIndex.build(DOCS, IDS).save(tmp_path / "i")
    with pytest.raises(IndexError_, match="already exists"):
        ExactIndex.build(DOCS, IDS).save(tmp_path / "i")
    ExactIndex.build(DOCS[:2], IDS[:2]).save(tmp_path / "i", overwrite=True)
    assert len(load_index(tmp_path / "i")) == 2


def test_interrupted_build_leaves_nothing_loadable(tmp_path):
    def crash(_tmp):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        ExactIndex.build(DOCS, IDS).save(tmp_path / "i", extra_writer=crash)
    assert not (tmp_path / "i").exists()
    assert list(tmp_path.iterdir()) == []


def test_missing_file_and_corrupt_manifest(tmp_path):
    # checksum, truncation and format version: tests/test_index_common.py
    ExactIndex.build(DOCS, IDS).save(tmp_path / "i")
    (tmp_path / "i" / "post_docs.npy").unlink()
    with pytest.raises(IndexError_, match="post_docs.npy listed in the manifest is missing"):
        load_index(tmp_path / "i")
    (tmp_path / "i" / "manifest.json").write_text("{not json")
    with pytest.raises(IndexError_, match="corrupt manifest"):
        load_index(tmp_path / "i")


def test_missing_and_non_index(tmp_path):
    with pytest.raises(IndexError_, match="index not found"):
        load_index(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexError_, match="not an lsr index \\(no manifest.json"):
        load_index(tmp_path / "empty")


def test_duplicate_doc_ids_rejected():
    from lsr.errors import DataError
    with pytest.raises(DataError, match="duplicate document id 'd0'"):
        ExactIndex.build(DOCS, ["d0", "d1", "d0", "d3"])


def test_doc_ids_take_every_path_agrees():
    """A take goes through the cached id table (small collections), the Arrow buffers (small takes from
    large collections) or Arrow's own take: same ids for every array layout, -1 giving ''."""
    import pyarrow as pa

    from lsr.index.docs import DocIds
    words = [f"doc-{i}-é" if i % 3 else f"{i}" for i in range(3000)]
    layouts = (pa.array(words, pa.string()), pa.array(["pad"] + words, pa.large_string()).slice(1),
               pa.chunked_array([pa.array(words[:1000]), pa.array(words[1000:])]))
    small = np.random.default_rng(0).integers(-1, 3000, size=(3, 10))
    big = np.random.default_rng(1).integers(-1, 3000, size=DocIds.SMALL_TAKE + 5)
    for arr in layouts:
        for table_max in (DocIds.TABLE_MAX, 0):  # the id table, then the buffer / Arrow paths
            ids = DocIds(arr)
            ids.TABLE_MAX = table_max
            got = ids.take(small)
            assert got.shape == (3, 10)
            assert got.tolist() == [[words[n] if n >= 0 else "" for n in row] for row in small.tolist()]
            assert ids.take(big).tolist() == [words[n] if n >= 0 else "" for n in big.tolist()]
