"""Index-type parameters: every front door refuses a name its index type does not take."""
import inspect
from dataclasses import FrozenInstanceError, fields

import numpy as np
import pytest
import scipy.sparse as sp

from lsr.errors import LsrError, ParameterError
from lsr.index import INDEX_TYPES, ExactIndex, SeismicIndex
from lsr.index.params import NoParams, SeismicSearchParams
from lsr.sparse import as_sparse_vectors

DOCS = sp.random(300, 120, density=0.08, format="csr", random_state=3, dtype=np.float32)
QUERIES = as_sparse_vectors(sp.random(4, 120, density=0.08, format="csr", random_state=4, dtype=np.float32))


@pytest.fixture(scope="module")
def seismic():
    return SeismicIndex.build(DOCS, knn=2)


@pytest.fixture(scope="module")
def exact():
    return ExactIndex.build(DOCS)


def _every_search(index, **params):
    """The search front doors, each called with ``params``."""
    return [lambda: index.search(QUERIES[:1], 5, **params),
            lambda: index.search(QUERIES[:1].to_scipy(), 5, **params),  # not the seismic fast path's input
            lambda: index.batch_search(QUERIES, 5, **params),
            lambda: index.search_numbers(QUERIES, 5, **params),
            lambda: index.search_numbers(QUERIES, 5, threads=2, **params)]


def test_seismic_search_typo_refused_everywhere(seismic):
    for call in _every_search(seismic, heap_facter=0.1):
        with pytest.raises(ParameterError) as err:
            call()
        assert str(err.value) == ("unknown seismic search parameter 'heap_facter' "
                                  "(it takes query_cut, heap_factor, knn); did you mean 'heap_factor'?")
    assert issubclass(ParameterError, LsrError) and issubclass(ParameterError, TypeError)


def test_seismic_fast_path_refuses_typos_and_keeps_its_answers(seismic):
    """search() on one SparseVectors row skips search_numbers; a typo'd keyword must not slip through it."""
    with pytest.raises(ParameterError, match="'query_cutt'.*did you mean 'query_cut'"):
        seismic.search(QUERIES[:1], 5, query_cutt=3)
    with pytest.raises(ParameterError, match="'heap_facter'"):
        seismic.search(QUERIES[:1], 5, heap_factor=0.5, heap_facter=0.5)
    ids, scores = seismic.search(QUERIES[:1], 5, query_cut=3, heap_factor=0.5, knn=1)
    batch_ids, batch_scores = seismic.batch_search(QUERIES[:1], 5, threads=1, query_cut=3, heap_factor=0.5, knn=1)
    assert list(ids) == list(batch_ids[0]) and np.array_equal(scores, batch_scores[0])


def test_exact_search_takes_no_parameters(exact):
    for call in _every_search(exact, query_cut=3):
        with pytest.raises(ParameterError) as err:
            call()
        assert str(err.value) == "unknown exact search parameter 'query_cut' (it takes none)"
    # the common arguments are not index-type parameters
    allowed = np.zeros(len(exact), dtype=bool)
    allowed[:50] = True
    docs, _ = exact.search_numbers(QUERIES, 5, threads=1, allowed=allowed)
    assert ((docs >= 0) & (docs < 50) | (docs == -1)).all()


def test_parameters_checked_before_anything_else(seismic, exact):
    """A bad name is reported even when k or the query is wrong too: it is the first thing checked."""
    wrong_width = sp.csr_matrix((1, 121), dtype=np.float32)
    for index, name in ((seismic, "heap_facter"), (exact, "query_cut")):
        with pytest.raises(ParameterError, match=name):
            index.search_numbers(wrong_width, 0, **{name: 1})


def test_build_refuses_unknown_names():
    with pytest.raises(ParameterError) as err:
        ExactIndex.build(DOCS, knn=3)
    assert str(err.value) == "unknown exact build parameter 'knn' (it takes none)"
    assert len(ExactIndex.build(DOCS, progress=True)) == DOCS.shape[0]  # every build takes progress
    with pytest.raises(ParameterError) as err:
        SeismicIndex.build(DOCS, n_posting=100)
    message = str(err.value)
    assert message.startswith("unknown seismic build parameter 'n_posting' (it takes n_postings, max_fraction, ")
    assert message.endswith("did you mean 'n_postings'?")
    for name in ("knn_blocks", "query_cut", "heap_factor"):
        assert name in message


