import json

import numpy as np
import pytest
import scipy.sparse as sp

from lsr.errors import IndexError_, QueryError
from lsr.index import ExactIndex, SeismicIndex, load_index
from lsr.index.storage import manifest_checksum
from lsr.sparse import SparseVectors, Vocabulary, as_sparse_vectors


def splade_like(n, dim, nnz, seed):
    """Random vectors with a few heavy and many light weights, topical overlap."""
    rng = np.random.default_rng(seed)
    rows, cols, vals = [], [], []
    topics = [rng.choice(dim, 40, replace=False) for _ in range(8)]
    for i in range(n):
        t = topics[rng.integers(8)]
        terms = np.unique(np.r_[rng.choice(t, nnz // 2), rng.choice(dim, nnz // 2)])
        rows += [i] * len(terms)
        cols += terms.tolist()
        vals += (rng.gamma(1.2, 0.6, len(terms)) + 0.01).tolist()
    return sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=(n, dim))


DOCS = splade_like(1500, 400, 30, 1)
QUERIES = splade_like(40, 400, 12, 2)
LONG_QUERIES = splade_like(20, 400, 400, 3)


@pytest.mark.parametrize("long", [False, True], ids=["short queries", "long queries"])
def test_equals_exact_without_pruning_or_skipping(long):
    # Queries of more than FILTER_MAX_TERMS terms are scored with the plain
    # gather instead of the query-term filter: both paths must be exact.
    from lsr.kernels.seismic_search import FILTER_MAX_TERMS
    queries = LONG_QUERIES if long else QUERIES
    n_terms = np.diff(queries.indptr)
    assert (n_terms.min() > FILTER_MAX_TERMS) if long else (n_terms.max() <= FILTER_MAX_TERMS)
    exact = ExactIndex.build(DOCS)
    seismic = SeismicIndex.build(DOCS, n_postings=0, forward_dtype="f32")
    a_docs, a_scores = exact.search_numbers(queries, 10)
    b_docs, b_scores = seismic.search_numbers(queries, 10, query_cut=10_000, heap_factor=0.0)
    assert np.array_equal(a_docs, b_docs)
    np.testing.assert_allclose(a_scores, b_scores, rtol=1e-6)


def test_f16_forward_index_scores_close():
    exact = ExactIndex.build(DOCS)
    seismic = SeismicIndex.build(DOCS, n_postings=0, forward_dtype="f16")
    a_docs, a_scores = exact.search_numbers(QUERIES, 10)
    b_docs, b_scores = seismic.search_numbers(QUERIES, 10, query_cut=10_000, heap_factor=0.0)
    np.testing.assert_allclose(a_scores, b_scores, rtol=2e-3)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(a_docs, b_docs)])
    assert overlap >= 0.98


def test_skipping_trades_recall_for_work():
    exact = ExactIndex.build(DOCS)
    seismic = SeismicIndex.build(DOCS, n_postings=200)
    truth, _ = exact.search_numbers(QUERIES, 10)

    def recall(**kw):
        got, _ = seismic.search_numbers(QUERIES, 10, **kw)
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
    loose, tight = recall(query_cut=2, heap_factor=1.5), recall(query_cut=12, heap_factor=0.3)
    assert tight > loose and tight >= 0.9


def test_build_parameters_recorded_and_validated(tmp_path):
    idx = SeismicIndex.build(DOCS, n_postings=300, summary_energy=0.5, query_cut=7, heap_factor=0.9)
    assert idx.params["n_postings"] == 300 and idx.params["query_cut"] == 7
    assert idx.n_postings <= 300 * 400 and idx.n_blocks > 0
    with pytest.raises(TypeError, match="unknown seismic build parameter 'bogus' \\(it takes n_postings, "):
        SeismicIndex.build(DOCS, bogus=1)  # a ParameterError, which is a TypeError (tests/test_index_params.py)
    with pytest.raises(ValueError, match="forward_dtype must be 'f16' or 'f32', got 'f8'"):
        SeismicIndex.build(DOCS, forward_dtype="f8")
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"heap_factor must be a finite number >= 0, got {float(bad)}"):
            idx.search_numbers(QUERIES, 10, heap_factor=bad)
    with pytest.raises(ValueError, match="query_cut must be >= 1, got 0"):
        idx.search_numbers(QUERIES, 10, query_cut=0)
    wide = sp.csr_matrix((np.ones(70000, np.float32), (np.zeros(70000, int), np.arange(70000))), shape=(2, 70000))
    with pytest.raises(ValueError, match="a document has 70000 non-zeros; the seismic index supports < 65536"):
        SeismicIndex.build(wide)


