"""Atomic writes (lsr.atomic): a failed or killed write leaves the old file or folder, never a half-written one."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lsr.atomic import atomic_dir, atomic_file, atomic_path, write_json
from lsr.errors import IndexError_, LsrError
from lsr.index import storage


def test_write_json_round_trip_and_replace(tmp_path):
    p = write_json(tmp_path / "a" / "cfg.json", {"x": 1})
    assert json.loads(p.read_text()) == {"x": 1}
    write_json(p, {"x": 2})
    assert json.loads(p.read_text()) == {"x": 2}
    assert sorted(x.name for x in p.parent.iterdir()) == ["cfg.json"]  # no temporary left behind


def test_an_exception_keeps_the_old_file(tmp_path):
    p = tmp_path / "run.txt"
    p.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_file(p) as f:
            f.write("half of the new")
            raise RuntimeError("disk full")
    assert p.read_text() == "old\n" and sorted(x.name for x in tmp_path.iterdir()) == ["run.txt"]
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "a.npy") as tmp:
            np.save(open(tmp, "wb"), np.arange(3))
            raise ValueError("bad values")
    assert not (tmp_path / "a.npy").exists()


def test_a_killed_process_leaves_the_old_file(tmp_path):
    p = tmp_path / "settings.json"
    write_json(p, {"version": 1})
    script = textwrap.dedent(f"""
        import os
        from lsr.atomic import atomic_file
        with atomic_file(r"{p}") as f:
            f.write('{{"version": 2, "trunc')
            f.flush()
            os._exit(9)   # killed mid-write: no cleanup runs
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    assert json.loads(p.read_text()) == {"version": 1}


def test_atomic_dir_refuses_an_existing_target_and_keeps_it_on_failure(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "weights").write_text("v1")
    with pytest.raises(LsrError, match="already exists"):
        with atomic_dir(target):
            pass
    with pytest.raises(IndexError_, match="already exists"):  # the index writer's flavour names an index error
        with storage.atomic_dir(target):
            pass
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target, overwrite=True) as tmp:
            (tmp / "weights").write_text("v2 (half)")
            raise KeyboardInterrupt
    assert (target / "weights").read_text() == "v1"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["model"]


def test_atomic_restates_the_index_names_it_checks():
    # atomic is a foundation module (imports nothing of lsr but errors), so it restates these two
    from lsr import atomic, layout
    assert atomic.MANIFEST == layout.MANIFEST and atomic.INDEX_FORMAT == storage.FORMAT


def test_overwrite_replaces_any_folder_unless_told_what_it_replaces(tmp_path):
    # model folders and caches (lsr compose, the GGUF conversion) replace what they wrote before;
    # index writers pass replaces="lsr-index" and never delete anything else
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("v1")
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "weights").write_text("v2")
    assert (target / "weights").read_text() == "v2"
    with pytest.raises(IndexError_, match="model is a folder but not an lsr index"):
        with atomic_dir(target, overwrite=True, error=IndexError_, replaces="lsr-index"):
            pass
    assert (target / "weights").read_text() == "v2" and sorted(x.name for x in tmp_path.iterdir()) == ["model"]
