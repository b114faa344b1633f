"""ONNX Runtime backends (lsr.encoders.backends, onnx_export, onnx_runtime): same vectors as torch, int8 close,
a cache keyed by the model's files, torch-free loading, clear errors."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import BEIR, needs_shared
from lsr.encoders import load_encoder, resolve_model
from lsr.encoders.dense import DenseEncoder
from lsr.errors import ModelError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """A fresh export cache for this module (the user's ~/.cache/lsr is left alone)."""
    old = os.environ.get("LSR_CACHE")
    path = tmp_path_factory.mktemp("lsr-cache")
    os.environ["LSR_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LSR_CACHE", None)
    else:
        os.environ["LSR_CACHE"] = old


@pytest.fixture(scope="module")
def texts():
    """Real scifact documents of every length (a few past 256 tokens, so truncation is exercised), plus
    short and odd texts."""
    import gzip
    path = BEIR / "scifact" / "corpus.jsonl.gz"
    if not path.exists():
        pytest.skip(f"needs {path}")
    with gzip.open(path, "rt") as f:
        docs = [json.loads(next(f)) for _ in range(48)]
    return [f"{d['title']} {d['text']}".strip() for d in docs] + ["a", "", "Vitamin D and BONE density?", "é ü 中文"]


def dense_rows(vectors):
    return vectors.to_scipy().toarray()


@needs_shared
def test_onnx_splade_equals_torch(texts, splade_tiny):
    onnx = load_encoder("splade-tiny", backend="onnx")
    assert onnx.backend == "onnx" and onnx.vocab.fingerprint == splade_tiny.vocab.fingerprint
    ref, got = dense_rows(splade_tiny.encode(texts)), dense_rows(onnx.encode(texts, batch_size=8))
    assert np.abs(ref - got).max() <= 1e-4
    assert ((ref > 0) != (got > 0)).sum() <= 2  # the same terms (a weight of ~1e-7 may round either way)
    queries = ["what causes bone loss", "p53 mutations in lung cancer"]
    assert np.abs(dense_rows(splade_tiny.encode_queries(queries)) - dense_rows(onnx.encode_queries(queries))).max() <= 1e-4
    for t in texts[:3] + ["a"]:
        assert onnx.token_length(t) == splade_tiny.token_length(t)
    assert len(onnx.encode([])) == 0


@needs_shared
def test_onnx_int8_is_int8_and_close(texts, splade_tiny):
    int8 = load_encoder("splade-tiny", backend="onnx-int8")
    folder = _export_folder("splade-tiny", "onnx-int8")
    import onnx
    ops = {n.op_type for n in onnx.load(str(folder / "model.onnx")).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops  # the body's matrices are int8
    fp32 = _export_folder("splade-tiny", "onnx")  # the int8 head is a quarter of the float one; embeddings stay float
    assert (folder / "model.onnx").stat().st_size < 0.7 * (fp32 / "model.onnx").stat().st_size
    ref, got = dense_rows(splade_tiny.encode(texts)), dense_rows(int8.encode(texts))
    # Approximate, but the same top terms: mean overlap of each document's 20 heaviest terms.
    overlap = [len(set(np.argsort(-r)[:20]) & set(np.argsort(-g)[:20])) / 20 for r, g in zip(ref[:48], got[:48])]
    assert np.mean(overlap) >= 0.8, np.mean(overlap)
    assert np.abs(ref - got).max() < 0.6


def _export_folder(name, backend):
    from lsr.encoders.backends import export_dir
    from lsr.encoders.fingerprint import model_fingerprint
    return export_dir(name, model_fingerprint(name), backend)


@needs_shared
def test_onnx_dense_equals_torch(texts):
    torch_enc, onnx_enc = DenseEncoder("minilm"), DenseEncoder("minilm", backend="onnx", threads=1)
    ref, got = torch_enc.encode(texts), onnx_enc.encode(texts)
    assert onnx_enc.dim == torch_enc.dim == ref.shape[1]
    assert np.abs(ref - got).max() <= 1e-4
    int8 = DenseEncoder("minilm", backend="onnx-int8").encode(texts)
    cos = (int8 * ref).sum(1) / np.linalg.norm(int8, axis=1)
    assert cos.min() > 0.97, cos.min()


def test_cache_is_reused_and_keyed_by_the_model_files(tmp_path, caplog):
    model = tmp_path / "my-splade"
    shutil.copytree(resolve_model("splade-tiny").path, model)
    enc = load_encoder(str(model), backend="onnx")
    first = _export_folder(str(model), "onnx")
    assert (first / "model.onnx").exists() and json.loads((first / "export.json").read_text())["backend"] == "onnx"
    stamp = (first / "model.onnx").stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level("WARNING", logger="lsr"):
        again = load_encoder(str(model), backend="onnx")
    assert "exporting" not in caplog.text and (first / "model.onnx").stat().st_mtime_ns == stamp
    v = again.encode_queries(["bone density"])
    assert v.nnz > 0 and np.array_equal(v.indices, enc.encode_queries(["bone density"]).indices)
    (model / "NOTES.md").write_text("retrained\n")  # any change to the model's files means another export
    load_encoder(str(model), backend="onnx")
    assert _export_folder(str(model), "onnx") != first


def test_cached_graph_loads_without_torch(cache):
    load_encoder("splade-tiny", backend="onnx")  # exported (torch is imported here, once)
    code = ("import sys; from lsr.encoders import load_query_encoder; "
            "e = load_query_encoder('splade-tiny', backend='onnx'); v = e.encode_queries(['bone density']); "
            "assert v.nnz > 0; "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))")
    env = dict(os.environ, LSR_CACHE=str(cache))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_errors_name_the_problem():
    with pytest.raises(ModelError, match="unknown backend 'onnx-fp8'"):
        load_encoder("splade-tiny", backend="onnx-fp8")
    with pytest.raises(ModelError, match="threads"):
        load_encoder("splade-tiny", backend="onnx", threads=0)
    with pytest.raises(ModelError, match="composition"):
        load_encoder("prosper-splade-tiny", backend="onnx")
    with pytest.raises(ModelError, match="cuda"):
        load_encoder("splade-tiny", backend="onnx", device="cuda")
    with pytest.raises(ModelError, match="unknown backend"):
        DenseEncoder("minilm", backend="tensorrt")


def test_a_damaged_cached_graph_is_a_clear_error():
    load_encoder("splade-tiny", backend="onnx")
    path = _export_folder("splade-tiny", "onnx") / "model.onnx"
    data = path.read_bytes()
    try:
        path.write_bytes(data[: len(data) // 3])
        with pytest.raises(ModelError, match="delete"):
            load_encoder("splade-tiny", backend="onnx")
    finally:
        path.write_bytes(data)


def test_two_threads_load_two_torch_models_at_once():
    """transformers builds on the meta device and then moves: unguarded, two concurrent loads can fail with
    "Cannot copy out of meta tensor" (a server's first requests, a hybrid search's lists)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:
        for _ in range(2):
            sparse = pool.submit(load_encoder, "splade-tiny")
            dense = pool.submit(DenseEncoder, "minilm")
            assert sparse.result().encode_queries(["bone"]).nnz > 0
            assert dense.result().encode(["bone"]).shape == (1, 384)


@needs_shared
def test_duplicate_texts_get_identical_vectors_whatever_their_batch(texts, splade_tiny):
    """A document and its copy score exactly alike (not 1e-6 apart after landing in batches of different
    padding), on every backend; progress still counts every text."""
    batch = texts[:40] + [texts[3]] + texts[40:] + [texts[3], texts[10]]
    for enc in (splade_tiny, load_encoder("splade-tiny", backend="onnx")):
        done = []
        v = enc.encode(batch, batch_size=8, progress=done.append)
        assert sum(done) == len(batch) and len(v) == len(batch)
        rows = dense_rows(v)
        assert np.array_equal(rows[3], rows[40]) and np.array_equal(rows[3], rows[-2])
        assert np.array_equal(rows[10], rows[-1])
    for enc in (DenseEncoder("minilm"), DenseEncoder("minilm", backend="onnx")):
        e = enc.encode(batch)
        assert np.array_equal(e[3], e[40]) and np.array_equal(e[10], e[-1])
