"""The edges of the CLI, evaluation and retrieval layers (issue 20): every bad argument is one `error:` line
and exit 1, never a traceback, an abort or a RecursionError; outputs stay parseable; evaluation figures do
not depend on what else is asked. One test per finding, each asserting the message."""
import json
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import BEIR, ROOT, needs_shared
from lsr.cli.app import app
from lsr.errors import DataError, IndexError_, ModelError, ParameterError, QueryError

runner = CliRunner()
TINY = ROOT / "data" / "fixtures" / "tiny_corpus.jsonl"


def run(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def flat(text: str) -> str:
    return " ".join(text.split())


def build(*args):
    res = run("index", *args, "-q")
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def tiny_bm25(tmp_path_factory):
    """The 4-document fixture as a BM25 exact index with a BM25 list (two lists to fuse)."""
    out = tmp_path_factory.mktemp("edges") / "tiny"
    build(TINY, "--model", "bm25", "--bm25", "--index-type", "exact", "-o", out)
    return out


@pytest.fixture(scope="module")
def adi(tmp_path_factory):
    """ADI (82 documents, 35 judged queries) as BM25 indexes: exact, and seismic (approximate)."""
    if not BEIR.is_dir():
        pytest.skip("needs the shared BEIR folders")
    out = tmp_path_factory.mktemp("adi")
    build(BEIR / "adi", "--model", "bm25", "--index-type", "exact", "-o", out / "exact")
    build(BEIR / "adi", "--model", "bm25", "--index-type", "seismic", "-o", out / "seismic")
    return out


# 1 ---------------------------------------------------------------- zero hits
def test_zero_hits_print_an_empty_table_and_a_note(tiny_bm25):
    res = run("search", tiny_bm25, "xylophone")
    assert res.exit_code == 0, res.output
    assert "doc id" in res.stdout and "no hits: no document matches the query" in res.stderr
    res = run("search", tiny_bm25, "bones", "--where", '{"year": 1900}', "--text", "--metadata", "all")
    assert res.exit_code == 0 and "no hits: no document matches the query and the filter" in res.stderr


# 2 ---------------------------------------------------------------- strict JSON
def test_json_output_is_strict_json_or_an_error(tiny_bm25, capsys):
    from lsr.cli.output import print_json

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    res = run("search", tiny_bm25, "weak bones", "--json", "--hybrid")
    assert res.exit_code == 0 and strict(res.stdout)["hits"]
    with pytest.raises(IndexError_, match=r"cannot print hits\[0\]\.score = inf as JSON: it is not a finite number"):
        print_json({"hits": [{"doc_id": "d1", "score": float("inf")}]})
    with pytest.raises(IndexError_, match=r"nDCG@10 = nan"):
        print_json({"nDCG@10": float("nan")})
    assert capsys.readouterr().out == ""  # nothing half-printed


# 3 ---------------------------------------------------------------- k >= 1
def test_k_below_one_is_an_error_line(tiny_bm25):
    from lsr.retrieval.hits import check_request
    f = ROOT / "data" / "fixtures"
    for args in (("eval", tiny_bm25, TINY, "--queries", f / "tiny_queries.jsonl", "--qrels", f / "tiny_qrels.tsv",
                  "-k", "0"),
                 ("eval", tiny_bm25, TINY, "-k", "-1"), ("search", tiny_bm25, "bones", "-k", "0"),
                 ("search", tiny_bm25, "bones", "--k", "-5")):
        res = run(*args)
        assert res.exit_code == 1 and res.stderr.startswith("error: "), args
        assert "-k/--k: Input should be greater than or equal to 1" in res.stderr, args
        assert "Usage:" not in res.output
    for k in (0, -1, True, 2.0):
        with pytest.raises(QueryError, match=f"k must be an integer >= 1, got {k!r}"):
            check_request(["bones"], k)


# 4 ---------------------------------------------------------------- metrics
def test_bad_metric_is_an_error_not_an_abort(tiny_bm25):
    from lsr.eval import parse_metrics
    f = ROOT / "data" / "fixtures"
    # nDCG@0 used to reach trec_eval's C assertion and abort the interpreter (rc 134): a real process.
    p = subprocess.run([sys.executable, "-m", "lsr", "eval", str(tiny_bm25), str(TINY), "--queries",
                        str(f / "tiny_queries.jsonl"), "--qrels", str(f / "tiny_qrels.tsv"), "--metrics", "nDCG@0"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert "error: metric 'nDCG@0': the cutoff after @ must be a whole number >= 1" in p.stderr
    with pytest.raises(DataError, match=r"metric 'P@1.5': the cutoff after @ must be a whole number"):
        parse_metrics(["P@1.5"])
    with pytest.raises(DataError, match=r"unknown metric 'foo': give an ir-measures name such as nDCG@10, R@100"):
        parse_metrics(["foo"])
    with pytest.raises(DataError, match=r"unknown metric 'ndcg@10' \(did you mean 'nDCG@10'\?\)"):
        parse_metrics(["ndcg@10"])


# 5 ---------------------------------------------------------------- one evaluation depth
@needs_shared
def test_metrics_do_not_depend_on_the_others_asked(adi, tmp_path):
    from lsr.data import load_dataset
    from lsr.eval import DEPTH, evaluate_index
    from lsr.retrieval import Searcher

    def ev(*args):
        res = run("eval", adi["seismic"] if isinstance(adi, dict) else adi / "seismic", BEIR / "adi", "--json",
                  "-q", *args)
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)
    alone, both = ev("--metrics", "nDCG@10"), ev("--metrics", "nDCG@10", "--metrics", "R@100")
    assert alone["nDCG@10"] == both["nDCG@10"] and DEPTH == 1000
    res = run("eval", adi / "exact", BEIR / "adi", "--depth", "10", "-q")
    assert res.exit_code == 1
    assert "error: metric R@100 reads the top 100 hits, deeper than the evaluation depth 10: raise --depth to at " \
           "least 100" in flat(res.stderr)
    # the run holds `depth` hits per query, self-hits dropped
    res = run("eval", adi / "exact", BEIR / "adi", "--depth", "7", "--metrics", "nDCG@5", "--run", tmp_path / "r",
              "-q")
    assert res.exit_code == 0, res.output
    per_query = {}
    for line in (tmp_path / "r").read_text().splitlines():
        per_query[line.split()[0]] = per_query.get(line.split()[0], 0) + 1
    assert max(per_query.values()) == 7
    with pytest.raises(ParameterError, match="raise the depth to at least 10"):
        evaluate_index(Searcher(adi / "exact"), load_dataset(BEIR / "adi"), ["nDCG@10"], depth=5)


# 6 ---------------------------------------------------------------- qrels of another corpus
@needs_shared
def test_wrong_corpus_warns_with_the_counts(adi):
    from lsr.data import load_dataset
    from lsr.eval import QrelsCoverageWarning, evaluate_index
    from lsr.retrieval import Searcher
    res = run("eval", adi / "exact", BEIR / "scifact", "-q", "--metrics", "nDCG@10")
    assert res.exit_code == 0, res.output
    assert "warning: only 0 of the 283 documents judged in" in flat(res.stderr)
    assert "are in the index (82 documents)" in flat(res.stderr)
    with pytest.warns(QrelsCoverageWarning, match=r"only 0 of the 283 documents judged"):
        evaluate_index(Searcher(adi / "exact"), load_dataset(BEIR / "scifact"), ["nDCG@10"], progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", QrelsCoverageWarning)  # the right corpus: no warning
        evaluate_index(Searcher(adi / "exact"), load_dataset(BEIR / "adi"), ["nDCG@10"], progress=False)


# 7 ---------------------------------------------------------------- filter limits
def test_nested_and_huge_filters_are_refused_with_the_limit(tiny_bm25):
    from lsr.index.filters import MAX_CLAUSES, MAX_DEPTH, compile_where, parse_where
    deep = '{"$and": [' * 500 + '{"year": 2020}' + "]}" * 500
    p = subprocess.run([sys.executable, "-m", "lsr", "search", str(tiny_bm25), "bones", "--where", deep],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "RecursionError" not in p.stderr
    assert f"error: where: filters nested more than {MAX_DEPTH} levels deep" in p.stderr
    where = {"year": 2020}
    for _ in range(5000):  # deeper than Python's recursion limit, built without JSON
        where = {"$not": where}
    cols = {"year": __import__("pyarrow").array([2020, 2018])}
    with pytest.raises(QueryError, match=f"nested more than {MAX_DEPTH} levels deep"):
        compile_where(where, cols)
    with pytest.raises(QueryError, match="more than 1,000 conditions in one filter"):
        compile_where({"$or": [{"year": i} for i in range(MAX_CLAUSES + 1)]}, cols)
    with pytest.raises(QueryError, match=r"'year' \$in lists 100,001 values; at most 100,000"):
        parse_where(json.dumps({"year": {"$in": list(range(100_001))}}))
    assert compile_where({"$not": {"$not": {"year": 2020}}}, cols).tolist() == [True, False]
    with pytest.raises(QueryError, match=r"--where '\{\"year\": 1, \"x\": \[\"aaaa.*' … '.*\]\}': not valid JSON"):
        parse_where('{"year": 1, "x": [' + '"aaaa", ' * 100 + ']}')  # shortened, quotes kept


# 8 ---------------------------------------------------------------- TREC ids
def test_trec_run_refuses_ids_it_cannot_round_trip(tmp_path):
    from lsr.eval import read_trec_run, trec_run_lines, write_trec_run
    for run_, message in (({"q1": {"doc 1": 1.0}}, "doc id 'doc 1' (query 'q1')"),
                          ({"q 1": {"d1": 1.0}}, "query id 'q 1'"),
                          ({"q1": {"a\nb": 1.0}}, r"doc id 'a\nb' (query 'q1')")):
        with pytest.raises(DataError, match=re.escape(f"cannot write {message} to a TREC run")):
            write_trec_run(tmp_path / "run.txt", run_)
        assert not (tmp_path / "run.txt").exists()
        with pytest.raises(DataError, match="ids must be non-empty and contain none"):
            trec_run_lines(run_)
    write_trec_run(tmp_path / "ok.txt", {"q1": {"d-1": 2.0, "d_2": 1.0}})
    assert read_trec_run(tmp_path / "ok.txt") == {"q1": {"d-1": 2.0, "d_2": 1.0}}
    # through the CLI: an index whose doc ids hold spaces
    corpus = tmp_path / "spaces.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"doc {i}", "text": t}) + "\n"
                              for i, t in enumerate(["weak bones", "lung cancer"])))
    build(corpus, "--model", "bm25", "--index-type", "exact", "-o", tmp_path / "idx")
    res = run("search", tmp_path / "idx", "--queries", "-", "--run", tmp_path / "out.txt", input="bones\n")
    assert res.exit_code == 1 and "cannot write doc id 'doc 0' (query '1') to a TREC run" in res.stderr
    assert not (tmp_path / "out.txt").exists()


# 9 ---------------------------------------------------------------- lists that are not there
def test_missing_lists_and_one_list_fusion_fail(tmp_path, tiny_bm25):
    only = tmp_path / "only"
    build(TINY, "--model", "bm25", "--index-type", "exact", "-o", only)
    for cmd in (("search", only, "bones"), ("eval", only, TINY, "--queries", ROOT / "data/fixtures/tiny_queries.jsonl",
                                            "--qrels", ROOT / "data/fixtures/tiny_qrels.tsv")):
        res = run(*cmd, "--lists", "sparse,dense")
        assert res.exit_code == 1
        assert f"{only} has no dense index (build it with `lsr index ... --dense minilm`)" in flat(res.stderr)
        res = run(*cmd, "--lists", "bm25,sparse")
        assert res.exit_code == 1 and f"{only} has no BM25 list (build it with `lsr index ... --bm25`)" in res.stderr
        res = run(*cmd, "--fusion", "rrf")  # used to report the sparse list's own figures as a "fusion"
        assert res.exit_code == 1
        assert (f"fusion: fusion settings, but this search fuses one list (sparse); {only} holds only its sparse "
                "list: add one with `lsr index ... --dense minilm` or `--bm25`") in flat(res.stderr)
    res = run("search", tiny_bm25, "bones", "--weights", "1")
    assert res.exit_code == 1 and "(CLI: --hybrid or --lists sparse,bm25)" in flat(res.stderr)


# 10 --------------------------------------------------------------- tune-hybrid splits
@needs_shared
def test_tune_hybrid_never_tunes_on_test_and_reports_on_stdout(tmp_path):
    from lsr.retrieval.tune import tuning_split
    assert tuning_split(BEIR / "nfcorpus") == "dev" and tuning_split(BEIR / "scifact") == "train"
    assert tuning_split("beir/scifact/train") is None
    idx = tmp_path / "adi"
    build(BEIR / "adi", "--model", "bm25", "--bm25", "--index-type", "exact", "-o", idx)
    res = run("tune-hybrid", idx, "--queries", BEIR / "adi", "--lists", "bm25,sparse", "-q")
    assert res.exit_code == 1
    assert f"error: {BEIR / 'adi'}: no dev or train qrels to tune on (found: test)" in flat(res.stderr)
    # a folder whose judged split is train: tuned on it, the result on stdout, nothing on stderr
    folder = tmp_path / "adi-train"
    shutil.copytree(BEIR / "adi", folder)
    (folder / "qrels" / "test.tsv").rename(folder / "qrels" / "train.tsv")
    res = run("tune-hybrid", idx, "--queries", folder, "--lists", "bm25,sparse", "--step", "0.5", "--dry-run", "-q")
    assert res.exit_code == 0, res.output
    assert "best nDCG@10 " in res.stdout and f"on {folder} (35 queries)" in res.stdout
    assert "not stored (--dry-run)" in res.stdout and "error" not in res.stderr


# 11 --------------------------------------------------------------- messages
def test_messages_suggest_names_keep_quotes_and_advise_real_options():
    from lsr.data import load_dataset
    from lsr.encoders import load_encoder
    from lsr.encoders.names import check_kind
    from lsr.errors import brief
    long = "HTTPSConnectionPool(host='huggingface.co', port=443): Max retries exceeded with url: /api/models/x " \
           "(Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object>: Failed to establish a " \
           "new connection: [Errno -3] Temporary failure in name resolution'))"
    short = brief(long)
    assert short.endswith(" …") and len(short) < 205 and short.count("'") % 2 == 0
    assert brief("one line\nsecond line") == "one line"
    with pytest.raises(ModelError, match=r"unknown model 'splade-tiy' \(did you mean 'splade-tiny'\?\)"):
        load_encoder("splade-tiy")
    with pytest.raises(DataError, match=r"'beir/scifct/test' is neither an existing path nor a known ir_datasets id "
                                        r"\(did you mean 'beir/scifact/test'\?\)"):
        load_dataset("beir/scifct/test")
    if BEIR.is_dir():
        with pytest.raises(DataError, match=r"dataset path not found: .*scifct \(did you mean '.*beir/scifact'\?\)"):
            load_dataset(BEIR / "scifct")
    with pytest.raises(ModelError, match=r"through the echo composition, echo@smollm2-135m") as e:
        check_kind("smollm2-135m", "causal-lm", "splade")
    assert "--model" not in str(e.value)
    with pytest.raises(DataError, match=r"^a split applies to BEIR folders"):
        load_dataset("beir/scifact/test", split="train")


# 12 --------------------------------------------------------------- no score, no hit
def test_fusion_never_makes_an_unmatched_document_a_hit(tiny_bm25):
    from lsr.retrieval import HybridSearcher
    from lsr.retrieval.hybrid import HybridConfig, unmatched_as_missing
    docs, scores = unmatched_as_missing(np.array([[3, 1, 2, -1]]), np.array([[2.0, 0.0, np.nan, -np.inf]]))
    assert docs.tolist() == [[3, -1, -1, -1]] and scores[0, 0] == 2.0 and np.isneginf(scores[0, 1:]).all()
    for fusion, norm in (("convex", "minmax"), ("convex", "zscore"), ("rrf", "none")):
        h = HybridSearcher(tiny_bm25, HybridConfig(lists=("sparse", "bm25"), fusion=fusion, norm=norm))
        assert h.search("xylophone", k=4) == [], fusion
        hits = h.search("weak bones", k=4)  # only documents sharing a term
        assert hits and {hit.doc_id for hit in hits} <= {"d1", "d3"}, [hit.doc_id for hit in hits]
    assert len(h.search("bones", k=10 ** 12)) == 2  # k beyond the documents: clamped, no giant arrays
