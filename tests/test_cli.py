"""The CLI contract: forms, JSON output, exit codes and error messages."""
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from conftest import BEIR, needs_shared
from lsr.cli.app import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory):
    from conftest import ROOT
    out = tmp_path_factory.mktemp("idx") / "tiny"
    # seismic forced (auto would pick exact for 4 documents): its tests exercise the seismic options
    res = run("index", ROOT / "data/fixtures/tiny_corpus.jsonl", "--model", "splade-tiny", "--output", out,
              "--index-type", "seismic", "-q")
    assert res.exit_code == 0, res.output
    return out


def test_index_records_model_and_docstore(tiny_index):
    manifest = json.loads((tiny_index / "manifest.json").read_text())
    enc = manifest["encoder"]
    assert enc["fingerprint"].startswith("xxh3_128:")  # the model's files, so another model under the name is caught
    assert {k: v for k, v in enc.items() if k != "fingerprint"} == {"name": "splade-tiny", "kind": "splade",
                                                                   "max_length": 256, "backend": "torch"}
    assert manifest["index_type"] == "seismic" and manifest["counts"]["docs"] == 4
    assert (tiny_index / "docs.parquet").exists() and (tiny_index / "vectors").is_dir()
    assert not (tiny_index.parent / "tiny.partial").exists()


def test_search_json_contract(tiny_index):
    res = run("search", tiny_index, "vitamin D and bone fractures", "-k", "2", "--json")
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)["hits"]
    assert [h["doc_id"] for h in hits][0] == "d1"
    assert hits[0]["title"] == "Vitamin D" and hits[0]["score"] > hits[1]["score"] > 0
    assert all(set(h) == {"doc_id", "score", "title"} for h in hits)  # the same keys on every hit
    res = run("search", tiny_index, "vitamin D and bone fractures", "-k", "4", "--json", "--text",
              "--metadata", "year,tags")
    hits = json.loads(res.stdout)["hits"]
    assert all(set(h) == {"doc_id", "score", "title", "text", "metadata"} for h in hits)
    assert all(set(h["metadata"]) == {"year", "tags"} for h in hits)  # null where a document lacks a field
    assert hits[0]["metadata"] == {"year": 2020, "tags": ["nutrition", "bones"]} and "Vitamin D" in hits[0]["text"]
    res = run("search", tiny_index, "gene expression in stem cells", "-k", "1", "--json", "--metadata", "source,tags")
    hit = json.loads(res.stdout)["hits"][0]
    assert (hit["doc_id"], hit["title"], hit["metadata"]) == ("d4", None, {"source": "review", "tags": None})
    res = run("search", tiny_index, "bones", "--metadata", "yeer")
    assert res.exit_code == 1 and "--metadata 'yeer': the index stores no such field" in res.stderr


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
    from lsr.eval.reference import reference_ndcg  # imports no other lsr code
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
    assert sorted(p.name for p in (tmp_path / "vec").glob("shard-*.parquet")) == \
        ["shard-00000.parquet", "shard-00001.parquet"]
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


# ---------------------------------------------------------------- the CLI surface: help, version, options
COMMANDS = ("index", "encode", "search", "eval", "ask", "tune", "tune-hybrid", "compose", "models", "train")


