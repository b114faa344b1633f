"""The CLI contract: forms, JSON output, exit codes and error messages."""
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lsr.cli.app import app

from conftest import BEIR, needs_shared

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory):
    from conftest import ROOT
    out = tmp_path_factory.mktemp("idx") / "tiny"
    res = run("index", ROOT / "data/fixtures/tiny_corpus.jsonl", "--model", "splade-tiny", "--output", out, "-q")
    assert res.exit_code == 0, res.output
    return out


def test_index_records_model_and_docstore(tiny_index):
    manifest = json.loads((tiny_index / "manifest.json").read_text())
    assert manifest["encoder"] == {"name": "splade-tiny", "kind": "splade", "max_length": 256}
    assert manifest["index_type"] == "seismic" and manifest["counts"]["docs"] == 4
    assert (tiny_index / "docs.parquet").exists() and (tiny_index / "vectors").is_dir()
    assert not (tiny_index.parent / "tiny.partial").exists()


def test_search_json_contract(tiny_index):
    res = run("search", tiny_index, "vitamin D and bone fractures", "-k", "2", "--json")
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)["hits"]
    assert [h["doc_id"] for h in hits][0] == "d1"
    assert hits[0]["title"] == "Vitamin D" and hits[0]["score"] > hits[1]["score"] > 0
    assert set(hits[0]) == {"doc_id", "score", "title", "metadata"}  # metadata: only when the document has some
    assert hits[0]["metadata"] == {"year": 2020, "tags": ["nutrition", "bones"]}


def test_search_table(tiny_index):
    res = run("search", tiny_index, "smoking and lung cancer", "-k", "1")
    assert res.exit_code == 0 and "Smoking" in res.stdout and "d2" in res.stdout


def test_eval_json_on_files(tiny_index):
    from conftest import ROOT
    f = ROOT / "data/fixtures"
    res = run("eval", tiny_index, f / "tiny_corpus.jsonl", "--queries", f / "tiny_queries.jsonl",
              "--qrels", f / "tiny_qrels.tsv", "--json", "--metrics", "nDCG@10", "--metrics", "RR@10")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {"nDCG@10", "RR@10"} and out["RR@10"] == 1.0 and 0.9 < out["nDCG@10"] <= 1.0


def test_empty_query(tiny_index):
    res = run("search", tiny_index, "   ")
    assert res.exit_code == 1 and "error: query is empty" in res.stderr


def test_huge_query_warns_and_truncates(tiny_index):
    res = run("search", tiny_index, "bones " * 400, "--json")
    assert res.exit_code == 0
    assert "query is 402 tokens; only the first 256 are used" in res.stderr
    assert json.loads(res.stdout)["hits"][0]["doc_id"] in {"d1", "d3"}


def test_missing_index():
    res = run("search", "/no/such/index", "x")
    assert res.exit_code == 1 and "error: index not found: /no/such/index" in res.stderr
    res = run("eval", "/no/such/index", "beir/scifact/test")
    assert res.exit_code == 1 and "index not found" in res.stderr


def test_corrupt_index_refused(tiny_index, tmp_path):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(tiny_index, bad)
    (bad / "block_docs.npy").write_bytes((bad / "block_docs.npy").read_bytes()[:-8])
    res = run("search", bad, "bones")
    assert res.exit_code == 1 and "block_docs.npy" in res.stderr and "truncated" in res.stderr


def test_unknown_model(tmp_path):
    from conftest import ROOT
    res = run("index", ROOT / "data/fixtures/tiny_corpus.jsonl", "--model", "no-such-model", "-o", tmp_path / "i")
    assert res.exit_code == 1
    assert "error: unknown model 'no-such-model'" in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "i").exists()


def test_malformed_jsonl_line(tmp_path):
    bad = tmp_path / "corpus.jsonl"
    bad.write_text('{"_id": "1", "text": "fine"}\n{"_id": "2", "text": oops}\n')
    res = run("index", bad, "--model", "splade-tiny", "-o", tmp_path / "i", "-q")
    assert res.exit_code == 1
    assert f"error: {bad}:2: invalid JSON" in res.stderr
    assert not (tmp_path / "i").exists()


def test_existing_output_needs_overwrite(tiny_index):
    res = run("index", "beir/scifact", "--model", "splade-tiny", "-o", tiny_index)
    assert res.exit_code == 1 and "already exists (use --overwrite" in res.stderr


def test_unknown_dataset_and_metric(tiny_index):
    res = run("eval", tiny_index, "beir/nope/test")
    assert res.exit_code == 1 and "neither an existing path nor a known ir_datasets id" in res.stderr
    res = run("eval", tiny_index, "beir/scifact/test", "--metrics", "nDGC@10")
    assert res.exit_code == 1 and "unknown metric 'nDGC@10'" in res.stderr


