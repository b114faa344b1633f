"""Values the storage can hold, and documents that match nothing (issue 20, "representable values", "edges").

The seismic forward index stores float16 unless a weight does not fit
(> 65504 becomes inf, < 2**-24 becomes 0): unset, the build picks f32 and
records why; asked for f16, it refuses naming the document, term and weight.
NaN/inf weights never reach an index. A document sharing no term with the
query is never a hit (the kernels pad with -1 / -inf), on every search path.
"""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from lsr.encoders.bm25 import BM25Encoder
from lsr.errors import DataError, LsrError, ParameterError
from lsr.index import ExactIndex, SeismicIndex
from lsr.index.params import ParameterValueError, SeismicSearchParams, check_values
from lsr.index.seismic_build import choose_forward_dtype
from lsr.sparse import SparseVectors, VectorWriter, Vocabulary, read_vectors

VOCAB = Vocabulary.from_tokens([f"t{i}" for i in range(60)])
IDS = [f"doc-{i}" for i in range(200)]


def _docs(scale=1.0, seed=0) -> SparseVectors:
    m = sp.random(200, 60, density=0.15, format="csr", random_state=seed, dtype=np.float32)
    m.data = (m.data + 0.01) * scale
    return SparseVectors.from_scipy(m, VOCAB)


def _queries(seed=1) -> SparseVectors:
    return SparseVectors.from_scipy(sp.random(6, 60, density=0.2, format="csr", random_state=seed,
                                              dtype=np.float32), VOCAB)


EVERYTHING = dict(n_postings=0, query_cut=10_000, heap_factor=0.0)  # no pruning, no skipping: exact results


# ------------------------------------------------------------------ float16 range
def test_weights_that_fit_are_stored_as_float16_by_default():
    index = SeismicIndex.build(_docs(), IDS, **EVERYTHING)
    assert index.params["forward_dtype"] == "f16" and len(index.fwd_codes) == index.forward_vectors().nnz
    assert index.params["forward_dtype_reason"] == "auto: every weight is representable in float16"
    assert SeismicIndex.build(_docs(), IDS, forward_dtype="f16").params["forward_dtype_reason"] == "given"


def test_overflowing_weights_pick_float32_and_rank_as_the_exact_index(caplog):
    docs = _docs(scale=1e5)  # weights up to ~1e5: float16 would turn most into inf
    assert docs.values.max() > 65504
    with caplog.at_level("INFO", logger="lsr.index.seismic_build"):
        index = SeismicIndex.build(docs, IDS, **EVERYTHING)
    assert index.params["forward_dtype"] == "f32" and len(index.fwd_codes) == 0
    reason = index.params["forward_dtype_reason"]
    assert reason.startswith("auto: float16 cannot store weight ") and "above float16's largest value, 65504" in reason
    assert "forward index in float32" in caplog.text
    got_docs, got_scores = index.search_numbers(_queries(), 10)
    want_docs, want_scores = ExactIndex.build(docs, IDS).search_numbers(_queries(), 10)
    assert np.isfinite(got_scores[got_docs >= 0]).all() and got_scores.max() > 65504
    assert np.array_equal(got_docs, want_docs)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5)
    # saved and loaded, the choice and its reason stay with the index
    assert SeismicIndex.build(docs, IDS, **EVERYTHING, forward_dtype="auto").params == index.params


def test_explicit_float16_refuses_an_overflow_naming_row_doc_term_and_fix():
    docs = SparseVectors([0, 1, 3], [4, 2, 7], [1.0, 0.5, 70000.0], VOCAB)
    with pytest.raises(ParameterError, match=r"forward_dtype='f16' cannot store weight 70000\.0 of term 't7' in "
                                             r"document 'b' \(row 1\): above float16's largest value, 65504: it "
                                             r"would become inf; use forward_dtype='f32' \(or leave forward_dtype "
                                             r"unset: the build then picks f32 itself\), or rescale the vectors"):
        SeismicIndex.build(docs, ["a", "b"], forward_dtype="f16")
    assert issubclass(ParameterValueError, LsrError) and issubclass(ParameterValueError, ValueError)
    # 65504 itself fits; f32 asked for is never second-guessed
    assert choose_forward_dtype(SparseVectors([0, 1], [0], [65504.0], VOCAB), "f16") == ("f16", "given")
    assert choose_forward_dtype(docs, "f32") == ("f32", "given")


