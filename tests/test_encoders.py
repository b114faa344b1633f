import json
from itertools import islice

import pytest

from conftest import BEIR, needs_shared
from lsr.data import load_dataset
from lsr.encoders import resolve_model
from lsr.errors import DataError, ModelError
from lsr.sparse import SparseVectors, read_vectors


def test_bundled_names_resolve_offline():
    m = resolve_model("splade-tiny")
    assert m.source == "bundled" and m.kind == "splade" and (m.path / "config.json").exists()
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2").path == resolve_model("minilm").path


def test_local_folder_resolves(tmp_path):
    assert resolve_model(str(tmp_path)).source == "local"


def test_unknown_model_offline_is_clear():
    with pytest.raises(ModelError) as e:
        resolve_model("naver/splade-v3-not-cached")
    msg = str(e.value)
    assert "unknown model 'naver/splade-v3-not-cached'" in msg
    assert "splade-tiny" in msg and "Hugging Face hub" in msg and "Traceback" not in msg


def test_missing_local_path():
    with pytest.raises(ModelError, match="model folder not found"):
        resolve_model("./models/none/here")
    with pytest.raises(ModelError, match="empty model name"):
        resolve_model(" ")


@needs_shared
def test_fast_path_equals_sentence_transformers(splade_tiny):
    docs = [d.full_text for d in islice(load_dataset(BEIR / "scifact").docs(), 48)]
    docs += ["", "a", "word " * 600]  # empty, one token, truncated at max_length
    ours = splade_tiny.encode_documents(docs, batch_size=8)
    ref = SparseVectors.from_torch(splade_tiny.model.encode_document(docs, batch_size=8), splade_tiny.vocab)
    assert len(ours) == len(docs)
    diff = abs(ours.to_scipy() - ref.to_scipy()).max()
    assert diff < 1e-4
    # Same support up to weights that round to zero at float tolerance.
    assert abs(int(ours.nnz) - int(ref.nnz)) <= 2
    assert ours.row_nnz().mean() > 50  # real SPLADE expansion, not a stub


def test_query_weights_are_lexical(splade_tiny):
    v = splade_tiny.encode_queries(["vitamin d deficiency"])
    top = list(v.to_dicts(top=5)[0])
    assert "vitamin" in top and "deficiency" in top


def test_encoder_save_load_round_trip(splade_tiny, tmp_path):
    from lsr.encoders import load_encoder
    splade_tiny.save(tmp_path / "m")
    assert (tmp_path / "m" / "modules.json").exists()
    again = load_encoder(str(tmp_path / "m"))
    texts = ["sparse retrieval with splade", "bone density"]
    assert again.encode(texts).equals(splade_tiny.encode(texts), atol=1e-6)


def test_encode_resumes_after_interruption(splade_tiny, tmp_path, fixtures_dir):
    from lsr.encoders.shards import encode_corpus, read_settings
    ds = load_dataset(fixtures_dir / "tiny_corpus.jsonl")
    full = encode_corpus(ds, splade_tiny, tmp_path / "full", shard_size=1, progress=False)
    assert len(full) == 4

    calls = {"n": 0}
    real = splade_tiny.encode_documents

    def flaky(texts, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(texts, **kw)
    splade_tiny.encode_documents = flaky
    try:
        with pytest.raises(KeyboardInterrupt):
            encode_corpus(ds, splade_tiny, tmp_path / "resumed", shard_size=1, progress=False)
    finally:
        del splade_tiny.encode_documents
    assert len(list((tmp_path / "resumed").glob("shard-*.parquet"))) == 2
    assert not read_settings(tmp_path / "resumed").get("complete")
    resumed = encode_corpus(ds, splade_tiny, tmp_path / "resumed", shard_size=1, progress=False)
    a_ids, a = read_vectors(full)
    b_ids, b = read_vectors(resumed)
    assert a_ids == b_ids == ["d1", "d2", "d3", "d4"] and a.equals(b, atol=1e-6)


def test_encode_refuses_other_settings(splade_tiny, tmp_path, fixtures_dir):
    from lsr.encoders.shards import encode_corpus
    ds = load_dataset(fixtures_dir / "tiny_corpus.jsonl")
    encode_corpus(ds, splade_tiny, tmp_path / "v", shard_size=2, progress=False)
    with pytest.raises(DataError, match=r"encoded from other content or settings \(shard_size \(2 vs 3\)"):
        encode_corpus(ds, splade_tiny, tmp_path / "v", shard_size=3, progress=False)
    meta = json.loads((tmp_path / "v" / "encode.json").read_text())
    assert meta["complete"] and meta["docs"] == 4 and meta["model"] == "splade-tiny"


def test_a_copy_of_a_document_in_a_later_chunk_gets_its_twins_vector(splade_tiny, tmp_path):
    """Two documents with one text score exactly alike even when the copy is encoded in another chunk (a
    float32 vector moves by ~1e-6 with its batch's padding, enough to swap the twins in a ranking)."""
    from lsr.encoders.shards import encode_corpus

    class PaddingSensitive:  # the real encoder, plus a per-call wobble: what batch-dependent rounding does
        def __init__(self, inner):
            self.inner, self.calls = inner, 0
            self.name, self.kind, self.vocab, self.max_length = inner.name, inner.kind, inner.vocab, inner.max_length

        def encode_documents(self, texts, progress=None):
            self.calls += 1
            v = self.inner.encode_documents(texts)
            return SparseVectors(v.indptr, v.indices, v.values * (1 + 1e-6 * self.calls), v.vocab)

    docs = [{"_id": f"d{i}", "text": t} for i, t in enumerate(
        ["vitamin d and bones", "smoking and lungs", "exercise and the heart", "sleep and memory",
         "smoking and lungs", "gene expression", "vitamin d and bones"])]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    enc = PaddingSensitive(splade_tiny)
    encode_corpus(load_dataset(corpus), enc, tmp_path / "v", chunk=2, progress=False)
    ids, vectors = read_vectors(sorted((tmp_path / "v").glob("*.parquet")))
    rows = dict(zip(ids, vectors.to_scipy().toarray()))
    assert enc.calls == 4
    assert (rows["d1"] == rows["d4"]).all() and (rows["d0"] == rows["d6"]).all()
    assert not (rows["d2"] == rows["d3"]).all()
