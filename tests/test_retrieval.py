"""Hybrid retrieval (issue 6): BM25 vectors, dense storage, fusion, PRF, and the CLI over them."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import BEIR, needs_shared
from lsr.cli.app import app
from lsr.encoders.bm25 import BM25Encoder
from lsr.index.dense import DenseIndex
from lsr.retrieval import PRF, fuse, normalise, sparse_rocchio, vector_prf
from lsr.sparse import SparseVectors, Vocabulary

runner = CliRunner()


def _lists(*rows):
    """One query's (docs, scores) per list -> (1, k) arrays as the indexes return them."""
    return [(np.array([d], dtype=np.int64), np.array([s], dtype=np.float32)) for d, s in rows]


# ---------------------------------------------------------------- fusion
def test_convex_fusion_fills_a_missing_document_with_the_lists_lowest_score_and_breaks_ties_by_number():
    a = ([1, 2, 3], [3.0, 2.0, 1.0])  # min-max: 1, .5, 0
    b = ([2, 4], [10.0, 5.0])  # min-max: 1, 0
    docs, scores = fuse(_lists(a, b), [0.5, 0.5], "convex", "minmax", k=5)
    # 2: .5*.5 + .5*1 = .75; 1: .5*1 + .5*0 (missing from b) = .5; 3 and 4 tie at 0 -> smaller number first
    assert docs[0].tolist() == [2, 1, 3, 4, -1]
    assert np.allclose(scores[0][:4], [0.75, 0.5, 0.0, 0.0]) and scores[0][4] == -np.inf
    # weights move the order: most weight on a puts a's best first (1: .9; 2: .9*.5 + .1*1 = .55)
    docs, _ = fuse(_lists(a, b), [0.9, 0.1], "convex", "minmax", k=2)
    assert docs[0].tolist() == [1, 2]


def test_zscore_and_raw_normalisation():
    s = np.array([3.0, 1.0, 2.0, -np.inf])
    z = normalise(s, "zscore")
    assert np.isclose(z[:3].mean(), 0) and np.isclose(z[:3].std(), 1) and z[3] == -np.inf
    assert np.array_equal(normalise(s, "none")[:3], s[:3])
    assert np.all(normalise(np.array([2.0, 2.0]), "minmax") == 1.0)  # all equal: no division by zero
    assert np.all(normalise(np.array([2.0, 2.0]), "zscore") == 0.0)
    with pytest.raises(ValueError, match="normalisation 'l2'"):
        normalise(s, "l2")


def test_one_normalise_for_fusion_and_teachers():
    # 2-d input normalises each row (query) on its own; -inf (a result list's padding) and NaN (a teacher's
    # missing candidate) are both "missing" and come back unchanged; a row with nothing finite stays as it is
    from lsr.training import normalise as teachers_normalise
    assert teachers_normalise is normalise
    s = np.array([[1.0, 3.0, -np.inf], [5.0, np.nan, 5.0], [np.nan, np.nan, np.nan]])
    mm = normalise(s, "minmax")
    assert mm[0].tolist() == [0.0, 1.0, -np.inf] and mm[1, 0] == mm[1, 2] == 1.0 and np.isnan(mm[1, 1])
    assert np.isnan(mm[2]).all()
    assert np.allclose(normalise(s[0], "minmax")[:2], mm[0, :2])  # 1-d is one query


def test_rrf_uses_ranks_only_and_a_missing_document_adds_nothing():
    a = ([7, 8], [100.0, 99.0])
    b = ([8, 9], [0.2, 0.1])
    docs, scores = fuse(_lists(a, b), None, "rrf", k=3, rrf_k=60)
    assert docs[0].tolist() == [8, 7, 9]
    assert np.allclose(scores[0], [1 / 62 + 1 / 61, 1 / 61, 1 / 62])


