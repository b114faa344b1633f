"""Safe writes (issue 20): --overwrite replaces only an lsr index and never the data being read, an index
swap never leaves the path empty (and a killed one is repaired), writes are fsynced, dead writers'
temporaries are cleaned, a second writer gets a lock error, a .partial encoding resumes only on the same
content, and a local model is recorded by its absolute path."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lsr import atomic
from lsr.atomic import atomic_dir, recover_dir
from lsr.data import load_dataset
from lsr.encoders.bm25 import BM25Encoder
from lsr.encoders.shards import encode_corpus
from lsr.errors import DataError, IndexError_, LsrError
from lsr.layout import MANIFEST, partial_dir
from lsr.retrieval import build_index

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "data" / "fixtures" / "tiny_corpus.jsonl"


def _fake_index(folder: Path, version: int) -> None:
    """What atomic_dir needs to treat a folder as an index: lsr's manifest (plus a data file)."""
    (folder / "data.bin").write_bytes(bytes([version]) * 1000)
    (folder / "sub").mkdir()
    (folder / "sub" / "more.bin").write_bytes(b"x")
    (folder / MANIFEST).write_text(json.dumps({"format": "lsr-index", "version": version}))


def _version(target: Path) -> int:
    return json.loads((target / MANIFEST).read_text())["version"]


def _write(target: Path, version: int, overwrite: bool = True) -> None:
    with atomic_dir(target, overwrite=overwrite, replaces="lsr-index") as tmp:
        _fake_index(tmp, version)


def _run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          cwd=ROOT)


def _corpus(folder: Path, docs: int = 7, suffix: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "corpus.jsonl"
    path.write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": f"doc {i} about topic {i % 3}{suffix}"})
                            + "\n" for i in range(docs)))
    return path


# ---------------------------------------------------------------- overwrite refuses what is not an index
def test_overwrite_refuses_a_folder_that_is_not_an_index_and_keeps_its_files(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("my notes")
    with pytest.raises(IndexError_, match=r"notes is a folder but not an lsr index .*nothing was deleted"):
        build_index(str(TINY), "bm25", notes, index_type="exact", overwrite=True, progress=False)
    assert (notes / "todo.txt").read_text() == "my notes" and sorted(p.name for p in notes.iterdir()) == ["todo.txt"]
    a_file = tmp_path / "report.txt"
    a_file.write_text("keep")
    with pytest.raises(IndexError_, match="report.txt is a file but not an lsr index"):
        build_index(str(TINY), "bm25", a_file, index_type="exact", overwrite=True, progress=False)
    assert a_file.read_text() == "keep"
    with pytest.raises(LsrError, match="not an lsr index"):  # the library primitive, for any index writer
        _write(notes, 1)
    assert (notes / "todo.txt").exists()
    # an index is replaced
    idx = tmp_path / "idx"
    build_index(str(TINY), "bm25", idx, index_type="exact", progress=False)
    build_index(str(TINY), "bm25", idx, index_type="exact", overwrite=True, progress=False)
    assert json.loads((idx / MANIFEST).read_text())["format"] == "lsr-index"
    assert not partial_dir(idx).exists() and not list(tmp_path.glob(".idx*"))  # no temporary, no lock file


def test_output_equal_to_inside_or_containing_the_dataset_is_refused(tmp_path, monkeypatch):
    data = tmp_path / "data" / "mycorpus"
    _corpus(data)
    (data / "keep.txt").write_text("keep")
    for out, how in ((data, "is"), (data / "idx", "lies inside"), (tmp_path / "data", "contains")):
        with pytest.raises(IndexError_, match=rf"the output {out} {how} the dataset {data}"):
            build_index(str(data), "bm25", out, index_type="exact", overwrite=True, progress=False)
    corpus_file = data / "corpus.jsonl"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IndexError_, match=f"contains the dataset {corpus_file}"):  # a corpus file, and a relative -o
        build_index(str(corpus_file), "bm25", "data", index_type="exact", overwrite=True, progress=False)
    assert sorted(p.name for p in data.iterdir()) == ["corpus.jsonl", "keep.txt"]
    from lsr.cli.app import app
    res = CliRunner().invoke(app, ["encode", str(data), "-m", "splade-tiny", "-o", str(data / "vectors"), "-q"])
    assert res.exit_code == 1
    assert f"error: the --output {data / 'vectors'} lies inside the dataset {data}" in res.output
    assert "--overwrite" not in res.output  # `lsr encode` has no such option: never advised
    assert sorted(p.name for p in data.iterdir()) == ["corpus.jsonl", "keep.txt"]