def test_array_sizes_checked_on_load(tmp_path):
    """Corruption that keeps the manifest consistent (sizes and checksums) is still refused."""
    from lsr.index.storage import save_array, update_manifest
    SeismicIndex.build(DOCS).save(tmp_path / "s")
    off = np.load(tmp_path / "s" / "dir_off.npy")
    save_array(tmp_path / "s", "dir_off", off[:-1])
    update_manifest(tmp_path / "s", {}, files=("dir_off.npy",))  # the manifest re-signed: consistent, but wrong
    with pytest.raises(IndexError_, match="array sizes disagree with each other \\(corrupt index\\)"):
        load_index(tmp_path / "s")


def test_save_load_round_trip(tmp_path):
    idx = SeismicIndex.build(DOCS, doc_ids=[f"doc{i}" for i in range(DOCS.shape[0])], query_cut=6)
    idx.save(tmp_path / "s")
    back = load_index(tmp_path / "s")
    assert isinstance(back, SeismicIndex) and back.params == idx.params
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["index_type"] == "seismic"
    for a, b in zip(idx.batch_search(QUERIES, 10), back.batch_search(QUERIES, 10)):
        assert np.array_equal(a, b)
    assert back.batch_search(QUERIES[:1], 3)[0][0][0].startswith("doc")


def test_empty_query_and_terms_without_postings():
    vocab = Vocabulary(400)
    idx = SeismicIndex.build(DOCS)
    empty = SparseVectors([0, 0], [], [], vocab)
    docs, scores = idx.search_numbers(empty, 5)
    assert (docs == -1).all() and np.isneginf(scores).all()
    unused = np.setdiff1d(np.arange(400), np.unique(DOCS.indices))
    if len(unused):
        q = SparseVectors([0, 1], [unused[0]], [1.0], vocab)
        assert (idx.search_numbers(q, 5)[0] == -1).all()
    with pytest.raises(QueryError, match="dimension 401, the index has 400"):
        idx.search_numbers(sp.csr_matrix((1, 401), dtype=np.float32), 5)


def test_query_cut_passes_over_terms_without_postings():
    """A heavy query term no document has must not use up one of the query_cut lists."""
    wide = sp.hstack([DOCS, sp.csr_matrix((DOCS.shape[0], 1), dtype=np.float32)]).tocsr()  # term 400: no postings
    idx = SeismicIndex.build(wide, n_postings=0)
    q = QUERIES[:5].toarray()
    with_ghost = np.hstack([q, np.full((len(q), 1), 50.0, dtype=np.float32)])  # the heaviest term of each query
    plain = np.hstack([q, np.zeros((len(q), 1), dtype=np.float32)])
    a, a_scores = idx.search_numbers(sp.csr_matrix(with_ghost), 10, query_cut=2, heap_factor=0.0)
    b, b_scores = idx.search_numbers(sp.csr_matrix(plain), 10, query_cut=2, heap_factor=0.0)
    assert (a >= 0).all() and np.array_equal(a, b)
    np.testing.assert_allclose(a_scores, b_scores, rtol=1e-3)