def test_console_script_exit_code():
    """The installed entry point, as a shell script would call it."""
    p = subprocess.run([sys.executable, "-m", "lsr", "search", "/no/such/index", "x"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and p.stderr.strip() == "error: index not found: /no/such/index"
    help_text = subprocess.run([sys.executable, "-m", "lsr", "index", "--help"], capture_output=True, text=True).stdout
    assert "--index-type" in help_text and "Example" in help_text


@needs_shared
@pytest.mark.slow
def test_med_end_to_end_matches_independent_reference(med_indexes):
    from lsr.encoders import resolve_model
    res = run("eval", med_indexes["exact"], BEIR / "med", "--json")
    assert res.exit_code == 0, res.output
    ours = json.loads(res.stdout)
    from reference import reference_ndcg  # bench/reference.py: no lsr code
    reference = reference_ndcg(BEIR / "med", resolve_model("splade-tiny").path)
    assert abs(ours["nDCG@10"] - reference["ndcg_cut_10"]) <= 0.005, (ours, reference)
    assert abs(ours["R@100"] - reference["recall_100"]) <= 0.01, (ours, reference)
    assert ours["nDCG@10"] > 0.5 and ours["R@100"] > 0.7  # a working retriever on MED, not noise


@needs_shared
def test_med_seismic_close_to_exact(med_indexes):
    exact = json.loads(run("eval", med_indexes["exact"], BEIR / "med", "--json").stdout)
    seismic = json.loads(run("eval", med_indexes["seismic"], BEIR / "med", "--json").stdout)
    assert abs(seismic["nDCG@10"] - exact["nDCG@10"]) <= 0.01, (seismic, exact)
    # heap_factor 0 and every query term: no block skipped, only static pruning remains
    full = json.loads(run("eval", med_indexes["seismic"], BEIR / "med", "--json", "--heap-factor", "0",
                          "--query-cut", "1000").stdout)
    assert abs(full["nDCG@10"] - exact["nDCG@10"]) <= 0.005


def test_self_hits_dropped_unless_kept(tiny_index, tmp_path):
    from conftest import ROOT
    q = tmp_path / "q.jsonl"
    q.write_text('{"_id": "d1", "text": "vitamin D and bone fractures"}\n')
    r = tmp_path / "qrels.tsv"
    r.write_text("query-id\tcorpus-id\tscore\nd1\td1\t1\n")
    base = ["eval", tiny_index, ROOT / "data/fixtures/tiny_corpus.jsonl", "--queries", q, "--qrels", r,
            "--metrics", "RR@10", "--json"]
    assert json.loads(run(*base).stdout)["RR@10"] == 0.0  # BEIR: the self-hit is discarded
    assert json.loads(run(*base, "--keep-self-hits").stdout)["RR@10"] == 1.0


def test_index_a_folder_from_lsr_encode(tmp_path):
    from conftest import ROOT
    corpus = ROOT / "data/fixtures/tiny_corpus.jsonl"
    res = run("encode", corpus, "--model", "splade-tiny", "-o", tmp_path / "vec", "--shard-size", "3", "-q")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "vec").glob("shard-*.parquet")) == ["shard-00000.parquet", "shard-00001.parquet"]
    res = run("index", tmp_path / "vec", "--model", "minilm", "-o", tmp_path / "idx")
    assert res.exit_code == 1 and "was encoded with 'splade-tiny', not 'minilm'" in res.stderr
    res = run("index", tmp_path / "vec", "-o", tmp_path / "idx", "-q")  # model comes from encode.json
    assert res.exit_code == 0, res.output
    hits = json.loads(run("search", tmp_path / "idx", "exercise and the heart", "--json").stdout)["hits"]
    assert hits[0]["doc_id"] == "d3" and hits[0]["title"] == "Exercise"


def test_table_keeps_rank_score_and_id_with_long_titles(tmp_path):
    corpus = tmp_path / "c.jsonl"
    long_title = "Bone density " + "and very long words " * 20
    corpus.write_text("\n".join(json.dumps({"_id": f"doc-{i}", "title": long_title + str(i), "text": "bone density"})
                                for i in range(5)) + "\n")
    assert run("index", corpus, "--model", "splade-tiny", "-o", tmp_path / "i", "-q").exit_code == 0
    res = run("search", tmp_path / "i", "bone density", "-k", "5")
    assert res.exit_code == 0
    rows = [line for line in res.stdout.splitlines() if "doc-" in line]
    assert len(rows) == 5
    for rank, line in enumerate(rows, 1):
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        assert cells[0] == str(rank) and cells[2].startswith("doc-") and float(cells[1]) > 0
        assert cells[3].endswith("…")


def test_unreachable_ir_dataset_is_one_error_line(tmp_path, monkeypatch):
    """Offline and not cached: ir_datasets' download error becomes an `error:` line naming the dataset."""
    import ir_datasets
    import requests

    real = ir_datasets.load("cranfield")

    class NotDownloaded:  # the registered dataset, with its files missing and no network
        def __getattr__(self, name):
            return getattr(real, name)

        def docs_iter(self):
            raise requests.exceptions.ConnectionError("Max retries exceeded with url: /cranfield.tar.gz")
        docs_count = docs_iter
    monkeypatch.setattr(ir_datasets, "load", lambda _id: NotDownloaded())
    res = run("index", "cranfield", "--model", "splade-tiny", "-o", tmp_path / "i", "-q")
    assert res.exit_code == 1
    assert res.stderr.startswith("error: ir_datasets could not fetch the documents of 'cranfield' (ConnectionError")
    assert "IR_DATASETS_HOME" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "i").exists()