# ---------------------------------------------------------------- the swap
def test_the_path_holds_a_loadable_index_throughout_repeated_swaps(tmp_path):
    target = tmp_path / "idx"
    _write(target, 0, overwrite=False)
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.append(_version(target))
            except (OSError, ValueError) as e:  # a missing or half-visible index would land here
                seen.append(repr(e))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for v in range(1, 25):
            _write(target, v)
    finally:
        stop.set()
        t.join()
    assert seen and all(isinstance(v, int) for v in seen), [v for v in seen if not isinstance(v, int)][:3]
    assert _version(target) == 24 and sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


@pytest.mark.skipif(atomic._renameat2() is None, reason="needs renameat2 (Linux)")
@pytest.mark.parametrize("where", ["before", "after"])
def test_a_kill_around_the_exchange_leaves_an_index_and_the_next_writer_cleans_up(tmp_path, where):
    target = tmp_path / "idx"
    _write(target, 1, overwrite=False)
    patched = "_exchange" if where == "before" else "_remove"
    res = _run(f"""
        import os
        from lsr import atomic
        from tests.test_safe_writes import _write
        atomic.{patched} = lambda *a: os._exit(9)
        _write(atomic.Path(r"{target}"), 2)
    """)
    assert res.returncode == 9, res.stderr
    assert _version(target) == (1 if where == "before" else 2)  # the old index or the new one, never nothing
    # the kernel dropped the dead writer's lock; its lock file goes with the next writer's release
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("idx", ".idx.lock")]
    assert leftovers and all(n.startswith(".idx.tmp-") for n in leftovers)
    _write(target, 3)  # the next writer removes the dead process's temporary (and its own)
    assert _version(target) == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_fallback_swap_killed_between_its_two_renames_is_recovered(tmp_path, monkeypatch):
    target = tmp_path / "idx"
    for expected in (2, 1):  # roll forward to the complete new folder; without one, back to the old
        shutil.rmtree(target, ignore_errors=True)
        _write(target, 1, overwrite=False)
        res = _run(f"""
            import os
            from lsr import atomic
            from tests.test_safe_writes import _write
            atomic._exchange = lambda a, b: False   # a system or filesystem without RENAME_EXCHANGE
            real = os.replace
            def replace(src, dst):
                if str(dst) == r"{target}" and ".tmp-" in str(src):
                    os._exit(9)                      # killed after the old folder moved aside
                real(src, dst)
            atomic.os.replace = replace
            _write(atomic.Path(r"{target}"), 2)
        """)
        assert res.returncode == 9, res.stderr
        assert not target.exists()
        names = sorted(p.name for p in tmp_path.iterdir())
        assert any(n.startswith(".idx.old-") for n in names) and any(n.startswith(".idx.tmp-") for n in names)
        if expected == 1:
            next(tmp_path.glob(".idx.tmp-*/" + MANIFEST)).unlink()  # the new folder was not complete
        assert recover_dir(target) is True  # what the index loader calls on a missing path
        assert _version(target) == expected
        _write(target, 5)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    # in this process too: the fallback swap itself works
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    _write(target, 6)
    assert _version(target) == 6 and sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    assert recover_dir(target) is False  # nothing to repair


def test_live_writers_temporaries_are_never_removed(tmp_path):
    target = tmp_path / "idx"
    _write(target, 1, overwrite=False)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = tmp_path / f".idx.tmp-{sleeper.pid}-1"
        live.mkdir()
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        gone = tmp_path / f".idx.old-{int(dead.stdout)}"
        gone.mkdir()
        _write(target, 2)
        assert live.exists() and not gone.exists() and _version(target) == 2
    finally:
        sleeper.kill()
        sleeper.wait()


