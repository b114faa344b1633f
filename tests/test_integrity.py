"""Integrity of index directories: checksummed manifest, verified files, bounds, k, `lsr check` (issue 20)."""
import json
import logging
import shutil
from collections import namedtuple

import numpy as np
import pytest
import scipy.sparse as sp

from lsr.errors import IndexError_, ParameterError, QueryError
from lsr.index import ExactIndex, SeismicIndex, load_index
from lsr.index.docs import write_docstore
from lsr.index.storage import manifest_checksum, update_manifest

Doc = namedtuple("Doc", "doc_id title text metadata")
N, DIM = 300, 200
DOCS = sp.random(N, DIM, density=0.06, format="csr", random_state=np.random.default_rng(3), dtype=np.float32)
QUERIES = sp.random(4, DIM, density=0.1, format="csr", random_state=np.random.default_rng(4), dtype=np.float32)
TYPES = {"exact": ExactIndex, "seismic": SeismicIndex}


def _build(cls, folder, docs=DOCS, lexical=False):
    index = cls.build(docs)

    def extras(tmp):
        write_docstore(tmp, (Doc(str(i), f"t{i}", f"text {i}", {"n": i}) for i in range(N)), index.doc_ids)
        if lexical:
            ExactIndex.build(docs).save(tmp / "lexical")
    index.save(folder, extra_writer=extras)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    return {name: _build(cls, root / name) for name, cls in TYPES.items()}