def test_version_and_short_help():
    import lsr
    res = run("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"lsr {lsr.__version__}"
    assert run("-h").exit_code == 0 and "search" in run("-h").stdout
    for command in COMMANDS:
        res = run(command, "-h")
        assert res.exit_code == 0 and "Usage:" in res.stdout, command


def test_help_reads_naturally():
    """No `<bool>` / BOOLEAN type on flags, no {INDEX}-style usage; the seismic options say they apply
    to the sparse list of a hybrid search."""
    for args in ([], *([c] for c in COMMANDS)):
        out = run(*args, "--help").stdout
        assert "<bool>" not in out and "BOOLEAN" not in out and "{" not in out.split("Usage:")[1].splitlines()[0], args
    out = run("search", "--help").stdout
    assert "search [OPTIONS] INDEX [QUERY]" in out and "K [x>=1]" in out
    assert "with --hybrid, its sparse list" in out and "--hybrid" in out


@pytest.mark.parametrize("command", ["search", "eval", "ask", "tune"])
def test_k_is_spelled_the_same_on_every_command(command):
    out = run(command, "--help").stdout
    assert "--k" in out and "-k" in out


def test_k_long_form_works(tiny_index, tmp_path):
    from conftest import ROOT
    f = ROOT / "data/fixtures"
    hits = json.loads(run("search", tiny_index, "bones", "--k", "1", "--json").stdout)["hits"]
    assert len(hits) == 1
    res = run("eval", tiny_index, f / "tiny_corpus.jsonl", "--queries", f / "tiny_queries.jsonl",
              "--qrels", f / "tiny_qrels.tsv", "--json", "--metrics", "RR@2", "--k", "2", "--run", tmp_path / "r")
    assert res.exit_code == 0, res.output
    per_query = [line.split()[0] for line in (tmp_path / "r").read_text().splitlines()]
    assert per_query.count("q1") <= 2 and per_query.count("q2") <= 2
    res = run("tune", tiny_index, "--queries", f / "tiny_queries.jsonl", "--k", "2", "--dry-run", "--json",
              "--target-recall", "0.5")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["k"] == 2 and json.loads(res.stdout)["stored"] is False
    assert run("ask", tiny_index, "  ", "--k", "2").stderr.strip() == "error: question is empty"


# ---------------------------------------------------------------- batch queries into a run file
def _run_file(path):
    return [line.split() for line in path.read_text().splitlines()]


def test_queries_file_to_trec_run_matches_the_searcher(tiny_index, tmp_path):
    from lsr.retrieval import Searcher
    queries = tmp_path / "q.tsv"
    queries.write_text("id\ttext\nqa\tvitamin D and bone fractures\nqb\tsmoking and lung cancer\n")
    res = run("search", tiny_index, "--queries", queries, "--run", tmp_path / "run.txt", "-k", "3")
    assert res.exit_code == 0, res.output
    assert res.stdout == "" and "wrote" in res.stderr
    lines = _run_file(tmp_path / "run.txt")
    ids, scores = Searcher(tiny_index).batch_search_ids(["vitamin D and bone fractures", "smoking and lung cancer"], 3)
    want = [[qid, "Q0", str(d), str(rank), f"{s:.6f}", "lsr"] for qid, row, srow in zip(("qa", "qb"), ids, scores)
            for rank, (d, s) in enumerate([(d, s) for d, s in zip(row, srow) if d != ""], 1)]
    assert lines == want and lines[0][2] == "d1"
    from conftest import ROOT  # a JSONL queries file keeps its ids
    res = run("search", tiny_index, "--queries", ROOT / "data/fixtures/tiny_queries.jsonl", "-k", "1")
    assert [line.split()[:3] for line in res.stdout.splitlines()] == [["q1", "Q0", "d1"], ["q2", "Q0", "d2"]]


def test_queries_from_stdin(tiny_index):
    res = runner.invoke(app, ["search", str(tiny_index), "--queries", "-", "-k", "1"],
                        input="vitamin D and bone fractures\n\nsmoking and lung cancer\n")
    assert res.exit_code == 0, res.output
    assert [line.split()[:4] for line in res.stdout.splitlines()] == [["1", "Q0", "d1", "1"], ["2", "Q0", "d2", "1"]]
    res = runner.invoke(app, ["search", str(tiny_index), "--queries", "-", "-k", "1", "--json"],
                        input="x7\tsmoking and lung cancer\n")
    assert [json.loads(line)["query_id"] for line in res.stdout.splitlines()] == ["x7"]
    assert set(json.loads(res.stdout)["hits"][0]) == {"doc_id", "score", "title"}
    res = runner.invoke(app, ["search", str(tiny_index), "--queries", "-"], input="a\tbones\nno tab here\n")
    assert res.exit_code == 1 and "error: <stdin>:2: expected id<TAB>text" in res.stderr


@needs_shared
def test_queries_from_a_dataset(tiny_index):
    # --queries means "the queries to run" as on eval and tune: a dataset works too (all its queries)
    from lsr.data import load_dataset
    adi = BEIR / "adi"
    res = run("search", tiny_index, "--queries", adi, "-k", "1")
    assert res.exit_code == 0, res.output
    from lsr.retrieval import Searcher
    queries = list(load_dataset(adi).queries())
    ids, _ = Searcher(tiny_index).batch_search_ids([q.text for q in queries], 1)
    want = [[q.query_id, "Q0", row[0]] for q, row in zip(queries, ids) if row[0] != ""]  # a query may match nothing
    assert len(want) > 10 and [line.split()[:3] for line in res.stdout.splitlines()] == want
    res = run("search", tiny_index, "--queries", "no/such/thing", "-k", "1")
    assert res.exit_code == 1 and "--queries no/such/thing: not a queries file, and not a dataset" in res.stderr


def _flat(text):
    """A usage error's text without the panel's borders and line breaks."""
    return " ".join(text.replace("│", " ").split())


def test_query_and_queries_are_exclusive(tiny_index, tmp_path):
    res = runner.invoke(app, ["search", str(tiny_index), "bones", "--queries", "-"], input="bones\n")
    assert res.exit_code == 2 and "give a QUERY or --queries FILE, not both" in _flat(res.output)
    res = run("search", tiny_index)
    assert res.exit_code == 2 and "give a QUERY, or --queries FILE" in _flat(res.output)
    res = run("search", tiny_index, "bones", "--run", tmp_path / "r")
    assert res.exit_code == 2 and "--run writes the results of --queries FILE" in _flat(res.output)


# ---------------------------------------------------------------- seismic options, --hybrid
@pytest.fixture(scope="module")
def exact_bm25(tmp_path_factory):
    from conftest import ROOT
    out = tmp_path_factory.mktemp("exact") / "bm25"
    res = run("index", ROOT / "data/fixtures/tiny_corpus.jsonl", "-m", "bm25", "--index-type", "exact", "-o", out, "-q")
    assert res.exit_code == 0, res.output
    return out


def test_seismic_options_on_an_exact_index_are_refused(exact_bm25):
    from conftest import ROOT
    res = run("search", exact_bm25, "bones", "--query-cut", "3")
    assert res.exit_code == 1 and res.stderr.strip() == \
        f"error: --query-cut applies to a seismic index; {exact_bm25} is an exact index"
    f = ROOT / "data/fixtures"
    res = run("eval", exact_bm25, f / "tiny_corpus.jsonl", "--queries", f / "tiny_queries.jsonl",
              "--qrels", f / "tiny_qrels.tsv", "--heap-factor", "0.5", "--knn", "2")
    assert res.exit_code == 1 and "--heap-factor, --knn apply to a seismic index" in res.stderr
    res = run("search", exact_bm25, "bones", "--hybrid", "--query-cut", "3")
    assert res.exit_code == 1 and "is an exact index" in res.stderr


def test_hybrid_applies_seismic_options_to_the_sparse_list(tiny_index):
    # tiny_index holds only its sparse list: a PRF search over it goes through the hybrid searcher
    res = run("search", tiny_index, "weak bones", "--lists", "sparse", "--prf", "after", "--query-cut", "2",
              "--heap-factor", "0", "--json")
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)["hits"]
    assert hits and all(set(h) == {"doc_id", "score", "title", "list_scores"} for h in hits)
    assert all(h["list_scores"] == {"sparse": h["score"]} for h in hits)  # one list: its raw scores
    res = run("search", tiny_index, "weak bones", "--hybrid")  # nothing to fuse: said, not faked
    assert res.exit_code == 1 and "no dense or BM25 list to fuse" in res.stderr
    res = run("search", tiny_index, "weak bones", "--dense")  # --dense names a model on `lsr index` only
    assert res.exit_code == 2 and "the fused search is --hybrid" in _flat(res.output)
    res = run("search", tiny_index, "weak bones", "--fb-docs", "3")
    assert res.exit_code == 1 and "fb_docs" in res.stderr and "--prf after" in res.stderr