def test_parameters_checked_without_an_index():
    """Upper layers validate against an index type (e.g. before encoding a corpus)."""
    assert SeismicIndex.SEARCH_PARAMS is SeismicSearchParams and ExactIndex.SEARCH_PARAMS is NoParams
    assert ExactIndex.BUILD_PARAMS is NoParams
    SeismicIndex.check_search_params({"query_cut": 3, "knn": 0})
    SeismicIndex.check_build_params({"n_postings": 100, "knn": 4, "query_cut": 5})
    with pytest.raises(ParameterError, match="unknown seismic search parameter 'n_postings'"):
        SeismicIndex.check_search_params({"n_postings": 100})  # a build parameter, not a search one
    with pytest.raises(ParameterError, match="unknown exact build parameter 'knn'"):
        INDEX_TYPES["exact"].check_build_params({"knn": 4})


def test_seismic_build_params_are_the_documented_defaults():
    from lsr.index.seismic import BUILD_DEFAULTS, SEARCH_DEFAULTS, default_build_params
    build = {f.name: f.default for f in fields(SeismicIndex.BUILD_PARAMS)}
    assert build == {**BUILD_DEFAULTS, **SEARCH_DEFAULTS}
    assert SEARCH_DEFAULTS == {"query_cut": 10, "heap_factor": 0.8}
    index = SeismicIndex.build(DOCS)
    # forward_dtype unset (auto) is settled by the build and recorded with its reason (tests/test_values.py)
    assert index.params == {**BUILD_DEFAULTS, **SEARCH_DEFAULTS, **default_build_params(DOCS.shape[0]),
                            "forward_dtype": "f16", "forward_dtype_reason": "auto: every weight is representable in float16"}
    with pytest.raises(FrozenInstanceError):
        SeismicIndex.BUILD_PARAMS().seed = 1


@pytest.mark.parametrize("index_type", list(INDEX_TYPES.values()))
def test_search_takes_exactly_its_declared_parameters(index_type):
    """No index's _search drops keywords, and each accepts every field of its SEARCH_PARAMS."""
    signature = inspect.signature(index_type._search).parameters
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values())
    declared = [f.name for f in fields(index_type.SEARCH_PARAMS)]
    assert set(declared) | {"allowed"} == set(signature) - {"self", "q", "k", "threads", "scores", "docs"}


def test_seismic_build_is_deterministic_per_seed():
    """The build's phases (seismic_build.py) give the same arrays for the same input and seed."""
    a, b = SeismicIndex.build(DOCS, knn=3, seed=7), SeismicIndex.build(DOCS, knn=3, seed=7)
    for name in SeismicIndex.ARRAYS:
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert set(a.build_timings) == {"prune_s", "cluster_s", "summaries_s", "knn_s"}


def test_kernel_facade_reexports_the_split_modules():
    from lsr.kernels import seismic, seismic_build, seismic_search, summaries
    for module in (seismic_build, summaries, seismic_search):
        for name in seismic.__all__:
            if hasattr(module, name) and not name.startswith("_"):
                assert getattr(seismic, name) is getattr(module, name)
    assert seismic.DIR_SAMPLE == seismic_search.DIR_SAMPLE == 16


@pytest.mark.parametrize("kwargs,message", [
    (dict(summary_energy=0), "summary_energy must be a number in \\(0, 1\\], got 0"),
    (dict(centroid_fraction=1.5), "centroid_fraction must be a number in \\(0, 1\\]"),
    (dict(max_fraction=float("nan")), "max_fraction must be a number finite and > 0"),
    (dict(doc_cut=0), "doc_cut must be an integer >= 1"),
    (dict(min_cluster_size=True), "min_cluster_size must be an integer >= 1"),
    (dict(n_postings=2.5), "n_postings must be an integer, got 2.5"),
    (dict(seed=1.5), "seed must be an integer"),
    (dict(query_cut=0), "query_cut must be an integer >= 1"),
    (dict(heap_factor=-1.0), "heap_factor must be a number finite and >= 0"),
])
def test_seismic_build_values_are_range_checked(kwargs, message):
    # typed means the values too: a build never runs on a parameter it would silently misuse
    with pytest.raises(ValueError, match=message):
        SeismicIndex.build(DOCS, **kwargs)


def test_seismic_build_edge_values_are_accepted():
    index = SeismicIndex.build(DOCS, n_postings=0, summary_energy=1.0, centroid_fraction=1.0, seed=np.int64(3))
    assert index.params["n_postings"] == 0 and index.params["summary_energy"] == 1.0
    # a negative n_postings turns static pruning off, as 0 does (documented in SeismicIndex.build)
    assert SeismicIndex.build(DOCS, n_postings=-1).n_postings == SeismicIndex.build(DOCS, n_postings=0).n_postings