def test_underflowing_weights_pick_float32_and_keep_the_document_findable():
    # document 'tiny' has one term, weight 1e-8: float16 rounds it to 0 and the document could never be found
    docs = SparseVectors([0, 2, 3], [0, 1, 2], [1.0, 2.0, 1e-8], VOCAB)
    index = SeismicIndex.build(docs, ["big", "tiny"], **EVERYTHING)
    assert index.params["forward_dtype"] == "f32"
    assert "weight 1e-08 of term 't2' in document 'tiny' (row 1): below float16's smallest nonzero value" \
        in index.params["forward_dtype_reason"]
    ids, scores = index.search(SparseVectors([0, 1], [2], [1.0], VOCAB), 2)
    assert list(ids) == ["tiny", ""] and scores[0] == pytest.approx(1e-8)
    with pytest.raises(ValueError, match=r"weight 1e-08 of term 't2' in document 'tiny' \(row 1\): below "
                                         r"float16's smallest nonzero value, 2\*\*-24 \(~6e-8\): it would become 0"):
        SeismicIndex.build(docs, ["big", "tiny"], forward_dtype="f16")
    # 2**-24 itself is float16's smallest subnormal: kept as f16
    assert choose_forward_dtype(SparseVectors([0, 1], [0], [2.0 ** -24], VOCAB), None)[0] == "f16"


def test_summary_quantisation_stays_finite_for_large_weights():
    index = SeismicIndex.build(_docs(scale=1e30), IDS, n_postings=0)
    assert np.isfinite(index.sum_min).all() and np.isfinite(index.sum_scale).all()


# ------------------------------------------------------------------ NaN / inf input
@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_nan_and_inf_weights_are_refused_naming_the_row(tmp_path):
    with pytest.raises(DataError, match=r"non-finite weight nan in row 1, term 't3'"):
        SparseVectors([0, 1, 2], [0, 3], [1.0, np.nan], VOCAB)
    inf = sp.csr_matrix(np.array([[0, 1.0], [np.inf, 0], [0, 0]], dtype=np.float32))
    for cls in (SeismicIndex, ExactIndex):
        with pytest.raises(ValueError, match=r"non-finite weight inf in row 1, term '\[0\]'"):
            cls.build(inf)
    with pytest.raises(ValueError, match="non-finite weight inf"):  # float64 beyond float32's range
        SeismicIndex.build(sp.csr_matrix(np.array([[1e300]])))
    # from an encoder, at write time: the file and the document are named
    writer = VectorWriter(tmp_path / "v.parquet", VOCAB)
    writer.write(["a"], SparseVectors([0, 1], [0], [1.0], VOCAB))
    bad = SparseVectors([0, 1, 2], [0, 5], [1.0, 2.0], VOCAB)
    bad.values[1] = np.inf
    with pytest.raises(DataError, match=r"v\.parquet: non-finite weight inf in row 2, term 't5' \(document 'c'\)"):
        writer.write(["b", "c"], bad)


def test_nan_in_a_vector_file_is_refused_with_its_absolute_row_and_id(tmp_path):
    path = tmp_path / "v.parquet"
    writer = VectorWriter(path, VOCAB)
    writer.write(["a", "b", "c"], SparseVectors([0, 1, 2, 3], [0, 1, 2], [1.0, 2.0, 3.0], VOCAB))
    writer.close()
    table = pq.read_table(path)
    values = pa.array([[1.0], [2.0], [float("nan")]], type=table.schema.field("values").type)
    pq.write_table(table.set_column(table.schema.get_field_index("values"), "values", values), path)
    with pytest.raises(DataError, match=r"non-finite weight nan in row 2, term 't2' \(document 'c'\)"):
        read_vectors(path)


# ------------------------------------------------------------- empty documents
def _with_empty() -> SparseVectors:
    """Documents 'a', 'empty', 'zero', 'c': 'empty' has no term; 'zero' has term 5 with weight 0 only."""
    return SparseVectors([0, 2, 2, 3, 5], [0, 1, 5, 2, 3], [1.0, 2.0, 0.0, 1.0, 3.0], VOCAB)


DOC_IDS = ["a", "empty", "zero", "c"]
UNRELATED = SparseVectors([0, 1, 2], [7, 5], [1.0, 1.0], VOCAB)  # term 7: in no document; term 5: weight 0 only