def test_files_and_folders_are_fsynced_before_publishing(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    target = tmp_path / "idx"
    _write(target, 1, overwrite=False)
    assert len(synced) >= 6  # data.bin, more.bin, manifest, sub/, the folder itself, the parent after the rename
    if os.path.exists("/proc/self/fd"):
        names = [Path(p).name for p in synced]
        assert {"data.bin", "more.bin", MANIFEST, "sub"} <= set(names) and synced[-1] == str(tmp_path)
    synced.clear()
    atomic.write_json(tmp_path / "a.json", {"x": 1})
    assert len(synced) == 2  # the file, then its folder


# ---------------------------------------------------------------- one writer at a time
def test_a_second_writer_in_another_process_gets_a_lock_error(tmp_path):
    target = tmp_path / "idx"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from lsr.atomic import writer_lock
        with writer_lock(r"{target}"):
            print("locked", flush=True)
            time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexError_, match=rf"another lsr process \(pid {holder.pid}\) is writing {target}"):
            build_index(str(TINY), "bm25", target, index_type="exact", progress=False)
        assert not target.exists() and not partial_dir(target).exists()
        with pytest.raises(LsrError, match=f"pid {holder.pid}"):
            _write(target, 1)
        assert recover_dir(target) is False  # a reader never repairs under a live writer
    finally:
        holder.kill()
        holder.wait()
    build_index(str(TINY), "bm25", target, index_type="exact", progress=False)  # the kernel dropped the lock


def test_a_second_writer_thread_gets_a_lock_error_and_one_thread_may_nest(tmp_path):
    from conftest import in_another_thread  # here: subprocesses of this file import it without conftest's path
    target = tmp_path / "idx"
    errors = []

    @contextmanager
    def first():
        with atomic_dir(target) as tmp:
            _fake_index(tmp, 1)
            yield

    with in_another_thread(first):
        try:
            _write(target, 2)
        except LsrError as e:
            errors.append(str(e))
    assert errors and "another thread of this process is writing" in errors[0] and str(target) in errors[0]
    assert _version(target) == 1
    from lsr.atomic import writer_lock
    with writer_lock(target):  # build_index holds it for the run; the atomic_dir inside takes it again
        _write(target, 3)
    assert _version(target) == 3 and not (tmp_path / ".idx.lock").exists()


# ---------------------------------------------------------------- resume keyed on content
class Counting:
    """An encoder wrapper that counts encode calls and can fail at one."""

    def __init__(self, inner, fail_at: int | None = None):
        self.inner, self.calls, self.fail_at = inner, 0, fail_at
        self.name, self.kind, self.max_length, self.vocab = inner.name, inner.kind, inner.max_length, inner.vocab

    def encode_documents(self, texts, progress=None):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise DataError("the encoder broke")
        return self.inner.encode_documents(texts, progress=progress)


def test_resume_only_on_the_same_content_and_errors_name_the_folder(tmp_path, caplog):
    corpus = _corpus(tmp_path / "c", docs=7)  # 4 shards of 2
    ds = load_dataset(corpus)
    bm25 = BM25Encoder.fit((d.full_text for d in ds.docs()), progress=False)
    bm25.name = "bm25"
    out = tmp_path / "idx.partial" / "vectors"
    with pytest.raises(DataError, match=rf"the encoder broke \[while encoding into {out};"):
        encode_corpus(ds, Counting(bm25, fail_at=2), out, shard_size=2, progress=False, restart=True)
    with pytest.raises(DataError, match=rf"the encoder broke \[while encoding into {out} \(resumed at shard 1\)"):
        encode_corpus(ds, Counting(bm25, fail_at=2), out, shard_size=2, progress=False, restart=True)
    enc = Counting(bm25)
    assert len(encode_corpus(ds, enc, out, shard_size=2, progress=False, restart=True)) == 4
    assert enc.calls == 2  # shards 0 and 1 were reused, not re-encoded
    settings = json.loads((out / "encode.json").read_text())
    assert settings["corpus_fingerprint"].startswith("xxh3_128:") and settings["model_fingerprint"]
    # same ids, other texts: the vectors are stale, so the run restarts and says so
    _corpus(tmp_path / "c", docs=7, suffix=" (revised)")
    enc = Counting(bm25)
    with caplog.at_level("WARNING", logger="lsr"):
        encode_corpus(load_dataset(corpus), enc, out, shard_size=2, progress=False, restart=True)
    assert enc.calls == 4
    assert any("the corpus content changed" in r.getMessage() and "restarts" in r.getMessage() for r in caplog.records)
    # `lsr encode` into a user's folder refuses instead of deleting
    _corpus(tmp_path / "c", docs=7, suffix=" (revised twice)")
    with pytest.raises(DataError, match=r"holds vectors encoded from other content or settings \(the corpus content"):
        encode_corpus(load_dataset(corpus), Counting(bm25), out, shard_size=2, progress=False)


