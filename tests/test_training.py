"""Training building blocks: regularisers, distillation losses, idf, teacher normalisation and caching."""
import json

import numpy as np
import pytest
import torch

from lsr.errors import DataError
from lsr.training import TeacherCache, ensemble, load_idf, normalise, save_idf
from lsr.training.idf import bm25_idf, document_frequencies, idf_from_texts
from lsr.training.losses import IDFFlopsLoss, L1Loss, flops, idf_flops, l1, quadratic_warmup

E = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])


# ------------------------------------------------------------- regularisers
def test_regularisers_against_hand_computed_values():
    # column means (2, 0, 1)
    assert flops(E).item() == pytest.approx(2 ** 2 + 0 + 1 ** 2)
    idf = torch.tensor([2.0, 1.0, 0.5])
    assert idf_flops(E, idf).item() == pytest.approx((2 / 2) ** 2 + 0 + (1 / 0.5) ** 2)
    assert l1(E).item() == pytest.approx((3 + 3) / 2)
    assert IDFFlopsLoss(idf=idf, idf_floor=0.1).compute_loss_from_embeddings(E).item() == pytest.approx(5.0)
    # the default floor 1.0: idf 0.5 counts as 1, so no token pays more than plain FLOPS
    assert IDFFlopsLoss(idf=idf).compute_loss_from_embeddings(E).item() == pytest.approx((2 / 2) ** 2 + 0 + 1 ** 2)
    # threshold: only representations with more than 1 non-zero count (row 0)
    assert L1Loss(threshold=1).compute_loss_from_embeddings(E).item() == pytest.approx(3 / 2)
    assert IDFFlopsLoss(idf=idf, threshold=1, idf_floor=0.1).compute_loss_from_embeddings(E).item() == pytest.approx(
        (0.5 / 2) ** 2 + (1 / 0.5) ** 2)


def test_idf_flops_with_the_default_floor_never_exceeds_flops():
    """A token in nearly every document of a small corpus has idf ~0.003; the floor keeps its penalty at FLOPS'."""
    torch.manual_seed(0)
    emb = torch.rand(8, 50)
    idf = torch.cat([torch.tensor([0.0026, 0.0007]), torch.rand(48) * 9])
    capped = IDFFlopsLoss(idf=idf).compute_loss_from_embeddings(emb)
    assert capped.item() <= flops(emb).item()
    assert idf_flops(emb, idf).item() > 1e4 * flops(emb).item()  # what the floor prevents
    with pytest.raises(ValueError, match="idf_floor must be a positive number"):
        IDFFlopsLoss(idf=idf, idf_floor=0)


def test_idf_flops_penalises_frequent_tokens_more():
    """Same activation mass on a frequent (idf 0.2) and a rare (idf 5) token: the gradient on the frequent one is larger."""
    emb = torch.tensor([[1.0, 1.0]], requires_grad=True)
    idf_flops(emb, torch.tensor([0.2, 5.0])).backward()
    assert emb.grad[0, 0] > 100 * emb.grad[0, 1] > 0


def test_idf_flops_refuses_bad_idf():
    with pytest.raises(ValueError, match="needs an idf vector"):
        IDFFlopsLoss()
    with pytest.raises(ValueError, match="finite, non-negative"):
        IDFFlopsLoss(idf=[1.0, float("nan")])
    with pytest.raises(ValueError, match="3 dimensions, the idf vector 2"):
        IDFFlopsLoss(idf=[1.0, 2.0]).compute_loss_from_embeddings(E)


def test_quadratic_warmup():
    assert [quadratic_warmup(s, 10, 2.0) for s in (0, 5, 10, 20)] == [0.0, 0.5, 2.0, 2.0]
    assert quadratic_warmup(3, 0, 2.0) == 2.0


