import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The shared data folder: $LSR_SHARED_DATA (the Makefile sets it from SHARED=),
# else ../shared/data next to the checkout.
SHARED = Path(os.environ.get("LSR_SHARED_DATA") or ROOT.parent / "shared" / "data").resolve()
BEIR = SHARED / "beir"

# Fail fast instead of trying the (unreachable) hub; only bundled models are used.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "IR_DATASETS_HOME" not in os.environ and (SHARED / "ir_datasets").is_dir():
    home = ROOT / ".cache" / "ir_datasets"
    if not home.exists():  # ir_datasets writes next to its archives: never point it at shared/
        shutil.copytree(SHARED / "ir_datasets", home)
    os.environ["IR_DATASETS_HOME"] = str(home)

@contextmanager
def in_another_thread(enter):
    """Run ``with enter():`` in another thread and yield while that thread is inside it (a writer holding a
    lock, say); on leaving, the other thread is let go and joined."""
    inside, release = threading.Event(), threading.Event()

    def hold():
        with enter():
            inside.set()
            release.wait(10)
    t = threading.Thread(target=hold)
    t.start()
    inside.wait(10)
    try:
        yield
    finally:
        release.set()
        t.join()


needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"needs {SHARED} (real BEIR collections; set LSR_SHARED_DATA)")


@pytest.fixture(scope="session")
def splade_tiny():
    from lsr.encoders import load_encoder
    return load_encoder("splade-tiny", max_length=256)


@pytest.fixture
def fixtures_dir():
    return ROOT / "data" / "fixtures"


@pytest.fixture(scope="session")
def med_indexes(tmp_path_factory):
    """MED (1,033 docs) indexed with splade-tiny through the CLI: exact, then
    seismic from the vectors the exact index keeps (no second encoding)."""
    if not BEIR.is_dir():
        pytest.skip(f"needs {SHARED} (set LSR_SHARED_DATA)")
    from typer.testing import CliRunner

    from lsr.cli.app import app
    out = tmp_path_factory.mktemp("med")
    runner = CliRunner()
    res = runner.invoke(app, ["index", str(BEIR / "med"), "--model", "splade-tiny", "-o", str(out / "exact"),
                              "--index-type", "exact", "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["index", str(out / "exact" / "vectors"), "-o", str(out / "seismic"),
                              "--index-type", "seismic", "-q"])
    assert res.exit_code == 0, res.output
    return {"exact": out / "exact", "seismic": out / "seismic"}


@pytest.fixture(scope="session")
def tiny_hybrid(tmp_path_factory):
    """The tiny fixture corpus (4 documents with metadata) indexed through the CLI as hybrid-search tests
    use it: splade-tiny exact index plus the MiniLM dense and BM25 lists. Read-only for the tests."""
    from typer.testing import CliRunner

    from lsr.cli.app import app
    out = tmp_path_factory.mktemp("tiny-hybrid") / "tiny"
    res = CliRunner().invoke(app, ["index", str(ROOT / "data" / "fixtures" / "tiny_corpus.jsonl"), "-m", "splade-tiny",
                                   "--dense", "minilm", "--index-type", "exact", "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    return out