def test_an_error_in_a_resumed_index_build_names_the_partial_folder(tmp_path, monkeypatch):
    corpus = _corpus(tmp_path / "c", docs=5)
    out = tmp_path / "idx"
    real, calls = BM25Encoder.encode_documents, []

    def failing(fail_at):
        def encode_documents(self, texts, progress=None):
            calls.append(1)
            if len(calls) == fail_at:
                raise OSError(28, "No space left on device")
            return real(self, texts, progress=progress)
        return encode_documents

    monkeypatch.setattr(BM25Encoder, "encode_documents", failing(2))
    with pytest.raises(DataError, match=rf"{partial_dir(out)}/vectors failed \(\[Errno 28\] No space left"):
        build_index(str(corpus), "bm25", out, index_type="exact", shard_size=2, progress=False)
    calls.clear()
    monkeypatch.setattr(BM25Encoder, "encode_documents", failing(1))
    with pytest.raises(DataError, match=rf"{partial_dir(out)}/vectors \(resumed at shard 1\) failed"):
        build_index(str(corpus), "bm25", out, index_type="exact", shard_size=2, progress=False)
    calls.clear()
    monkeypatch.setattr(BM25Encoder, "encode_documents", failing(None))
    assert len(build_index(str(corpus), "bm25", out, index_type="exact", shard_size=2, progress=False)) == 5
    assert len(calls) == 2 and not partial_dir(out).exists()  # shards 1 and 2 only


# ---------------------------------------------------------------- models
@pytest.fixture(scope="module")
def tiny_model_copy(tmp_path_factory):
    from lsr.encoders import installed_location
    from lsr.encoders.names import bundled
    folder = tmp_path_factory.mktemp("models") / "my-model"
    shutil.copytree(installed_location(bundled("splade-tiny")), folder)
    return folder


def test_a_relative_model_path_is_stored_absolute_with_its_fingerprint(tmp_path, tiny_model_copy, monkeypatch):
    from lsr.encoders.fingerprint import folder_fingerprint
    from lsr.retrieval import Searcher
    monkeypatch.chdir(tiny_model_copy.parent)
    idx = tmp_path / "idx"
    build_index(str(TINY), "my-model", idx, index_type="exact", progress=False)
    enc = json.loads((idx / MANIFEST).read_text())["encoder"]
    assert enc["name"] == str(tiny_model_copy) and enc["fingerprint"] == folder_fingerprint(tiny_model_copy)
    assert json.loads((idx / "vectors" / "encode.json").read_text())["model"] == str(tiny_model_copy)
    here = [(h.doc_id, round(h.score, 4)) for h in Searcher(idx).search("vitamin d", k=3)]
    other = tmp_path / "elsewhere"
    (other / "my-model").mkdir(parents=True)  # a different "my-model" relative to the new cwd: never used
    monkeypatch.chdir(other)
    assert [(h.doc_id, round(h.score, 4)) for h in Searcher(idx).search("vitamin d", k=3)] == here


def test_a_recorded_max_length_is_the_default(tmp_path, tiny_model_copy):
    from lsr.encoders.splade import record_max_length, recorded_max_length
    model = tmp_path / "trained"
    shutil.copytree(tiny_model_copy, model)
    assert recorded_max_length(model) is None
    record_max_length(model, 48)  # what `lsr train` / `lsr compose` write beside the weights
    assert recorded_max_length(model) == 48
    idx = build_index(str(TINY), str(model), tmp_path / "idx", index_type="exact", progress=False)
    assert idx.manifest["encoder"]["max_length"] == 48
    idx = build_index(str(TINY), str(model), tmp_path / "idx2", index_type="exact", max_length=20, progress=False)
    assert idx.manifest["encoder"]["max_length"] == 20  # an explicit --max-length still wins
    idx = build_index(str(TINY), "splade-tiny", tmp_path / "idx3", index_type="exact", progress=False)
    assert idx.manifest["encoder"]["max_length"] == 256  # nothing recorded: 256 as before