# ------------------------------------------- distillation and contrastive losses
@pytest.fixture(scope="module")
def student():
    from lsr.encoders.registry import resolve_model
    from lsr.encoders.splade import load_sparse_encoder
    try:
        path = resolve_model("splade-tiny").path
    except Exception as e:  # the bundled weights are a dependency; say so if absent
        pytest.skip(f"splade-tiny not installed ({e})")
    return load_sparse_encoder(path, max_length=32, device="cpu")


def test_margin_mse_kl_and_infonce_against_hand_computed_values(student):
    from sentence_transformers.sparse_encoder.losses import (
        SparseDistillKLDivLoss,
        SparseMarginMSELoss,
        SparseMultipleNegativesRankingLoss,
    )
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    pos = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    neg = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    # student scores: pos (2, 2), neg (1, 0); margins (1, 2)
    teacher = torch.tensor([[3.0, 1.0], [1.0, 1.0]])  # teacher margins (2, 0)
    mse = SparseMarginMSELoss(student).compute_loss_from_embeddings([q, pos, neg], teacher)
    assert mse.item() == pytest.approx(((1 - 2) ** 2 + (2 - 0) ** 2) / 2)

    kl = SparseDistillKLDivLoss(student, temperature=1.0).compute_loss_from_embeddings([q, pos, neg], teacher)
    s = torch.tensor([[2.0, 1.0], [2.0, 0.0]])
    p = torch.softmax(teacher, 1)
    expected = (p * (p.log() - torch.log_softmax(s, 1))).sum(1).mean()
    assert kl.item() == pytest.approx(expected.item(), rel=1e-5)

    # InfoNCE with in-batch and hard negatives: candidates for query i are all positives and negatives
    nce = SparseMultipleNegativesRankingLoss(student, scale=1.0).compute_loss_from_embeddings([q, pos, neg], None)
    cands = torch.cat([pos, neg])
    logits = q @ cands.T
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(2))
    assert nce.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradients_flow_to_the_encoder_through_splade_loss_with_idf_flops(student):
    from sentence_transformers.sparse_encoder.losses import SparseMarginMSELoss, SpladeLoss
    vocab = student.tokenizer.vocab_size
    idf = np.linspace(0.1, 5.0, vocab).astype(np.float32)
    loss = SpladeLoss(student, SparseMarginMSELoss(student), document_regularizer_weight=1e-3,
                      query_regularizer_weight=1e-3,
                      document_regularizer=IDFFlopsLoss(student, idf), query_regularizer=L1Loss(student))
    feats = [student.tokenize(t) for t in (["vitamin d and bones"], ["vitamin d helps bone density"],
                                           ["stock markets fell"])]
    student.train()
    student.zero_grad()
    parts = loss(feats, torch.tensor([[1.5]]))
    total = sum(parts.values())
    assert set(parts) == {"base_loss", "document_regularizer_loss", "query_regularizer_loss"}
    assert all(torch.isfinite(v) and v.item() >= 0 for v in parts.values())
    total.backward()
    grads = [p.grad for p in student.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    student.zero_grad()
    student.eval()


# ----------------------------------------------------------------------- idf
class _Tok:
    """Tokenizer stand-in: whitespace words -> fixed ids."""
    vocab = {"a": 0, "b": 1, "c": 2, "d": 3}

    def __len__(self):
        return len(self.vocab)

    def __call__(self, texts, **_):
        return {"input_ids": [[self.vocab[w] for w in t.split()] for t in texts]}


def test_idf_from_texts_and_round_trips(tmp_path):
    texts = ["a b", "a a c", "a"]  # df: a 3, b 1, c 1, d 0; N = 3
    idf = idf_from_texts(texts, _Tok(), batch_size=2)
    expected = np.log1p((3 - np.array([3, 1, 1, 0]) + 0.5) / (np.array([3, 1, 1, 0]) + 0.5))
    np.testing.assert_allclose(idf, expected, rtol=1e-6)
    assert idf[0] < idf[1] == idf[2] < idf[3]
    save_idf(tmp_path / "idf.npy", idf)
    np.testing.assert_array_equal(load_idf(tmp_path / "idf.npy"), idf)
    tokens = list(_Tok.vocab)
    save_idf(tmp_path / "idf.json", idf, tokens)
    np.testing.assert_allclose(load_idf(tmp_path / "idf.json", tokens), idf, rtol=1e-6)
    # an OpenSearch-style file missing a token: it gets the largest idf (unseen = rare)
    (tmp_path / "part.json").write_text(json.dumps({"a": 0.1, "b": 2.0}))
    np.testing.assert_allclose(load_idf(tmp_path / "part.json", tokens), [0.1, 2.0, 2.0, 2.0])
    with pytest.raises(DataError, match="does not exist"):
        load_idf(tmp_path / "missing.npy")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json: not valid JSON"):
        load_idf(tmp_path / "bad.json", tokens)
    with pytest.raises(DataError, match="out of range"):
        document_frequencies([[0, 9]], 4)
    assert (bm25_idf(np.array([0, 5, 10]), 10) > 0).all()


# ------------------------------------------------------ teacher normalisation
def test_per_query_normalisation():
    s = np.array([[1.0, 3.0, 2.0], [10.0, 10.0, 10.0], [-1.0, 1.0, np.nan]])
    mm = normalise(s, "minmax")
    np.testing.assert_allclose(mm[0], [0.0, 1.0, 0.5])
    np.testing.assert_allclose(mm[1], [1.0, 1.0, 1.0])  # all tied: each is the maximum (as fusion has it)
    assert mm[2, 0] == 0 and mm[2, 1] == 1 and np.isnan(mm[2, 2])
    z = normalise(s, "zscore")
    np.testing.assert_allclose(z[0], (s[0] - 2) / np.std(s[0]), rtol=1e-6)
    np.testing.assert_allclose(z[1], 0.0)
    np.testing.assert_allclose(z[2, :2], [-1.0, 1.0])
    # each query on its own: scaling one query's scores changes nothing for it
    np.testing.assert_allclose(normalise(s * np.array([[100.0], [1.0], [1.0]]), "minmax"), mm)
    with pytest.raises(ValueError, match="normalisation 'rank'"):
        normalise(s, "rank")
    with pytest.raises(ValueError, match="teacher 'bad': scores contain infinities"):
        ensemble({"bad": np.array([[1.0, np.inf]])})


def test_ensemble_weights_and_scale():
    dense = np.array([[0.2, 0.9, 0.5]])  # -> 0, 1, 3/7
    bm25 = np.array([[30.0, 10.0, 20.0]])  # -> 1, 0, 0.5
    out = ensemble({"dense": dense, "bm25": bm25}, method="minmax")
    np.testing.assert_allclose(out, [[0.5, 0.5, (3 / 7 + 0.5) / 2]], rtol=1e-6)
    out = ensemble({"dense": dense, "bm25": bm25}, weights={"dense": 3, "bm25": 1}, scale=30)
    np.testing.assert_allclose(out, 30 * np.array([[0.25, 0.75, (3 * 3 / 7 + 0.5) / 4]]), rtol=1e-6)
    with pytest.raises(ValueError, match="different candidate lists"):
        ensemble({"a": dense, "b": bm25[:, :2]})
    with pytest.raises(ValueError, match="no weight for teacher"):
        ensemble({"dense": dense, "bm25": bm25}, weights={"dense": 1})


# --------------------------------------------------------------- score cache
class _CountingTeacher:
    name = "count:v1"

    def __init__(self, fail_after=None):
        self.calls, self.fail_after = 0, fail_after

    def score(self, queries, candidates, doc_text):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt
        out = np.full((len(queries), max(map(len, candidates))), np.nan, np.float32)
        for i, (q, cands) in enumerate(zip(queries, candidates)):
            out[i, :len(cands)] = [len(q) * 10 + len(doc_text(c)) for c in cands]
        return out


def test_teacher_cache_resumes_and_reloads_identically(tmp_path):
    qids = [f"q{i}" for i in range(7)]
    queries = ["x" * (i + 1) for i in range(7)]
    cands = [["d1", "d22"], ["d333"], ["d1", "d22", "d333"], ["d22"], ["d1"], ["d333", "d1"], ["d22", "d1"]]
    text = {"d1": "a", "d22": "bb", "d333": "ccc"}.__getitem__
    cache = TeacherCache(tmp_path / "teachers")
    with pytest.raises(KeyboardInterrupt):  # interrupted after two chunks of 2 queries
        cache.compute(_CountingTeacher(fail_after=2), qids, queries, cands, text, chunk=2)
    assert cache.done("count:v1") == {"q0", "q1", "q2", "q3"}
    assert not list((tmp_path / "teachers").rglob("*.tmp"))
    rerun = _CountingTeacher()
    cache.compute(rerun, qids, queries, cands, text, chunk=2)
    assert rerun.calls == 2  # only q4..q6 (two chunks)
    got = cache.load("count:v1", qids, cands)
    direct = _CountingTeacher().score(queries, cands, text)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(direct))
    np.testing.assert_array_equal(got[~np.isnan(got)], direct[~np.isnan(direct)])
    with pytest.raises(DataError, match="no cached score for query 'q0', document 'd9'"):
        cache.load("count:v1", ["q0"], [["d9"]])
    with pytest.raises(DataError, match="no cached scores for teacher 'other'"):
        cache.load("other", qids, cands)


