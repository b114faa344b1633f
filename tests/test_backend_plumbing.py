"""The inference backend through indexing, search, writes, serving and the CLI: recorded at build, used by
default at search (an explicit one overrides it), kept by `lsr add`, refused when misspelt or unavailable."""
import json
import os
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from lsr.cli.app import app
from lsr.errors import ModelError, ParameterError
from lsr.retrieval import HybridSearcher, Retriever, Searcher

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TOPICS = {
    "bone": "vitamin D calcium bone density fracture osteoporosis skeleton",
    "lung": "smoking lungs cancer tumour airway breathing asthma",
    "heart": "exercise heart blood pressure artery cholesterol cardiac",
    "gene": "gene expression stem cells DNA mutation protein differentiation",
    "brain": "brain neurons memory sleep cognition dementia synapse",
}
QUERIES = ["does vitamin D protect against fractures", "smoking and lung cancer risk", "exercise lowers blood pressure",
           "stem cell gene expression", "sleep and memory in the brain", "protein mutations in tumours"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """A fresh export cache for this module (the user's ~/.cache/lsr is left alone)."""
    old = os.environ.get("LSR_CACHE")
    os.environ["LSR_CACHE"] = str(tmp_path_factory.mktemp("lsr-cache"))
    yield
    if old is None:
        os.environ.pop("LSR_CACHE", None)
    else:
        os.environ["LSR_CACHE"] = old


def _docs(n: int, seed: int, prefix: str = "d") -> list[dict]:
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    docs = []
    for i in range(n):
        words = TOPICS[names[i % len(names)]].split() + TOPICS[names[(i * 3 + 1) % len(names)]].split()[:3]
        picked = rng.choice(words, size=int(rng.integers(5, 12)))
        docs.append({"doc_id": f"{prefix}{i}", "title": names[i % len(names)], "text": " ".join(picked) + "."})
    return docs


def _write_jsonl(path, docs):
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _write_jsonl(tmp_path_factory.mktemp("corpus") / "corpus.jsonl", _docs(40, 0))


@pytest.fixture(scope="module")
def onnx_index(tmp_path_factory, corpus):
    """The corpus indexed through the CLI on the onnx backend, with a MiniLM dense list (and a BM25 list)."""
    out = tmp_path_factory.mktemp("onnx") / "index"
    res = run("index", corpus, "-m", "splade-tiny", "--dense", "minilm", "--backend", "onnx", "--threads", "1",
              "--index-type", "exact", "-o", out, "-q")
    assert res.exit_code == 0, res.output
    return out


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_index_records_the_backend(onnx_index):
    assert _manifest(onnx_index)["encoder"]["backend"] == "onnx"
    assert json.loads((onnx_index / "dense" / "dense.json").read_text())["backend"] == "onnx"
    assert json.loads((onnx_index / "vectors" / "encode.json").read_text())["backend"] == "onnx"
    assert "backend" not in _manifest(onnx_index / "lexical")["encoder"]  # BM25 runs no model
    res = run("info", onnx_index)
    assert res.exit_code == 0, res.output
    assert "backend onnx)" in res.output and "minilm, float32, backend onnx" in res.output


def test_search_uses_the_recorded_backend_and_matches_torch(onnx_index):
    default, torch_ = Retriever.load(onnx_index), Retriever.load(onnx_index, backend="torch")
    assert default._searcher.backend == "onnx" and default._searcher.encoder.backend == "onnx"
    assert torch_._searcher.encoder.backend == "torch"
    ids, scores = default.batch_search_ids(QUERIES, 10)
    ids_t, scores_t = torch_.batch_search_ids(QUERIES, 10)
    assert (ids == ids_t).all()
    assert np.abs(scores - scores_t).max() <= 1e-4
    assert torch_.with_params()._searcher.encoder.backend == "torch"  # a copy keeps its backend
    assert Searcher(onnx_index, threads=1).encoder.threads == 1


def test_hybrid_dense_list_runs_on_its_recorded_backend(onnx_index):
    hybrid = Retriever.load(onnx_index, mode="hybrid")
    dense = hybrid._hybrid._lists["dense"]
    assert dense.backend == "onnx" and dense.encoder.backend == "onnx"
    torch_ = HybridSearcher(onnx_index, backend="torch")
    assert torch_._lists["dense"].encoder.backend == "torch" and torch_.main.encoder.backend == "torch"
    got = [h.doc_id for h in hybrid.search(QUERIES[0], 10)]
    assert got == [h.doc_id for h in torch_.search(QUERIES[0], 10)]


def test_a_bad_backend_or_threads_is_refused(onnx_index, corpus, tmp_path):
    for call in (lambda: Retriever.load(onnx_index, backend="tensorrt"), lambda: Searcher(onnx_index, backend="tensorrt"),
                 lambda: HybridSearcher(onnx_index, backend="tensorrt")):
        with pytest.raises(ModelError, match="tensorrt"):
            call()
    with pytest.raises(ModelError, match="threads"):
        Retriever.load(onnx_index, threads=0)
    for args in (("search", onnx_index, "bone", "--backend", "tensorrt"),
                 ("eval", onnx_index, "beir/scifact/test", "--backend", "tensorrt"),
                 ("index", corpus, "-m", "splade-tiny", "-o", tmp_path / "x", "--backend", "tensorrt"),
                 ("encode", corpus, "-m", "splade-tiny", "-o", tmp_path / "v", "--backend", "tensorrt")):
        res = run(*args)
        assert res.exit_code == 1 and "tensorrt" in res.output, (args, res.output)
    assert not (tmp_path / "x").exists() and not (tmp_path / "v").exists()


def test_an_unavailable_device_is_a_clear_error(onnx_index, corpus, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for args, device in ((("search", onnx_index, "bone", "--device", "cuda"), "cuda"),  # recorded backend: onnx
                         (("search", onnx_index, "bone", "--device", "cuda:1", "--backend", "torch"), "cuda:1"),
                         (("search", onnx_index, "bone", "--device", "gpu"), "gpu"),
                         (("encode", corpus, "-m", "splade-tiny", "-o", tmp_path / "v", "--device", "cuda"), "cuda"),
                         (("index", corpus, "-m", "splade-tiny", "-o", tmp_path / "i", "--device", "cuda"), "cuda"),
                         (("serve", onnx_index, "--device", "cuda"), "cuda")):
        res = run(*args)
        assert res.exit_code == 1 and f"error: device {device!r}" in res.output, (args, res.output)
    with pytest.raises(ModelError, match="device 'cuda'"):
        Retriever.load(onnx_index, backend="torch", device="cuda")


def test_cli_search_and_eval_take_the_options(onnx_index, corpus, tmp_path):
    res = run("search", onnx_index, QUERIES[1], "--json", "--backend", "torch", "--threads", "1", "--device", "cpu")
    assert res.exit_code == 0, res.output
    res_onnx = run("search", onnx_index, QUERIES[1], "--json")
    assert [h["doc_id"] for h in json.loads(res.output)["hits"]] == \
        [h["doc_id"] for h in json.loads(res_onnx.output)["hits"]]
    queries = _write_jsonl(tmp_path / "q.jsonl", [{"_id": f"q{i}", "text": q} for i, q in enumerate(QUERIES)])
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                        + "".join(f"q{i}\td{i}\t1\nq{i}\td{i + 5}\t1\n" for i in range(len(QUERIES))))
    results = []
    for extra in ((), ("--backend", "torch", "--threads", "1")):
        res = run("eval", onnx_index, corpus, "--queries", queries, "--qrels", tmp_path / "qrels.tsv", "--hybrid",
                  "--json", "-k", "10", "--metrics", "nDCG@10", *extra)
        assert res.exit_code == 0, res.output
        results.append(json.loads(res.stdout)["nDCG@10"])
    assert round(results[0], 4) == round(results[1], 4)


def test_an_index_without_a_recorded_backend_searches_with_torch(onnx_index, tmp_path):
    from lsr.index.dense import DenseIndex
    from lsr.index.storage import manifest_checksum, update_manifest
    old = tmp_path / "old"
    shutil.copytree(onnx_index, old)
    m = _manifest(old)
    del m["encoder"]["backend"]
    m["checksum"] = manifest_checksum(m)
    (old / "manifest.json").write_text(json.dumps(m))
    cfg = json.loads((old / "dense" / "dense.json").read_text())
    del cfg["backend"]
    (old / "dense" / "dense.json").write_text(json.dumps(cfg))
    update_manifest(old, {}, files=("dense/dense.json",))
    assert DenseIndex.load(old / "dense").backend == "torch"
    r = Retriever.load(old, mode="hybrid")
    assert r._searcher.backend == "torch" and r._searcher.encoder.backend == "torch"
    assert r._hybrid._lists["dense"].encoder.backend == "torch"
    assert Retriever.load(old, backend="onnx")._searcher.encoder.backend == "onnx"  # an explicit one still wins


def test_add_encodes_with_the_recorded_backend(onnx_index, tmp_path, monkeypatch):
    import lsr.encoders
    import lsr.encoders.dense
    index = tmp_path / "living"
    shutil.copytree(onnx_index, index)
    used = []
    load, Dense = lsr.encoders.load_encoder, lsr.encoders.dense.DenseEncoder

    def recording_load(*args, **kw):
        used.append(("sparse", kw.get("backend")))
        return load(*args, **kw)

    class RecordingDense(Dense):
        def __init__(self, *args, **kw):
            used.append(("dense", kw.get("backend")))
            super().__init__(*args, **kw)

    monkeypatch.setattr(lsr.encoders, "load_encoder", recording_load)
    monkeypatch.setattr(lsr.encoders.dense, "DenseEncoder", RecordingDense)
    new = _write_jsonl(tmp_path / "new.jsonl", _docs(3, 1, prefix="n"))
    res = run("add", index, new, "--threads", "1", "-q")
    assert res.exit_code == 0, res.output
    assert used == [("sparse", "onnx"), ("dense", "onnx")]
    from lsr.index import commit as commits
    segment = index / commits.newest(index)["segments"][-1]["name"]
    assert _manifest(segment)["encoder"]["backend"] == "onnx"
    assert json.loads((segment / "dense" / "dense.json").read_text())["backend"] == "onnx"
    r = Retriever.load(index, mode="hybrid")
    assert r._searcher.encoder.backend == "onnx" and r._hybrid._lists["dense"].encoder.backend == "onnx"
    assert len(r) == 43


def test_encode_records_the_backend_and_index_keeps_it(corpus, tmp_path):
    vectors = tmp_path / "vectors"
    res = run("encode", corpus, "-m", "splade-tiny", "--backend", "onnx", "-o", vectors, "-q")
    assert res.exit_code == 0, res.output
    assert json.loads((vectors / "encode.json").read_text())["backend"] == "onnx"
    res = run("encode", corpus, "-m", "splade-tiny", "--backend", "torch", "-o", vectors, "-q")
    assert res.exit_code == 1 and "backend ('onnx' vs 'torch')" in res.output  # never resumed with other vectors
    res = run("index", vectors, "-o", tmp_path / "index", "-q")
    assert res.exit_code == 0, res.output
    assert _manifest(tmp_path / "index")["encoder"]["backend"] == "onnx"
    assert Searcher(tmp_path / "index").encoder.backend == "onnx"
    res = run("index", vectors, "-o", tmp_path / "other", "--backend", "torch", "-q")
    assert res.exit_code == 1 and "backend" in res.output and "already encoded" in res.output


def test_a_bm25_index_runs_no_model(corpus, tmp_path):
    res = run("index", corpus, "-m", "bm25", "-o", tmp_path / "bm25", "--backend", "onnx", "-q")
    assert res.exit_code == 1 and "backend" in res.output and "no neural model" in res.output
    res = run("index", corpus, "-m", "bm25", "-o", tmp_path / "bm25", "-q")
    assert res.exit_code == 0, res.output
    assert "backend" not in _manifest(tmp_path / "bm25")["encoder"]
    s = Searcher(tmp_path / "bm25", backend="onnx")  # Python: nothing runs, nothing to refuse
    assert s.backend is None and s.search("bone density", 3)
    res = run("search", tmp_path / "bm25", "bone density", "--backend", "onnx")
    assert res.exit_code == 1 and "--backend applies to a neural model" in res.output


def test_build_index_in_python(corpus, tmp_path):
    from lsr.retrieval import build_index
    with pytest.raises(ParameterError, match="backend"):
        build_index(corpus, "bm25", tmp_path / "b", backend="onnx", progress=False)
    build_index(corpus, "splade-tiny", tmp_path / "t", progress=False, threads=1)
    assert _manifest(tmp_path / "t")["encoder"]["backend"] == "torch"


def test_serve_state_uses_the_recorded_backend(onnx_index):
    from lsr.serve.state import ServeConfig, ServerState
    state = ServerState(ServeConfig(str(onnx_index), mode="sparse", threads=2, model_threads=1))
    searcher = state.retriever("sparse")._searcher
    assert searcher.encoder.backend == "onnx" and searcher.encoder.threads == 1
    state.encode(["vitamin D and bone density"], "document")
    assert state._doc_encoder.backend == "onnx" and state._doc_encoder.threads == 1
    state = ServerState(ServeConfig(str(onnx_index), mode="sparse", threads=1, backend="torch"))
    assert state.retriever("sparse")._searcher.encoder.backend == "torch"


def test_a_cold_cli_search_on_an_onnx_index_never_imports_torch(onnx_index):
    """The point of a cached graph: `lsr search` starts, encodes and answers with ONNX Runtime and tokenizers
    only (importing torch alone takes over a second)."""
    import subprocess
    import sys
    code = ("import sys; from lsr.cli.app import main; sys.argv = ['lsr', 'search', sys.argv[1], 'vitamin D and "
            "fractures', '-k', '3']\ntry:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('HEAVY', sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(onnx_index)], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
    import re
    assert re.search(r"\bd\d+\b", out.stdout), out.stdout  # it printed hits (doc ids d0, d1, ...)