@pytest.mark.parametrize("build", [
    lambda v: ExactIndex.build(v, DOC_IDS),
    lambda v: SeismicIndex.build(v, DOC_IDS),
    lambda v: SeismicIndex.build(v, DOC_IDS, forward_dtype="f32", knn=2),
], ids=["exact", "seismic", "seismic-f32-knn"])
def test_a_document_sharing_no_term_is_never_a_hit(build):
    index = build(_with_empty())
    index.FLAT_FILTER_FRACTION = 0.5  # seismic: a filter keeping 1 of 4 documents takes the flat scan
    paths = {"search": lambda **kw: index.search(UNRELATED[:1], 3, **kw),
             "batch threads=1": lambda **kw: index.batch_search(UNRELATED, 3, threads=1, **kw),
             "batch threads=2": lambda **kw: index.batch_search(UNRELATED, 3, threads=2, **kw)}
    masks = {"no filter": None, "all allowed": np.ones(4, bool),
             "one allowed (flat scan)": np.array([False, True, False, False])}
    for name, call in paths.items():
        for mask_name, mask in masks.items():
            kw = {} if mask is None else {"allowed": mask}
            ids, scores = call(**kw)
            assert (np.asarray(ids) == "").all() and np.isneginf(scores).all(), (name, mask_name)
    # a related query finds its documents, and only them: the empty ones pad nothing in
    ids, scores = index.batch_search(SparseVectors([0, 1, 2], [0, 3], [1.0, 1.0], VOCAB), 4, threads=2)
    assert list(ids[0]) == ["a", "", "", ""] and list(ids[1]) == ["c", "", "", ""]
    assert np.isneginf(scores[:, 1:]).all()


def test_clear_rows_empties_blank_texts_vectors():
    v = SparseVectors([0, 2, 3, 5], [0, 1, 4, 2, 3], [1.0, 2.0, 3.0, 4.0, 5.0], VOCAB)
    cleared = v.clear_rows([1])
    assert list(cleared.row_nnz()) == [2, 0, 2] and list(cleared.values) == [1.0, 2.0, 4.0, 5.0]
    assert cleared.validate() is cleared and v.clear_rows([]) is v
    with pytest.raises(IndexError):
        v.clear_rows([3])


# ------------------------------------------------------------------------ BM25
def test_empty_bm25_corpus_is_a_data_error_naming_it():
    with pytest.raises(DataError, match="^beir/empty: no documents; BM25 needs at least one document"):
        BM25Encoder.fit([], corpus="beir/empty")
    with pytest.raises(DataError, match="^corpus.jsonl: none of its 2 documents has an indexable term"):
        BM25Encoder.fit(["", "the of a"], corpus="corpus.jsonl")


def test_bm25_query_of_stop_words_or_unknown_terms_finds_nothing():
    texts = ["vitamin deficiency weakens bones", "smoking damages the lungs", ""]
    enc = BM25Encoder.fit(texts, stemmer=None)
    index = ExactIndex.build(enc.encode_documents(texts), ["d1", "d2", "blank"])
    q = enc.encode_queries(["the of and", "zzzqx unknownword", "bones"])
    assert list(q.row_nnz()) == [0, 0, 1]
    ids, scores = index.batch_search(q, 3)
    assert (ids[:2] == "").all() and np.isneginf(scores[:2]).all() and list(ids[2]) == ["d1", "", ""]


# ----------------------------------------------------------- search parameters
@pytest.mark.parametrize("given,message", [
    ({"query_cut": 0}, "query_cut must be >= 1, got 0"),
    ({"query_cut": 2.5}, "query_cut must be an integer >= 1, got 2.5"),
    ({"query_cut": True}, "query_cut must be an integer >= 1, got True"),
    ({"heap_factor": float("nan")}, "heap_factor must be a finite number >= 0, got nan"),
    ({"heap_factor": -1}, "heap_factor must be a finite number >= 0, got -1.0"),
    ({"heap_factor": "0.5"}, "heap_factor must be a finite number >= 0, got '0.5'"),
    ({"knn": -1}, "knn must be >= 0, got -1"),
])
def test_search_parameter_values_are_range_checked(given, message):
    index = SeismicIndex.build(_docs(), IDS, knn=2)
    with pytest.raises(ParameterValueError, match=f"^{message.replace('.', '[.]')}$"):
        index.search_numbers(_queries(), 5, **given)
    where = "idx/manifest.json"
    with pytest.raises(ParameterValueError, match=f"^{where}: stored search default {message.replace('.', '[.]')} "
                                                  r"\(the manifest is damaged or was edited\); rebuild the index$"):
        check_values(given, SeismicSearchParams, where=where)


def test_search_parameter_edge_values_are_accepted():
    check_values({"query_cut": np.int64(1), "heap_factor": 0, "knn": 0, "unrelated": "x"}, SeismicSearchParams)
    check_values({"heap_factor": 1.5, "query_cut": None}, SeismicSearchParams)  # > 1 skips more; None: default