def test_bm25_teacher_matches_bm25s_on_candidates():
    bm25s = pytest.importorskip("bm25s")
    from lsr.training import BM25Teacher
    ids = ["a", "b", "c", "d"]
    texts = ["vitamin d deficiency in bones", "bone fractures in the elderly", "stock markets", "vitamin c"]
    t = BM25Teacher(ids, texts, stemmer=None)
    got = t.score(["vitamin d bones"], [["c", "a", "d"]])
    ref = bm25s.BM25(k1=0.9, b=0.4)
    ref.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    full = ref.get_scores(bm25s.tokenize(["vitamin d bones"], stopwords="en", return_ids=False,
                                         show_progress=False)[0])
    np.testing.assert_allclose(got[0], full[[2, 0, 3]], rtol=1e-6)
    assert got[0, 1] > got[0, 2] > got[0, 0] == 0
    with pytest.raises(DataError, match="candidate 'zz' is not in the indexed corpus"):
        t.score(["vitamin"], [["zz"]])


# ------------------------------------------------------------ recipes, lsr train
def _beir_fixture(folder):
    import shutil
    from pathlib import Path
    fx = Path(__file__).resolve().parents[1] / "data" / "fixtures"
    folder.mkdir()
    shutil.copy(fx / "tiny_corpus.jsonl", folder / "corpus.jsonl")
    shutil.copy(fx / "tiny_queries.jsonl", folder / "queries.jsonl")
    (folder / "qrels").mkdir()
    shutil.copy(fx / "tiny_qrels.tsv", folder / "qrels" / "train.tsv")
    shutil.copy(fx / "tiny_qrels.tsv", folder / "qrels" / "dev.tsv")
    return folder