def test_single_query_search_matches_batch_and_checks_its_input():
    """search() on one SparseVectors row takes a short path of its own; it must agree with the batch path."""
    idx = SeismicIndex.build(DOCS, n_postings=200, knn=4, query_cut=4, heap_factor=0.9)
    q = as_sparse_vectors(QUERIES)
    for kw in ({}, {"query_cut": 2, "heap_factor": 1.2, "knn": 0}, {"query_cut": 8, "knn": 4}):
        ids, scores = idx.batch_search(q, 7, threads=1, **kw)
        for i in range(len(q)):
            one_ids, one_scores = idx.search(q[i:i + 1], 7, **kw)
            assert list(one_ids) == list(ids[i]) and np.array_equal(one_scores, scores[i])
    # the index's stored defaults apply, and a change of them is seen (not a stale memo)
    default_ids, _ = idx.search(q[:1], 5)
    assert list(default_ids) == list(idx.search(q[:1], 5, query_cut=4, heap_factor=0.9)[0])
    idx.params["query_cut"] = 1
    assert list(idx.search(q[:1], 5)[0]) == list(idx.search(q[:1], 5, query_cut=1, heap_factor=0.9)[0])
    with pytest.raises(ValueError, match="heap_factor must be a finite number"):
        idx.search(q[:1], 5, heap_factor=float("nan"))
    with pytest.raises(QueryError, match="k must be an integer >= 1, got 0"):
        idx.search(q[:1], 0)
    with pytest.raises(QueryError, match="dimension 401, the index has 400"):
        idx.search(SparseVectors([0, 1], [400], [1.0], Vocabulary(401)), 5)
    with pytest.raises(QueryError, match="search\\(\\) takes one query"):
        idx.search(q[:2], 5)


def test_real_splade_vectors_recall(med_indexes):
    """MED encoded with splade-tiny: default settings find the exact top 10."""
    from lsr.encoders.shards import shard_paths
    from lsr.sparse import read_vectors
    exact = load_index(med_indexes["exact"])
    seismic = load_index(med_indexes["seismic"])
    _, vectors = read_vectors(shard_paths(med_indexes["exact"] / "vectors"))
    queries = vectors[::10]  # documents as queries: long, SPLADE-shaped
    truth, _ = exact.batch_search(queries, 10)
    got, _ = seismic.batch_search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
    assert recall >= 0.95, recall