def test_fusion_of_empty_lists():
    empty = ([-1, -1], [-np.inf, -np.inf])
    full = ([4, 2], [2.0, 1.0])
    docs, scores = fuse(_lists(empty, full), [0.5, 0.5], k=3)
    assert docs[0].tolist() == [4, 2, -1]  # the other list alone decides
    assert np.allclose(scores[0][:2], [0.5, 0.0])
    docs, scores = fuse(_lists(empty, empty), k=2)
    assert docs[0].tolist() == [-1, -1] and np.all(scores[0] == -np.inf)
    with pytest.raises(ValueError, match="1 fusion weights for 2 result lists"):
        fuse(_lists(full, full), [1.0])
    with pytest.raises(ValueError, match="fusion 'max'"):
        fuse(_lists(full), method="max")


# ---------------------------------------------------------------- PRF
def test_sparse_rocchio_keeps_every_original_query_term_when_beta_is_below_alpha():
    rng = np.random.default_rng(0)
    vocab = Vocabulary(200)
    docs = SparseVectors.from_dense(rng.random((30, 200)) * (rng.random((30, 200)) < 0.2), vocab)
    queries = SparseVectors.from_dense(rng.random((10, 200)) * (rng.random((10, 200)) < 0.05), vocab)
    feedback = np.argsort(-rng.random((10, 5)), axis=1)
    new = sparse_rocchio(queries, feedback, docs, fb_docs=3, fb_terms=4, alpha=1.0, beta=0.9)
    for i in range(len(queries)):
        qi, qv = queries.row(i)
        ni, nv = new.row(i)
        got = dict(zip(ni.tolist(), nv.tolist()))
        assert set(qi.tolist()) <= set(got)  # no original term dropped ...
        assert all(got[t] >= v - 1e-6 for t, v in zip(qi.tolist(), qv.tolist()))  # ... or weakened
        assert len(set(got) - set(qi.tolist())) <= 4  # at most fb_terms new ones
        fb_terms = {t for d in feedback[i][:3] for t in docs.row(int(d))[0].tolist()}
        assert set(got) - set(qi.tolist()) <= fb_terms  # and they come from the feedback documents
    # no feedback document (an empty first round): the query is only scaled by alpha
    same = sparse_rocchio(queries, np.full((10, 3), -1), docs, alpha=1.0, beta=0.9)
    assert same.equals(queries, atol=1e-6)


def _rocchio_by_dicts(queries, feedback, docs, fb_docs, fb_terms, alpha, beta):
    """Rocchio as written in words: a running float sum per term, new terms by (weight, term) descending."""
    rows = []
    for i in range(len(queries)):
        qi, qv = queries.row(i)
        fb = [int(d) for d in feedback[i][:fb_docs] if d >= 0]
        acc = {}
        for d in fb:
            for t, v in zip(*(a.tolist() for a in docs.row(d))):
                acc[t] = acc.get(t, 0.0) + v
        n = max(1, len(fb))
        new = {int(t): alpha * float(v) for t, v in zip(qi, qv)}
        extra = sorted(((beta * v / n, t) for t, v in acc.items() if t not in new), reverse=True)[:fb_terms]
        for t in list(new):
            new[t] += beta * acc.get(t, 0.0) / n
        new.update({t: w for w, t in extra})
        rows.append({t: np.float32(w) for t, w in sorted(new.items()) if w > 0})
    return rows


def test_sparse_rocchio_equals_its_definition_bit_for_bit():
    rng = np.random.default_rng(1)
    vocab = Vocabulary(120)
    for _ in range(40):  # weights from a small set, so equal weights (ties) are common
        pick = lambda shape, p: rng.choice([0.25, 0.5, 1.0, 2.0], shape) * (rng.random(shape) < p)  # noqa: E731
        docs = SparseVectors.from_dense(pick((25, 120), 0.15), vocab)
        queries = SparseVectors.from_dense(pick((4, 120), 0.05), vocab)
        feedback = rng.integers(-1, 25, size=(4, 8))
        args = (int(rng.integers(0, 8)), int(rng.integers(0, 20)), float(rng.choice([1.0, 0.7])),
                float(rng.choice([0.05, 0.5, 1.0])))
        got = sparse_rocchio(queries, feedback, docs, *args)
        want = _rocchio_by_dicts(queries, feedback, docs, *args)
        for i, row in enumerate(want):
            gi, gv = got.row(i)
            assert gi.tolist() == list(row) and gv.tolist() == [float(v) for v in row.values()]