def test_recipe_validation(tmp_path):
    from lsr.training.recipe import RecipeError, load_recipe
    bad = tmp_path / "r.toml"
    bad.write_text('[model]\nbase = "splade-tiny"\n[data]\ntrain = "x"\n[loss]\nrankng = "kl"\n')
    with pytest.raises(RecipeError, match=r"r.toml: unknown key loss.rankng"):
        load_recipe(bad)
    bad.write_text('[model]\nbase = "splade-tiny"\n[data]\ntrain = "x"\n[loss]\ndocument_regularizer = "l2"\n')
    with pytest.raises(RecipeError, match="loss.document_regularizer = 'l2'; choose from"):
        load_recipe(bad)
    bad.write_text('[data]\ntrain = "x"\n')
    with pytest.raises(RecipeError, match="model.base is required"):
        load_recipe(bad)
    bad.write_text('[model\n')
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.toml")
    r = load_recipe("nfcorpus-splade-tiny-ensemble")  # shipped recipes load by name
    assert r["model"]["base"] == "splade-tiny" and r["mining"]["model"] == "splade-tiny"


def test_lsr_train_end_to_end_resumes_and_saves_a_loadable_model(tmp_path, student):
    from typer.testing import CliRunner

    from lsr.cli.app import app
    from lsr.encoders import load_encoder
    data = _beir_fixture(tmp_path / "tiny")
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(f'''name = "tiny"
[model]
base = "splade-tiny"
max_length = 32
[data]
train = "{data}"
train_split = "train"
dev = "{data}"
dev_split = "dev"
[mining]
n_negatives = 1
depth = 4
[teachers]
names = ["bm25", "sparse:splade-tiny"]
[loss]
document_regularizer = "idf_flops"
query_regularizer = "l1"
[schedule]
batch_size = 2
eval_steps = 1
''')
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(recipe), "-o", str(out), "--max-steps", "1", "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 1 and summary["examples"] >= 2
    assert summary["dev_history"] and 0 <= summary["dev_history"][-1]["dev_ndcg@10"] <= 1
    assert (out / "idf.npy").exists() and (out / "teachers").is_dir()
    mined = (out / "examples.parquet").stat().st_mtime_ns
    # the saved model records its max length (the default of `lsr index --model RUN/model`)
    from lsr.encoders.splade import recorded_max_length
    assert recorded_max_length(out / "model") == 32
    # the saved model loads by path through lsr and gives the trained model's encodings
    enc = load_encoder(str(out / "model"), max_length=32)
    from lsr.encoders.splade import load_sparse_encoder
    again = load_encoder(str(out / "model"), max_length=32)
    a, b = enc.encode(["vitamin d and bones"]), again.encode(["vitamin d and bones"])
    assert np.array_equal(a.indices, b.indices) and np.allclose(a.values, b.values)
    st = load_sparse_encoder(out / "model", 32)
    ref = st.encode(["vitamin d and bones"], convert_to_tensor=True).to_dense()[0].numpy()
    assert np.allclose(a.to_scipy().toarray()[0], ref, atol=1e-4)
    # rerun with more steps: mining and teachers are reused, training resumes from the checkpoint
    res = CliRunner().invoke(app, ["train", str(recipe), "-o", str(out), "--max-steps", "2", "-q"])
    assert res.exit_code == 0, res.output
    assert (out / "examples.parquet").stat().st_mtime_ns == mined
    assert json.loads((out / "summary.json").read_text())["steps"] == 2