# ---------------------------------------------------------------- --quiet
def test_quiet_silences_every_progress_bar(tiny_index, tmp_path, monkeypatch):
    """-q: no bar on stderr, lsr's or a library's (simulated by a tqdm bar the command does not control)."""
    from tqdm import tqdm

    import lsr.data
    import lsr.retrieval
    from conftest import ROOT
    f = ROOT / "data/fixtures"

    def with_library_bar(real):
        def wrapped(*args, **kwargs):
            for _ in tqdm(range(3), desc="library bar"):
                pass
            return real(*args, **kwargs)
        return wrapped
    monkeypatch.setattr(lsr.data, "load_dataset", with_library_bar(lsr.data.load_dataset))
    monkeypatch.setattr(lsr.retrieval, "build_index", with_library_bar(lsr.retrieval.build_index))
    ev = ["eval", tiny_index, f / "tiny_corpus.jsonl", "--queries", f / "tiny_queries.jsonl",
          "--qrels", f / "tiny_qrels.tsv"]
    loud = run(*ev)
    assert loud.exit_code == 0 and "library bar" in loud.stderr and "searching" in loud.stderr  # the check can fail
    quiet = run(*ev, "-q")
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.stderr
    res = run("index", f / "tiny_corpus.jsonl", "-m", "bm25", "--index-type", "exact", "-o", tmp_path / "i", "-q")
    assert res.exit_code == 0 and res.stderr.startswith("indexed 4 documents") and len(res.stderr.splitlines()) == 1
    for _ in tqdm(range(1), desc="after"):  # the switch is undone when the command ends
        pass
    assert tqdm(range(1)).disable is False