def test_vector_prf_average_and_rocchio():
    emb = np.eye(4, dtype=np.float32)
    q = np.array([[1.0, 0, 0, 0]], dtype=np.float32)
    fb = np.array([[1, 2]])
    avg = vector_prf(q, fb, lambda n: emb[n], fb_docs=2, method="average")
    assert np.allclose(avg, [[1 / 3, 1 / 3, 1 / 3, 0]])
    roc = vector_prf(q, fb, lambda n: emb[n], fb_docs=2, alpha=1.0, beta=0.5)
    assert np.allclose(roc, [[1.0, 0.25, 0.25, 0]])
    with pytest.raises(ValueError, match="PRF 'when' 'during'"):
        PRF(when="during")


# ---------------------------------------------------------------- dense storage
def test_quantised_dense_kernels_score_exactly_what_is_stored():
    """float16 and int8 rows are scored straight from their bytes: the same scores as converting the stored
    matrix to float32 first (up to float32 summation order), subnormals, signs and zeros included; filtered
    rows and chunk boundaries give the same top k."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1500, 48)).astype(np.float32)
    x[5, :6] = [0.0, -0.0, 3e-7, -3e-7, 6e-8, 65000.0]  # float16 subnormals, signed zeros, the largest values
    q = rng.normal(size=(7, 48)).astype(np.float32)
    allowed = rng.random(1500) < 0.3
    for dtype in ("float16", "int8"):
        idx = DenseIndex.build(x, dtype)
        stored = idx.data.astype(np.float32) * (idx.scale if idx.scale is not None else 1.0)
        want = q @ stored.T
        d, s = idx.search(q, 1500, chunk=400)
        got = np.take_along_axis(want, d, 1)
        assert np.allclose(s, got, rtol=1e-5, atol=1e-3 * np.abs(want).max()), dtype
        assert np.allclose(np.sort(s, 1), np.sort(want, 1), rtol=1e-5, atol=1e-3 * np.abs(want).max()), dtype
        d2, s2 = idx.search(q, 20, allowed=allowed, chunk=333)
        masked = np.where(allowed, want, -np.inf)
        assert allowed[d2].all()
        assert np.allclose(s2, -np.sort(-masked, 1)[:, :20], rtol=1e-5, atol=1e-3 * np.abs(want).max()), dtype


def test_both_float16_conversions_widen_exactly():
    """The hardware conversion (F16C / ARM, when the CPU has it) and the integer-shift one read every float16
    exactly: a one-hot query picks single stored values, which must come back bit for bit."""
    from lsr.kernels import dense as k
    special = np.array([0.0, -0.0, 6e-8, -6e-8, 3e-7, 1e-5, -2.5, 65504.0, -65504.0, 1 / 3], np.float16)
    bits = np.tile(special, (3, 1)).view(np.uint16)
    q = np.eye(len(special), dtype=np.float32)
    rows = np.arange(3)
    want = np.tile(special.astype(np.float32), (3, 1)).T
    kernels = [(f, q * k.HALF_SCALE) for f in k._KERNELS["shift"]]  # serial and over threads
    if k.HARDWARE_HALF:
        kernels += [(f, q) for f in k._KERNELS["hw"]]
    for kernel, query in kernels:
        got = kernel(bits, rows, query)
        assert np.array_equal(got, want)  # subnormals too (a sum starting at +0 cannot keep a -0 sign)


def test_dense_int8_and_float16_search_close_to_float32_and_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:50] + 0.3 * rng.normal(size=(50, 64)).astype(np.float32)
    ref_d, ref_s = DenseIndex.build(x, "float32").search(q, 10, chunk=700)  # chunks: the merge is exercised
    exact = np.argsort(-(q @ x.T), axis=1)[:, :10]
    assert np.array_equal(ref_d, exact)
    for dtype, tol in (("float16", 1e-3), ("int8", 2e-2)):
        idx = DenseIndex.build(x, dtype)
        assert idx.nbytes <= x.nbytes // (2 if dtype == "float16" else 4) + 64 * 4
        d, s = idx.search(q, 10)
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(d, ref_d)])
        assert overlap >= 0.95, (dtype, overlap)
        assert np.abs(s[:, 0] - ref_s[:, 0]).max() < tol
        idx.save(tmp_path / dtype)
        again = DenseIndex.load(tmp_path / dtype, n_docs=2000)
        assert np.array_equal(again.search(q, 10)[0], d)
    with pytest.raises(Exception, match="2000 dense embeddings for 5 indexed documents"):
        DenseIndex.load(tmp_path / "int8", n_docs=5)
    np.save(tmp_path / "int8" / "embeddings.npy", np.zeros((10, 64), np.int8))  # replaced / truncated
    with pytest.raises(Exception, match="the file is truncated or replaced"):
        DenseIndex.load(tmp_path / "int8")
    bad = x.copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match="document number 7 has NaN"):
        DenseIndex.build(bad)
    small = DenseIndex.build(x[:3])
    d, s = small.search(q[:2], 5)
    assert (d[:, 3:] == -1).all() and np.isinf(s[:, 3:]).all()


# ---------------------------------------------------------------- BM25 vectors
def test_bm25_vectors_score_like_bm25s(fixtures_dir):
    bm25s = pytest.importorskip("bm25s")
    import Stemmer
    texts = [json.loads(line)["title"] + " " + json.loads(line)["text"]
             for line in (fixtures_dir / "tiny_corpus.jsonl").read_text().splitlines()]
    texts += ["Bones, bones and more bones: fractures of the bone.", "The heart and the lungs."]
    queries = ["vitamin d bone fractures", "smoking lungs lungs", "quantum chromodynamics"]
    for k1, b in ((0.9, 0.4), (1.5, 0.75)):
        enc = BM25Encoder.fit(texts, k1=k1, b=b)
        scores = (enc.encode_queries(queries).to_scipy() @ enc.encode_documents(texts).to_scipy().T).toarray()
        ref = bm25s.BM25(k1=k1, b=b)
        stem = Stemmer.Stemmer("english")
        ref.index(bm25s.tokenize(texts, stopwords="en", stemmer=stem, show_progress=False), show_progress=False)
        for i, toks in enumerate(bm25s.tokenize(queries, stopwords="en", stemmer=stem, return_ids=False,
                                                show_progress=False)):
            expected = ref.get_scores(toks) if toks else np.zeros(len(texts))
            assert np.allclose(scores[i], expected, atol=1e-5), (k1, b, queries[i])
    assert scores[2].sum() == 0  # no term of the corpus: nothing matches
    binary = BM25Encoder.fit(texts, query_weights="binary").encode_queries(["lungs lungs"])
    assert binary.values.tolist() == [1.0]
    plain = BM25Encoder.fit(texts, stemmer=None, stopwords=None)
    assert "the" in plain.vocab.tokens and "bones" in plain.vocab.tokens


@needs_shared
def test_bm25_index_through_the_cli_matches_bm25s_ndcg_on_scifact(tmp_path):
    from lsr.training.teachers import BM25Teacher  # bm25s, k1 0.9, b 0.4, stop words, stemmer
    res = runner.invoke(app, ["index", "beir/scifact", "-m", "bm25", "--index-type", "exact", "-o",
                              str(tmp_path / "bm25"), "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["eval", str(tmp_path / "bm25"), "beir/scifact/test", "--json", "-q"])
    ours = json.loads(res.stdout)
    from lsr.data import load_dataset
    from lsr.eval import evaluate, parse_metrics, run_from_results
    ds = load_dataset("beir/scifact/test")
    docs = list(ds.docs())
    teacher = BM25Teacher([d.doc_id for d in docs], [d.full_text for d in docs])
    qrels = ds.qrels()
    queries = [q for q in ds.queries() if q.query_id in qrels]
    toks = teacher._bm25s.tokenize([q.text for q in queries], stopwords="en", stemmer=teacher.stemmer,
                                   return_ids=False, show_progress=False)
    ids = np.array([d.doc_id for d in docs], dtype=object)
    top = [np.argsort(-teacher.model.get_scores(t), kind="stable")[:101] for t in toks]
    sc = [teacher.model.get_scores(t)[o] for t, o in zip(toks, top)]
    run = run_from_results([q.query_id for q in queries], np.array([ids[o] for o in top]), np.array(sc))
    ref = evaluate(run, qrels, parse_metrics(["nDCG@10"]))["nDCG@10"]
    assert abs(ours["nDCG@10"] - ref) < 1e-3 and ours["nDCG@10"] > 0.66
    res = runner.invoke(app, ["index", "beir/scifact", "-m", "bm25", "-o", str(tmp_path / "seismic"), "-q"])
    assert res.exit_code == 0, res.output  # the approximate index takes BM25 vectors like any other
    res = runner.invoke(app, ["eval", str(tmp_path / "seismic"), "beir/scifact/test", "--json", "-q"])
    assert abs(json.loads(res.stdout)["nDCG@10"] - ours["nDCG@10"]) < 0.01
    res = runner.invoke(app, ["search", str(tmp_path / "seismic"), "vitamin D", "--json", "-k", "3"])
    assert res.exit_code == 0 and len(json.loads(res.stdout)["hits"]) == 3 and "warning" not in res.output
    res = runner.invoke(app, ["encode", "beir/scifact", "-m", "bm25", "-o", str(tmp_path / "v"), "-q"])
    assert res.exit_code == 1 and "fitted on a corpus" in res.output
    res = runner.invoke(app, ["index", "beir/scifact", "-m", "bm25:k1=x", "-o", str(tmp_path / "x"), "-q"])
    assert res.exit_code == 1 and "k1 must be a number" in res.output


# ---------------------------------------------------------------- hybrid through the CLI
@needs_shared
def test_hybrid_index_search_eval_and_tuning_on_med(tmp_path):
    idx = tmp_path / "med"
    res = runner.invoke(app, ["index", str(BEIR / "med"), "-m", "bm25", "--index-type", "exact", "--dense", "minilm",
                              "--dense-dtype", "int8", "--no-bm25", "-o", str(idx), "-q"])
    assert res.exit_code == 0, res.output
    assert (idx / "dense" / "dense.json").exists() and not (idx / "lexical").exists()

    def ndcg(*opts):
        r = runner.invoke(app, ["eval", str(idx), str(BEIR / "med"), "--json", "-q", "--metrics", "nDCG@10", *opts])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)["nDCG@10"]

    sparse, dense = ndcg(), ndcg("--lists", "dense")
    assert 0.65 < sparse < 0.69 and 0.77 < dense < 0.80  # MED: BM25 0.671, MiniLM 0.788 (int8 storage)
    hybrid = ndcg("--hybrid", "--weights", "0.25,0.75")
    assert hybrid > max(sparse, dense) + 0.01  # fused with more weight on the stronger list
    equal, rrf = ndcg("--hybrid"), ndcg("--hybrid", "--fusion", "rrf")
    assert len({round(hybrid, 6), round(equal, 6), round(rrf, 6)}) == 3  # each option reaches the fusion
    prf = ndcg("--prf", "after", "--fb-docs", "3")
    assert prf != sparse
    r = runner.invoke(app, ["search", str(idx), "blood glucose in diabetic children", "--hybrid", "--json", "-k", "3"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)["hits"]
    assert len(hits) == 3 and hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    # tuning refuses a test split, and stores what it found as the index's default
    r = runner.invoke(app, ["tune-hybrid", str(idx), "--queries", "beir/scifact/test", "-q"])
    assert r.exit_code == 1 and "test split" in r.output
    tune_dir = tmp_path / "med-tune"  # MED's first 15 queries as a "train" split, for the mechanics
    (tune_dir / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl.gz", "queries.jsonl.gz"):
        (tune_dir / name).symlink_to(BEIR / "med" / name)
    lines = (BEIR / "med" / "qrels" / "test.tsv").read_text().splitlines()
    first = sorted({ln.split("\t")[0] for ln in lines[1:]}, key=int)[:15]
    (tune_dir / "qrels" / "train.tsv").write_text("\n".join([lines[0]] + [ln for ln in lines[1:]
                                                                         if ln.split("\t")[0] in first]) + "\n")
    r = runner.invoke(app, ["tune-hybrid", str(idx), "--queries", str(tune_dir), "--split", "train", "--step", "0.25",
                            "--lists", "sparse,dense", "--json", "-q"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert len(out["grid"]) == 3 * 5  # (convex minmax, convex zscore, rrf) x 5 weight pairs
    best = max(out["grid"], key=lambda g: g["nDCG@10"])
    stored = json.loads((idx / "manifest.json").read_text())["hybrid"]  # committed with the manifest, one rename
    assert not (idx / "hybrid.json").exists()
    assert stored["weights"] == best["weights"] and stored["tuned_on"]["queries"] == 15
    explicit = ndcg("--hybrid", "--fusion", stored["fusion"], "--norm", stored["norm"],
                    "--weights", ",".join(map(str, stored["weights"])))
    assert ndcg("--hybrid") == explicit  # --hybrid now uses the stored settings
    r = runner.invoke(app, ["search", str(idx), "x", "--hybrid", "--fusion", "max"])
    assert r.exit_code == 1 and "fusion 'max'" in r.output
    r = runner.invoke(app, ["search", str(idx), "x", "--lists", "sparse,bm25"])
    assert r.exit_code == 1 and "no BM25 list" in r.output


def test_dense_option_builds_the_bm25_list_too_and_a_failed_build_leaves_no_index(fixtures_dir, tmp_path):
    out = tmp_path / "tiny"
    res = runner.invoke(app, ["index", str(fixtures_dir / "tiny_corpus.jsonl"), "-m", "splade-tiny", "--dense",
                              "minilm", "--index-type", "exact", "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert (out / "lexical" / "manifest.json").exists() and (out / "dense" / "dense.json").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert "dense/embeddings.npy" in manifest["files"]  # checksummed with the rest of the index
    # the Python API does what the CLI does; a BM25 index gets no second BM25 list
    from lsr.retrieval import build_index
    build_index(str(fixtures_dir / "tiny_corpus.jsonl"), "splade-tiny", tmp_path / "api", index_type="exact",
                dense="minilm", progress=False)
    assert (tmp_path / "api" / "lexical" / "manifest.json").exists()
    build_index(str(fixtures_dir / "tiny_corpus.jsonl"), "bm25", tmp_path / "api-bm25", index_type="exact",
                dense="minilm", progress=False)
    assert not (tmp_path / "api-bm25" / "lexical").exists()
    from lsr.retrieval import HybridSearcher
    assert HybridSearcher(out).available() == ("sparse", "dense", "bm25")
    res = runner.invoke(app, ["search", str(out), "weak bones", "--hybrid", "--json", "-k", "2"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["hits"][0]["doc_id"] == "d1"
    from lsr.retrieval import PRF, HybridConfig
    plain = HybridSearcher(out, HybridConfig(lists=("sparse", "dense")))
    reps = plain.encode(["weak bones"])
    first = plain.first_round(reps)
    only_dense = HybridConfig(lists=("sparse", "dense"), prf=PRF(fb_docs=1, beta=5.0, lists=("dense",)))
    d1, s1 = plain.combine(reps, first, 4, only_dense)
    d0, s0 = plain.combine(reps, first, 4, HybridConfig(lists=("sparse", "dense")))
    assert not np.allclose(s1, s0)  # the dense list was re-searched with its feedback ...
    both = plain.combine(reps, first, 4, HybridConfig(lists=("sparse", "dense"), prf=PRF(fb_docs=1, beta=5.0)))
    assert not np.allclose(both[1], s1)  # ... and the sparse one only when asked
    with pytest.raises(ValueError, match=r"PRF lists \['bm25'\] are not all among the fused lists"):
        HybridConfig(lists=("sparse", "dense"), prf=PRF(lists=("bm25",)))
    bad = tmp_path / "bad"
    res = runner.invoke(app, ["index", str(fixtures_dir / "tiny_corpus.jsonl"), "-m", "bm25", "--dense", "no-such-model",
                              "-o", str(bad), "-q"])
    assert res.exit_code == 1 and "no-such-model" in res.output
    assert not bad.exists() and not list(tmp_path.glob(".bad*"))  # nothing half-written is left to load


def test_dense_faiss_search_matches_numpy_when_faiss_is_installed():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 32)).astype(np.float32)
    q = x[:20] + 0.1
    idx = DenseIndex.build(x)
    (a, sa), (b, sb) = idx.search(q, 10), idx.search(q, 10, use_faiss=True)
    assert np.array_equal(a, b) and np.allclose(sa, sb, atol=1e-4)
    with pytest.raises(ValueError, match="faiss search takes float32 storage"):
        DenseIndex.build(x, "int8").search(q, 10, use_faiss=True)


def test_the_recommended_default_is_the_one_the_benchmark_chose():
    from conftest import ROOT
    from lsr.retrieval import recommended
    measured = json.loads((ROOT / "bench" / "out" / "hybrid.json").read_text())["default"]
    assert recommended().to_json() == measured  # rerunning bench/hybrid.py and not updating RECOMMENDED fails here
    # an index without the BM25 list keeps the other lists' weights and drops the BM25-only feedback
    two = recommended(("sparse", "dense"))
    assert two.lists == ("sparse", "dense") and two.weights == (0.2, 0.5) and two.prf is None


def test_bad_inputs_to_the_retrieval_stack_name_what_is_wrong(fixtures_dir, tmp_path):
    from lsr.data import load_dataset
    from lsr.encoders.bm25 import parse_bm25_name
    from lsr.encoders.shards import encode_corpus
    from lsr.errors import ModelError
    from lsr.index.dense import DenseIndex
    from lsr.retrieval import HybridConfig
    corpus = str(fixtures_dir / "tiny_corpus.jsonl")
    with pytest.raises(ModelError, match="unknown BM25 option 'k3'"):
        parse_bm25_name("bm25:k3=1")
    with pytest.raises(ModelError, match="no BM25 statistics"):
        BM25Encoder.load(tmp_path)
    enc = BM25Encoder.fit(["a text", "another text"])
    enc.save(tmp_path / "stats")
    cfg = json.loads((tmp_path / "stats" / "bm25.json").read_text())
    (tmp_path / "stats" / "bm25.json").write_text(json.dumps({**cfg, "format": 99}))
    with pytest.raises(ModelError, match="BM25 statistics format 99; this lsr reads 1"):
        BM25Encoder.load(tmp_path / "stats")
    # BM25 vectors encoded apart from their statistics cannot be indexed
    encode_corpus(load_dataset(corpus), enc, tmp_path / "vectors", progress=False)
    res = runner.invoke(app, ["index", str(tmp_path / "vectors"), "-o", str(tmp_path / "x"), "-q"])
    assert res.exit_code == 1 and "BM25 vectors need the statistics of their corpus" in res.output
    for opts, message in ((["--dense", "minilm", "--dense-dtype", "int4"], "dense dtype 'int4'"),
                          (["--dense", "splade-tiny"], "is a splade model, not a dense bi-encoder")):
        res = runner.invoke(app, ["index", corpus, "-m", "bm25", "-o", str(tmp_path / "y"), "-q", *opts])
        assert res.exit_code == 1 and message in res.output, res.output
    with pytest.raises(Exception, match="has no dense index"):
        DenseIndex.load(tmp_path / "nowhere" / "dense")
    with pytest.raises(ValueError, match="one non-negative weight per list"):
        HybridConfig(lists=("sparse", "dense"), weights=(1.0,))
    with pytest.raises(ValueError, match=r"choose distinct names from sparse, dense, bm25"):
        HybridConfig(lists=("sparse", "splade"))
    with pytest.raises(ValueError, match="PRF needs fb_docs >= 1"):
        PRF(fb_docs=0)
    out = tmp_path / "idx"
    assert runner.invoke(app, ["index", corpus, "-m", "bm25", "--index-type", "exact", "-o", str(out), "-q"]).exit_code == 0
    res = runner.invoke(app, ["search", str(out), "bones", "--weights", "a,b"])
    assert res.exit_code == 1 and "--weights 'a,b': give numbers separated by commas" in res.output