def test_lsr_train_inference_free_student_learns_its_query_table_and_round_trips(tmp_path, student):
    """model.kind = "inference_free": documents through the MLM encoder, queries through a token-weight
    table started from the corpus idf; one step moves both sides; the saved model loads through lsr."""
    import torch
    from typer.testing import CliRunner

    from lsr.cli.app import app
    from lsr.encoders import load_encoder
    from lsr.encoders.splade import load_sparse_encoder
    data = _beir_fixture(tmp_path / "tiny")
    recipe = tmp_path / "if.toml"
    recipe.write_text(f'''name = "tiny-inference-free"
[model]
base = "splade-tiny"
max_length = 32
kind = "inference_free"
query_weights = "learned"
query_weights_lr = 0.1
[data]
train = "{data}"
train_split = "train"
[mining]
n_negatives = 1
depth = 4
[teachers]
names = ["bm25"]
[loss]
document_regularizer = "idf_flops"
query_regularizer = "none"
[schedule]
batch_size = 2
learning_rate = 1e-3
warmup_ratio = 0.0
''')
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(recipe), "-o", str(out), "--max-steps", "1", "-q"])
    assert res.exit_code == 0, res.output
    idf = np.load(out / "idf.npy")
    enc = load_encoder(str(out / "model"), max_length=32)
    assert enc.inference_free
    query = "vitamin d and bones"
    from lsr.training.students import document_tokenizer
    ids = sorted(set(document_tokenizer(enc.model)(query, add_special_tokens=False)["input_ids"]))
    q = enc.encode_queries([query]).to_scipy().toarray()[0]
    assert set(np.flatnonzero(q)) <= set(ids)  # a query holds only its own tokens: no expansion, no model
    table = dict(enc.model.named_parameters())
    weight = next(v for k, v in table.items() if k.endswith("weight") and v.ndim == 1 and v.shape[0] == len(idf))
    np.testing.assert_allclose(q[ids], weight.detach().numpy()[ids], rtol=1e-5)
    assert not np.allclose(weight.detach().numpy(), idf)  # the table was trained away from its idf start
    # the document side moved too, and documents still expand beyond their tokens
    from lsr.encoders.registry import resolve_model
    base = load_sparse_encoder(resolve_model("splade-tiny").path, 32)
    doc = "vitamin d deficiency and bone fractures"
    before = base.encode([doc], convert_to_tensor=True).to_dense()[0].numpy()
    d = enc.encode_documents([doc]).to_scipy().toarray()[0]
    assert not np.allclose(d, before, atol=1e-6)
    with torch.no_grad():
        ref = enc.model.encode_document([doc], convert_to_tensor=True).to_dense()[0].numpy()
    np.testing.assert_allclose(d, ref, atol=1e-4)  # lsr's fast document path = ST's document route
    again = load_encoder(str(out / "model"), max_length=32)
    assert np.array_equal(again.encode_queries([query]).to_scipy().toarray()[0], q)
    # indexed and searched by path like any model; the query side is the table
    from lsr.data import load_dataset
    from lsr.retrieval import Searcher, build_index
    ds = load_dataset(data, split="train")
    build_index(ds, str(out / "model"), tmp_path / "idx", index_type="exact", max_length=32, progress=False)
    ids, scores = Searcher(tmp_path / "idx").batch_search_ids([query], 3)
    text = {x.doc_id: x.full_text for x in ds.docs()}
    top = again.encode_documents([text[ids[0, 0]]]).to_scipy().toarray()[0]
    assert scores[0, 0] >= scores[0, 1] > 0
    assert scores[0, 0] == pytest.approx(float(q @ top), rel=1e-3)  # table weights x document weights