def test_tune_chooses_and_stores_defaults(med_indexes, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from conftest import BEIR
    from lsr.cli.app import app
    index_dir = tmp_path / "med"
    shutil.copytree(med_indexes["seismic"], index_dir)
    res = CliRunner().invoke(app, ["tune", str(index_dir), "--queries", str(BEIR / "med"), "--target-recall", "0.9",
                                   "--sample", "30", "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    best = result["best"]
    assert best["recall"] >= 0.9 and len(result["runs"]) == 120
    # the fastest setting meeting the target was chosen
    assert all(r["mean_ms"] >= best["mean_ms"] for r in result["runs"] if r["recall"] >= 0.9)
    params = load_index(index_dir).params
    assert (params["query_cut"], params["heap_factor"]) == (best["query_cut"], best["heap_factor"])
    load_index(index_dir, verify=True)  # checksums still hold after the manifest update


def test_tune_unreachable_target_and_wrong_type(med_indexes):
    from lsr.index.tune import tune
    seismic, exact = load_index(med_indexes["seismic"]), load_index(med_indexes["exact"])
    q = seismic.forward_vectors()[:20]
    result = tune(seismic, q, exact, target_recall=1.0, query_cuts=(1,), heap_factors=(50.0,))
    assert result["best"] is None and result["runs"][0]["recall"] < 1.0

    from typer.testing import CliRunner

    from conftest import BEIR
    from lsr.cli.app import app
    res = CliRunner().invoke(app, ["tune", str(med_indexes["exact"]), "--queries", str(BEIR / "med")])
    assert res.exit_code == 1 and "tune applies to seismic indexes" in res.stderr


def test_kernel_cache_dropped_when_any_kernel_source_changes(tmp_path):
    """numba keys its cache on each module's own file; lsr drops the package's cache when any source changes."""
    from lsr.kernels import _drop_stale_cache
    (tmp_path / "seismic.py").write_text("x = 1\n")
    (tmp_path / "simd.py").write_text("y = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    (cache / "seismic.f-1.py311.nbi").write_text("old")
    _drop_stale_cache(tmp_path)  # no fingerprint yet: whatever is cached may be stale
    assert not (cache / "seismic.f-1.py311.nbi").exists()
    (cache / "seismic.f-1.py311.nbi").write_text("fresh")
    (cache / "seismic.f-1.py311.1.nbc").write_text("fresh")
    _drop_stale_cache(tmp_path)  # nothing changed: kept
    assert (cache / "seismic.f-1.py311.nbi").read_text() == "fresh"
    (tmp_path / "simd.py").write_text("y = 2\n")  # only the helper module changes
    _drop_stale_cache(tmp_path)
    assert not list(cache.glob("*.nb*")) and (cache / "lsr-kernels.fingerprint").exists()


@pytest.mark.parametrize("forward_dtype", ["f16", "f32"])
def test_prefetching_changes_no_result(forward_dtype):
    """Large indexes prefetch documents ahead; forcing that path on a small one must give the same top-k."""
    plain = SeismicIndex.build(DOCS, n_postings=200, forward_dtype=forward_dtype)
    prefetching = SeismicIndex.build(DOCS, n_postings=200, forward_dtype=forward_dtype)
    prefetching.PREFETCH_MIN_BYTES = 0
    for qc, hf in ((3, 1.0), (12, 0.3)):
        for threads in (1, 2):
            a = plain.search_numbers(QUERIES, 10, query_cut=qc, heap_factor=hf, threads=threads)
            b = prefetching.search_numbers(QUERIES, 10, query_cut=qc, heap_factor=hf, threads=threads)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert prefetching._prefetch and not plain._prefetch


# ------------------------------------------------------------ k-NN refinement

def _block_mates(idx, d):
    """Every document sharing a block with d (brute force over the index arrays)."""
    bp, bd = np.asarray(idx.block_ptr), np.asarray(idx.block_docs)
    mates = set()
    for b in np.flatnonzero([d in bd[bp[i]:bp[i + 1]] for i in range(len(bp) - 1)]):
        mates.update(bd[bp[b]:bp[b + 1]].tolist())
    mates.discard(d)
    return mates


def test_knn_graph_holds_each_documents_best_block_mates():
    idx = SeismicIndex.build(DOCS, n_postings=200, knn=6, knn_blocks=10_000)
    g = np.asarray(idx.knn_nbrs).reshape(len(idx), 6)
    assert idx.knn_width == 6 and idx.params["knn"] == 6
    dense = DOCS.toarray()
    for d in range(0, len(idx), 97):
        mates = np.array(sorted(_block_mates(idx, d)))
        scores = dense[mates] @ dense[d]
        keep = scores > 0
        mates, scores = mates[keep], scores[keep]
        best = mates[np.lexsort((mates, -scores))][:6]  # score descending, then doc number
        row = g[d][g[d] >= 0]
        assert d not in row.tolist()
        assert row.tolist() == best.tolist(), d
        assert (g[d][len(row):] == -1).all()


def test_knn_refinement_only_adds_candidates():
    """Refining scores more documents into the same top-k: never a lower score at any rank, and
    recall against exact rises where blocks were skipped."""
    exact = ExactIndex.build(DOCS)
    idx = SeismicIndex.build(DOCS, n_postings=200, knn=10, forward_dtype="f32")
    truth, _ = exact.search_numbers(QUERIES, 10)
    plain_docs, plain = idx.search_numbers(QUERIES, 10, query_cut=2, heap_factor=1.5, knn=0)
    ref_docs, refined = idx.search_numbers(QUERIES, 10, query_cut=2, heap_factor=1.5)  # the index's default: 10
    assert (refined >= plain).all()

    def recall(got):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
    assert recall(ref_docs) > recall(plain_docs)
    # more neighbours than stored is clamped to the graph; negative is refused
    assert np.array_equal(idx.search_numbers(QUERIES, 10, query_cut=2, heap_factor=1.5, knn=50)[0], ref_docs)
    with pytest.raises(ValueError, match="knn must be >= 0"):
        idx.search_numbers(QUERIES, 10, knn=-1)
    with pytest.raises(ValueError, match="knn must be an integer >= 0"):
        SeismicIndex.build(DOCS, knn=-3)


@pytest.mark.parametrize("forward_dtype", ["f16", "f32"])
def test_knn_refinement_same_with_prefetch_and_threads(forward_dtype):
    plain = SeismicIndex.build(DOCS, n_postings=200, knn=8, forward_dtype=forward_dtype)
    prefetching = SeismicIndex.build(DOCS, n_postings=200, knn=8, forward_dtype=forward_dtype)
    prefetching.PREFETCH_MIN_BYTES = 0
    a = plain.search_numbers(QUERIES, 10, query_cut=3, heap_factor=1.0, threads=1)
    for idx, threads in ((prefetching, 1), (plain, 2), (prefetching, 2)):
        b = idx.search_numbers(QUERIES, 10, query_cut=3, heap_factor=1.0, threads=threads)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_knn_graph_saved_and_version_2_index_loads_without_one(tmp_path):
    idx = SeismicIndex.build(DOCS, n_postings=200, knn=5)
    idx.save(tmp_path / "s")
    back = load_index(tmp_path / "s")
    assert back.knn_width == 5 and np.array_equal(np.asarray(back.knn_nbrs), np.asarray(idx.knn_nbrs))
    assert np.array_equal(back.search_numbers(QUERIES, 10)[0], idx.search_numbers(QUERIES, 10)[0])
    # What lsr wrote before the graph existed (format 2, no knn_nbrs file) still loads, without refinement.
    plain = SeismicIndex.build(DOCS, n_postings=200)
    plain.save(tmp_path / "v2")
    manifest_path = tmp_path / "v2" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 2
    del manifest["files"]["knn_nbrs.npy"]
    manifest["params"].pop("knn"), manifest["params"].pop("knn_blocks")
    manifest["checksum"] = manifest_checksum(manifest)  # as a version-2 lsr would have written it
    manifest_path.write_text(json.dumps(manifest))
    (tmp_path / "v2" / "knn_nbrs.npy").unlink()
    old = load_index(tmp_path / "v2")
    assert old.knn_width == 0
    assert np.array_equal(old.search_numbers(QUERIES, 10)[0], plain.search_numbers(QUERIES, 10)[0])
    # a graph whose size does not fit the document count is refused
    np.save(tmp_path / "s" / "knn_nbrs.npy", np.zeros(7, np.int32))
    with pytest.raises(IndexError_, match="knn_nbrs.npy"):
        load_index(tmp_path / "s")  # size differs from the manifest
    with pytest.raises(IndexError_, match="array sizes disagree"):
        _with(back, knn_nbrs=np.zeros(7, np.int32))._check_arrays(tmp_path / "s")


def _with(idx, **arrays):
    import copy
    clone = copy.copy(idx)
    clone.__dict__.update(arrays)
    return clone


def test_cli_knn_options(med_indexes, tmp_path):
    from typer.testing import CliRunner

    from lsr.cli.app import app
    runner = CliRunner()
    out = tmp_path / "knn"
    res = runner.invoke(app, ["index", str(med_indexes["exact"] / "vectors"), "-o", str(out), "--knn", "8", "-q"])
    assert res.exit_code == 0, res.output
    assert load_index(out).knn_width == 8
    res = runner.invoke(app, ["search", str(out), "blood pressure in children", "--json", "--knn", "0"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["hits"]) == 10
    res = runner.invoke(app, ["index", str(med_indexes["exact"] / "vectors"), "-o", str(tmp_path / "x"),
                              "--index-type", "exact", "--knn", "8", "-q"])
    assert res.exit_code == 1 and "--knn applies to the seismic index" in res.stderr
