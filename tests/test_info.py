"""`lsr info`: what an index holds, from its manifest (models, type, documents, segments, bytes)."""
import json

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from lsr.cli.app import app
from lsr.errors import IndexFormatError
from lsr.index import SeismicIndex
from lsr.index.info import index_info


def _disk_bytes(folder):
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_info_json_of_a_hybrid_index(tiny_hybrid):
    res = CliRunner().invoke(app, ["info", str(tiny_hybrid), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert {"docs", "deleted", "segments", "model", "index_type", "bytes"} <= set(info)
    assert info["docs"] == 4 and info["deleted"] == 0 and info["index_type"] == "exact"
    assert info["model"] == "splade-tiny" and info["encoder"]["max_length"] == 256
    assert info["lists"] == ["sparse", "dense", "bm25"] and info["dense"]["model"] == "minilm"
    assert info["bytes"] == _disk_bytes(tiny_hybrid)  # every file, nested lists included
    assert info["segments"] == [{"name": ".", "docs": 4, "deleted": 0, "bytes": info["bytes"], "index_type": "exact"}]
    assert len(info["index_id"]) == 32 and info["search_defaults"] == {}


def test_info_table_names_type_model_and_defaults(tmp_path):
    docs = sp.random(300, 200, density=0.05, format="csr", dtype=np.float32, random_state=0)
    SeismicIndex.build(docs, query_cut=4, heap_factor=0.7).save(tmp_path / "s")
    res = CliRunner().invoke(app, ["info", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert "seismic" in res.output and "300 live, 0 deleted" in res.output and "none recorded" in res.output
    assert "query_cut=4, heap_factor=0.7" in res.output
    assert index_info(tmp_path / "s")["search_defaults"]["query_cut"] == 4


def test_info_refuses_what_is_not_an_index(tmp_path):
    with pytest.raises(IndexFormatError, match="is not an lsr index"):
        index_info(tmp_path)
    res = CliRunner().invoke(app, ["info", str(tmp_path / "missing")])
    assert res.exit_code == 1 and f"error: index not found: {tmp_path / 'missing'}" in res.output