def test_sparse_and_dense_teachers_score_each_candidate_once_and_consistently(student):
    from lsr.encoders import load_encoder
    from lsr.training import DenseTeacher, SparseTeacher
    text = {"a": "vitamin d deficiency and bone fractures", "b": "stock markets fell sharply",
            "c": "bone density in the elderly"}.__getitem__
    queries = ["vitamin d and bones", "markets"]
    cands = [["a", "b", "c"], ["b", "a"]]
    sparse = SparseTeacher("splade-tiny", max_length=32).score(queries, cands, text)
    enc = load_encoder("splade-tiny", max_length=32)
    d = enc.encode_documents([text(c) for c in "abc"]).to_scipy()
    q = enc.encode_queries(queries).to_scipy()
    direct = (q @ d.T).toarray()
    np.testing.assert_allclose(sparse[0], direct[0], rtol=1e-5)
    np.testing.assert_allclose(sparse[1, :2], direct[1, [1, 0]], rtol=1e-5)
    assert np.isnan(sparse[1, 2])  # a shorter candidate list is padded with NaN
    # chunk by chunk (as TeacherCache calls it): same scores, each document encoded once over all chunks
    teacher, encoded = SparseTeacher("splade-tiny", max_length=32), []
    encode = teacher._encode
    teacher._encode = lambda texts: (encoded.extend(texts), encode(texts))[1]
    first, second = teacher.score(queries[:1], cands[:1], text), teacher.score(queries[1:], cands[1:], text)
    np.testing.assert_allclose(first[0], sparse[0], rtol=1e-5)
    np.testing.assert_allclose(second[0, :2], sparse[1, :2], rtol=1e-5)
    assert sorted(encoded) == sorted(text(c) for c in "abc")
    try:
        dense = DenseTeacher("minilm").score(queries, cands, text)
    except Exception as e:
        pytest.skip(f"minilm not installed ({e})")
    assert dense.shape == (2, 3) and np.isnan(dense[1, 2])
    assert dense[0, 0] > dense[0, 1] and dense[1, 0] > dense[1, 1]  # the on-topic document wins
    assert (np.abs(dense[~np.isnan(dense)]) <= 1 + 1e-5).all()  # cosine