def test_a_model_changed_since_the_build_is_refused_at_search(tmp_path, tiny_model_copy):
    from lsr.errors import ModelError
    from lsr.retrieval import Searcher
    model = shutil.copytree(tiny_model_copy, tmp_path / "retrained")
    idx = build_index(str(TINY), str(model), tmp_path / "idx", index_type="exact", progress=False)
    assert Searcher(idx.path).search("vitamin d", k=1)
    config = model / "config.json"
    config.write_text(config.read_text() + "\n")  # retrained in place: other files, same vocabulary
    with pytest.raises(ModelError, match=r"'.*retrained' is not the one the index .*idx was built with"):
        Searcher(idx.path).search("vitamin d", k=1)
    assert Searcher(idx.path, model=str(model)).search("vitamin d", k=1)  # a model given explicitly is used


# ---------------------------------------------------------------- review fixes: disk errors, compose, damaged manifest
def test_a_disk_error_while_writing_is_an_error_line_and_the_old_index_stays(tmp_path, monkeypatch):
    import errno

    import numpy as np
    from typer.testing import CliRunner

    from lsr.cli.app import app
    from lsr.index import load_index
    out = tmp_path / "idx"
    corpus = _corpus(tmp_path / "data")
    args = ["index", str(corpus), "--model", "bm25", "--index-type", "exact", "-o", str(out), "-q"]
    assert CliRunner().invoke(app, args).exit_code == 0
    before = (out / MANIFEST).read_text()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "post_ptr.npy"))
    monkeypatch.setattr(np, "save", full)
    res = CliRunner().invoke(app, [*args, "--overwrite"])
    assert res.exit_code == 1 and res.exception is None or isinstance(res.exception, SystemExit)
    assert "error: " in res.output and "No space left on device" in res.output and "post_ptr.npy" in res.output
    monkeypatch.undo()
    assert (out / MANIFEST).read_text() == before and load_index(out)  # the old index, whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".idx.")]


def test_an_unwritable_run_file_is_refused_before_the_evaluation(tmp_path):
    from typer.testing import CliRunner

    from lsr.cli.app import app
    out = tmp_path / "idx"
    corpus = _corpus(tmp_path / "data")
    build_index(str(corpus), "bm25", out, index_type="exact", progress=False)
    res = CliRunner().invoke(app, ["eval", str(out), str(TINY.parent / "no-such"), "--run", "/no/such/dir/run.txt"])
    assert res.exit_code == 1 and "error: --run /no/such/dir/run.txt: the folder /no/such/dir does not exist" \
        in res.output


def test_compose_overwrite_replaces_only_a_model_lsr_wrote(tmp_path):
    from lsr.training.compose import compose_model
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    with pytest.raises(LsrError, match=r"notes is a folder but not one lsr wrote \(no lsr_model.json\); "
                                       r"overwrite replaces only that, so nothing was deleted"):
        compose_model("qidf_dmlm", notes, overwrite=True)
    assert (notes / "todo.txt").read_text() == "keep me"


def test_an_index_with_a_damaged_manifest_can_be_rebuilt_in_place(tmp_path):
    from lsr.index import load_index
    out = tmp_path / "idx"
    corpus = _corpus(tmp_path / "data")
    build_index(str(corpus), "bm25", out, index_type="exact", progress=False)
    (out / MANIFEST).write_text('{"format": "lsr-in')  # torn
    with pytest.raises(IndexError_, match="corrupt manifest"):
        load_index(out)
    build_index(str(corpus), "bm25", out, index_type="exact", progress=False, overwrite=True)
    assert len(load_index(out)) == 7


def test_dense_save_does_not_replace_an_existing_folder_unless_asked(tmp_path):
    import numpy as np

    from lsr.index.dense import DenseIndex
    dense = DenseIndex.build(np.eye(3, dtype=np.float32))
    dense.save(tmp_path / "dense")
    with pytest.raises(IndexError_, match="already exists"):
        dense.save(tmp_path / "dense")
    dense.save(tmp_path / "dense", overwrite=True)


def test_an_empty_document_matches_no_query(tmp_path):
    from lsr.retrieval import Searcher
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"_id": "empty", "title": "", "text": "   "},
            {"_id": "bones", "title": "", "text": "Vitamin D deficiency weakens bones."}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_index(str(corpus), "splade-tiny", tmp_path / "idx", index_type="exact", progress=False)
    s = Searcher(tmp_path / "idx")
    # splade-tiny gives an empty text terms of its own ('is', 'means', 'and', ...): emptied at encoding
    for q in ("what is the meaning of parts and movement", "vitamin d"):
        assert "empty" not in [h.doc_id for h in s.search(q, k=10)]
    assert s.index.batch_search(s.encode_queries(["is means and"]), k=2)[0][0][0] != "empty"