@pytest.fixture
def copy(built, tmp_path):
    def make(name):
        return shutil.copytree(built[name], tmp_path / name)
    return make


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def _write_manifest(folder, m, sign=True):
    if sign:
        m["checksum"] = manifest_checksum(m)
    (folder / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("name", TYPES)
def test_same_size_corruption_of_every_file_refused(copy, name):
    folder = copy(name)
    rng = np.random.default_rng(20)
    listed = sorted(_manifest(folder)["files"])
    assert {"docs.parquet", "doc_ids.parquet", "vocab.json"} <= set(listed)
    for file in listed:
        path = folder / file
        original = path.read_bytes()
        data = bytearray(original)
        for offset in rng.integers(0, len(data), size=3):
            data[offset] ^= 1 + int(rng.integers(0, 255))
        path.write_bytes(bytes(data))
        with pytest.raises(IndexError_, match=file.replace(".", "\\.")):
            load_index(folder)
        path.write_bytes(original)
    assert len(load_index(folder)) == N


@pytest.mark.parametrize("name,array,value", [
    ("seismic", "fwd_idx", 65535), ("seismic", "block_docs", 2 ** 30), ("seismic", "block_docs", -5),
    ("seismic", "fwd_codes", 0x7C00), ("seismic", "list_block_ptr", 0), ("seismic", "block_fwd", 1 << 40),
    ("seismic", "ent_blk", 255), ("seismic", "dir_cnt", 200), ("seismic", "sum_scale", np.nan),
    ("exact", "post_docs", N), ("exact", "post_docs", -1), ("exact", "post_ptr", 10 ** 9),
    ("exact", "post_vals", np.inf)])
def test_out_of_bounds_values_are_an_error_not_a_segfault(copy, name, array, value):
    """Values written with a re-signed manifest (checksums consistent): bounds at load catch them, on
    the quick path too, before any kernel runs."""
    folder = copy(name)
    path = folder / f"{array}.npy"
    a = np.load(path)
    a[len(a) // 2] = value
    np.save(path, a)
    update_manifest(folder, {}, files=(f"{array}.npy",))
    named = "(dir_cnt|dir_off)" if array == "dir_cnt" else array  # counts and sampled offsets disagree
    for verify in ("full", "quick"):
        with pytest.raises(IndexError_, match=f"{named}\\.npy: .*\\(corrupt index\\); rebuild"):
            load_index(folder, verify=verify)


def test_manifest_edits_refused(copy):
    folder = copy("seismic")
    path = folder / "manifest.json"
    good = _manifest(folder)

    def edit(change, sign):
        m = json.loads(json.dumps(good))
        change(m)
        _write_manifest(folder, m, sign)

    edit(lambda m: m["files"].pop("docs.parquet"), sign=False)  # an unsigned edit: the checksum fails
    with pytest.raises(IndexError_, match=f"{path}: manifest checksum mismatch"):
        load_index(folder)
    edit(lambda m: m["files"].pop("docs.parquet"), sign=True)  # re-signed: docs.parquet is now unlisted
    with pytest.raises(IndexError_, match="file docs.parquet is not listed in the manifest"):
        load_index(folder, verify="quick")
    edit(lambda m: m.update(checksum="0" * 32), sign=False)
    with pytest.raises(IndexError_, match="manifest checksum mismatch"):
        load_index(folder)
    edit(lambda m: m["counts"].update(docs=N + 1), sign=True)
    with pytest.raises(IndexError_, match=f"{N} doc ids, manifest says {N + 1}"):
        load_index(folder)
    for key, value, expected in (("query_cut", 0, "an integer >= 1"), ("query_cut", "7", "an integer >= 1"),
                                 ("heap_factor", -1, "a finite number >= 0"), ("knn", 1.5, "an integer >= 0")):
        edit(lambda m: m["params"].update({key: value}), sign=True)
        with pytest.raises(IndexError_, match=f"manifest.json: 'params.{key}' is {value!r}, expected {expected}"):
            load_index(folder, verify=False)
    edit(lambda m: m.pop("counts"), sign=True)
    with pytest.raises(IndexError_, match="manifest.json: 'counts' is missing"):
        load_index(folder)
    edit(lambda m: m["files"]["fwd_idx.npy"].update(shape=[3]), sign=True)
    with pytest.raises(IndexError_, match="array fwd_idx.npy is <u2 .*the manifest says <u2 \\(3,\\)"):
        load_index(folder, verify=False)


def test_file_swapped_from_another_index_caught(copy, tmp_path):
    folder = copy("exact")
    other = _build(ExactIndex, tmp_path / "other", docs=DOCS * 2)  # same structure, so same file sizes
    assert (other / "post_vals.npy").stat().st_size == (folder / "post_vals.npy").stat().st_size
    shutil.copy(other / "post_vals.npy", folder / "post_vals.npy")
    for verify in (True, False):
        with pytest.raises(IndexError_, match="checksum mismatch for post_vals.npy"):
            load_index(folder, verify=verify)
    assert _manifest(folder)["index_id"] != _manifest(other)["index_id"]


def test_unlisted_files_refused_but_temporaries_ignored(copy):
    folder = copy("exact")
    (folder / ".hybrid.json.tmp-12-34").write_text("{}")  # a writer's temporary: not the index's
    assert len(load_index(folder)) == N
    (folder / "hybrid.json").write_text("{}")
    with pytest.raises(IndexError_, match="file hybrid.json is not listed in the manifest .*remove the file"):
        load_index(folder)
    update_manifest(folder, {}, files=("hybrid.json",))  # how a writer lists a file it added after the build
    assert len(load_index(folder)) == N and "hybrid.json" in _manifest(folder)["files"]
    update_manifest(folder, {"params": {"note": 1}})
    assert load_index(folder).params["note"] == 1


def test_nested_index_listed_in_parent(tmp_path):
    folder = _build(ExactIndex, tmp_path / "p", lexical=True)
    listed = _manifest(folder)["files"]
    assert "lexical/manifest.json" in listed and "lexical/post_vals.npy" in listed
    assert len(load_index(folder / "lexical")) == N
    path = folder / "lexical" / "post_vals.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(IndexError_, match="checksum mismatch for lexical/post_vals.npy"):
        load_index(folder)


def test_legacy_manifest_loads_with_sha256(copy, caplog):
    folder = copy("exact")
    m = _manifest(folder)
    for key in ("checksum", "index_id"):
        m.pop(key)
    m["files"] = {name: {"bytes": info["bytes"], "sha256": info["sha256"]} for name, info in m["files"].items()}
    _write_manifest(folder, m, sign=False)
    with caplog.at_level(logging.WARNING):
        assert len(load_index(folder, verify=False)) == N
    assert "predates checksummed manifests" in caplog.text
    from typer.testing import CliRunner

    from lsr.cli.app import app
    res = CliRunner().invoke(app, ["check", str(folder)])
    assert res.exit_code == 0 and f"warning: {folder}: the manifest predates checksummed manifests" in res.output
    path = folder / "post_docs.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IndexError_, match="checksum mismatch for post_docs.npy \\(sha256"):
        load_index(folder, verify=False)  # an old manifest has nothing cheaper: sha256 whatever the level


def test_verify_levels_and_k(built):
    with pytest.raises(ParameterError, match="verify='fast'"):
        load_index(built["exact"], verify="fast")
    for name in TYPES:
        index = load_index(built[name], verify="quick")
        docs, scores = index.search_numbers(QUERIES, 10 ** 12)  # clamped to the collection, not 8 TB
        assert docs.shape == (QUERIES.shape[0], N)
        assert np.array_equal(docs[:, :10], index.search_numbers(QUERIES, 10)[0])
        assert index.search(QUERIES[:1], 10 ** 12)[0].shape == (N,)
        for k in (0, -1, 2.5, True, "3"):
            with pytest.raises(QueryError, match=f"k must be an integer >= 1, got {k!r}"):
                index.search_numbers(QUERIES, k)
    empty = ExactIndex.build(sp.csr_matrix((0, DIM), dtype=np.float32))
    docs, scores = empty.search_numbers(QUERIES, 10)
    assert docs.shape == (QUERIES.shape[0], 0) and empty.batch_search(QUERIES, 5)[0].shape == (QUERIES.shape[0], 0)


def test_dense_k_clamped():
    from lsr.index.dense import DenseIndex
    dense = DenseIndex.build(np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32))
    docs, scores = dense.search(np.ones((2, 8), np.float32), 10 ** 12)
    assert docs.shape == (2, 20) and (docs >= 0).all()
    with pytest.raises(QueryError, match="k must be an integer >= 1, got 0"):
        dense.search(np.ones((2, 8), np.float32), 0)


def _cli():
    import typer

    from lsr.cli.app import handle_errors
    from lsr.cli.check import check
    app = typer.Typer()
    app.command()(handle_errors(check))
    return app


def test_lsr_check(copy):
    from typer.testing import CliRunner
    runner = CliRunner()
    folder = copy("seismic")
    res = runner.invoke(_cli(), [str(folder), "--full"])
    assert res.exit_code == 0, res.output
    assert "ok" in res.output and "fwd_idx.npy" in res.output and f"{folder}: ok (" in res.output
    res = runner.invoke(_cli(), [str(folder), "--json"])
    report = json.loads(res.stdout)
    assert res.exit_code == 0 and report["ok"] and report["index_id"] == _manifest(folder)["index_id"]
    path = folder / "docs.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    (folder / "sum_min.npy").unlink()
    (folder / "notes.txt").write_text("x")
    res = runner.invoke(_cli(), [str(folder)])
    assert res.exit_code == 1
    lines = {line.split()[-1]: line.split()[0] for line in res.stdout.splitlines()}
    assert lines["docs.parquet"] == "CHECKSUM" and lines["sum_min.npy"] == "MISSING"
    assert lines["notes.txt"] == "UNLISTED" and lines["fwd_idx.npy"] == "ok"
    assert f"error: {folder} is damaged: {folder}: file sum_min.npy listed in the manifest is missing " \
           f"(and 2 more problems)" in res.output
    res = runner.invoke(_cli(), [str(folder), "--json"])
    assert res.exit_code == 1 and not json.loads(res.stdout)["ok"]


def test_lsr_check_bounds_and_manifest(copy):
    from typer.testing import CliRunner
    folder = copy("exact")
    a = np.load(folder / "post_docs.npy")
    a[0] = N + 7
    np.save(folder / "post_docs.npy", a)
    update_manifest(folder, {}, files=("post_docs.npy",))
    res = CliRunner().invoke(_cli(), [str(folder)])
    assert res.exit_code == 1 and "BOUNDS" in res.stdout and "post_docs.npy: values run from" in res.output
    (folder / "manifest.json").write_text("{}")
    res = CliRunner().invoke(_cli(), [str(folder)])
    assert res.exit_code == 1 and "not an lsr index manifest" in res.output


def test_removing_the_manifest_checksum_does_not_turn_protection_off(copy):
    folder = copy("exact")
    m = _manifest(folder)
    del m["checksum"]
    m["encoder"] = {"name": "bm25:k1=5", "kind": "bm25", "max_length": 0}  # another query encoder, unsigned
    _write_manifest(folder, m, sign=False)
    with pytest.raises(IndexError_, match=r"manifest.json: the manifest's checksum is missing \(the manifest was "
                                          r"edited or corrupted\)"):
        load_index(folder)


def test_writers_into_an_index_take_its_lock(copy):
    from conftest import in_another_thread
    from lsr.atomic import writer_lock
    folder = copy("exact")
    with in_another_thread(lambda: writer_lock(folder)):
        (folder / "hybrid.json").write_text("{}")
        with pytest.raises(IndexError_, match="another thread of this process is writing"):
            update_manifest(folder, {}, files=("hybrid.json",))
        with pytest.raises(IndexError_, match="another thread of this process is writing"):
            update_manifest(folder, {"params": {"query_cut": 3}})
    update_manifest(folder, {}, files=("hybrid.json",))
    assert "hybrid.json" in _manifest(folder)["files"] and load_index(folder)


@pytest.mark.parametrize("verify", [True, False])
def test_a_damaged_array_header_is_an_index_error_on_every_level(copy, verify):
    folder = copy("exact")
    path = folder / "post_docs.npy"
    data = bytearray(path.read_bytes())
    end = data.index(b"}")  # the header is a Python literal: unclosed, numpy's tokenizer raises TokenError
    data[end] = ord(" ")
    path.write_bytes(bytes(data))
    with pytest.raises(IndexError_, match=r"post_docs.npy: (not a readable array header|checksum mismatch)"):
        load_index(folder, verify=verify)
    from lsr.index.storage import npy_header
    with pytest.raises(IndexError_, match=r"post_docs.npy: not a readable array header \(TokenError"):
        npy_header(path)


def test_retriever_verifies_by_default(copy):
    from lsr import Retriever
    from lsr.retrieval import Searcher
    folder = copy("exact")
    path = folder / "post_vals.npy"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40  # a same-size change of one weight: sizes and headers still agree
    path.write_bytes(bytes(data))
    for open_ in (Retriever.load, Searcher):
        with pytest.raises(IndexError_, match=r"checksum mismatch for post_vals.npy \(xxh3_128"):
            open_(folder)


def test_tuned_hybrid_settings_live_in_the_manifest_and_an_old_hybrid_json_still_reads(copy):
    from lsr.retrieval.hybrid import HybridConfig, HybridSearcher
    folder = copy("exact")
    config = HybridConfig(lists=("sparse", "bm25"), weights=(0.3, 0.7))
    update_manifest(folder, {"hybrid": config.to_json()})  # what HybridSearcher.save_config does
    assert HybridSearcher.stored_config(folder) == config and load_index(folder)
    # an index an older lsr tuned: hybrid.json beside a manifest without checksum, not listed in it
    m = _manifest(folder)
    for key in ("checksum", "index_id", "hybrid"):
        m.pop(key)
    m["files"] = {name: {"bytes": info["bytes"], "sha256": info["sha256"]} for name, info in m["files"].items()}
    _write_manifest(folder, m, sign=False)
    (folder / "hybrid.json").write_text(json.dumps(config.to_json()))
    assert HybridSearcher.stored_config(folder) == config and len(load_index(folder)) == N