def test_mining_and_examples_errors_name_the_problem(tmp_path):
    from lsr.data import load_dataset
    from lsr.training.mining import mine_hard_negatives, read_examples
    folder = _beir_fixture(tmp_path / "tiny")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t0\n")
    ds = load_dataset(folder, split="train")
    with pytest.raises(DataError, match="no query has a relevant judgement to mine negatives for"):
        mine_hard_negatives(None, ds)
    with pytest.raises(DataError, match="training examples file .*missing.parquet does not exist"):
        read_examples(tmp_path / "missing.parquet")


def test_pick_positives_best_takes_highest_judgement_then_best_rank():
    import random

    from lsr.training.trainer import pick_positives
    rows = [{"positive": "a", "positive_grade": 1, "positive_rank": 0},
            {"positive": "b", "positive_grade": 2, "positive_rank": -1},   # not retrieved, but judged higher
            {"positive": "c", "positive_grade": 2, "positive_rank": 7},
            {"positive": "d", "positive_grade": 1, "positive_rank": -1}]
    assert [r["positive"] for r in pick_positives(rows, 2, "best", random.Random(0))] == ["c", "b"]
    assert [r["positive"] for r in pick_positives(rows, 10, "best", random.Random(0))] == ["c", "b", "a", "d"]
    picked = pick_positives(rows, 2, "random", random.Random(0))
    assert len(picked) == 2 and len({r["positive"] for r in picked}) == 2


def test_mining_records_each_positives_judgement_and_rank(tmp_path):
    from lsr.data import load_dataset
    from lsr.training.mining import mine_hard_negatives
    folder = _beir_fixture(tmp_path / "tiny")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t2\nq1\td5\t1\n")
    ds = load_dataset(folder, split="train")

    class Ranked:  # a searcher whose ranking is fixed: d1 d2 d3 d4 (d5 not retrieved)
        def batch_search_ids(self, texts, k):
            return np.array([["d1", "d2", "d3", "d4"][:k]] * len(texts)), None

    rows = {r["positive"]: r for r in mine_hard_negatives(Ranked(), ds, n_negatives=2, depth=4)}
    assert rows["d2"]["positive_grade"] == 2 and rows["d2"]["positive_rank"] == 1
    assert rows["d5"]["positive_grade"] == 1 and rows["d5"]["positive_rank"] == -1
    assert rows["d2"]["negatives"] == ["d1", "d3"] and rows["d2"]["negative_ranks"] == [0, 2]


def test_build_student_refuses_what_it_cannot_build(student):
    from lsr.training.students import build_student
    with pytest.raises(ValueError, match="student kind 'dual'; choose from siamese, inference_free"):
        build_student(student, "dual")
    with pytest.raises(ValueError, match="needs query weights: an idf vector"):
        build_student(student, "inference_free")
    with pytest.raises(ValueError, match="the idf vector has 3 entries, the model's tokenizer 30522"):
        build_student(student, "inference_free", idf=np.ones(3))
    free = build_student(student, "inference_free", idf=np.ones(30522, np.float32))
    with pytest.raises(ValueError, match="the base model is inference-free"):
        build_student(free, "siamese")
