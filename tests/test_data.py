import gzip
import json

import pytest

from conftest import BEIR, needs_shared
from lsr.data import load_dataset
from lsr.errors import DataError


@needs_shared
def test_ir_datasets_id():
    ds = load_dataset("beir/scifact/test")
    assert ds.docs_count() == 5183
    first = next(iter(ds.docs()))
    assert first.doc_id == "4983" and first.title.startswith("Microstructural development")
    assert first.full_text == f"{first.title} {first.text}"
    assert len(list(ds.queries())) == 300
    qrels = ds.qrels()
    assert len(qrels) == 300 and sum(len(v) for v in qrels.values()) == 339


@needs_shared
def test_ir_datasets_cranfield():
    ds = load_dataset("cranfield")
    assert ds.docs_count() == 1400 and len(ds.qrels()) == 225


@needs_shared
def test_beir_folder_gz_restricts_queries_to_split():
    ds = load_dataset(BEIR / "med")
    assert ds.split == "test"
    assert sum(1 for _ in ds.docs()) == 1033 == ds.docs_count()
    assert len(list(ds.queries())) == 30
    assert sum(len(v) for v in ds.qrels().values()) == 696


@needs_shared
def test_beir_folder_named_split():
    ds = load_dataset(BEIR / "scifact", split="train")
    assert len(ds.qrels()) == 809
    with pytest.raises(DataError, match="no qrels for split 'dev'"):
        load_dataset(BEIR / "scifact", split="dev")


def test_beir_folder_plain_jsonl(tmp_path, fixtures_dir):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text((fixtures_dir / "tiny_corpus.jsonl").read_text())
    (tmp_path / "queries.jsonl").write_text((fixtures_dir / "tiny_queries.jsonl").read_text())
    (tmp_path / "qrels" / "test.tsv").write_text((fixtures_dir / "tiny_qrels.tsv").read_text())
    ds = load_dataset(tmp_path)
    assert [d.doc_id for d in ds.docs()] == ["d1", "d2", "d3", "d4"]
    assert ds.qrels() == {"q1": {"d1": 2, "d3": 1}, "q2": {"d2": 1}}


def test_jsonl_gz_file_and_field_aliases(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"id": 7, "contents": "hello", "year": 2020}) + "\n\n")
        f.write(json.dumps({"doc_id": "x", "title": "T", "text": "body"}) + "\n")
    docs = list(load_dataset(path).docs())
    assert [(d.doc_id, d.title, d.text) for d in docs] == [("7", "", "hello"), ("x", "T", "body")]
    assert docs[0].metadata == {"year": 2020}
    assert load_dataset(path).docs_count() == 2


def test_tsv_corpus_two_and_three_columns(tmp_path):
    p2 = tmp_path / "a.tsv"
    p2.write_text("id\ttext\n1\tfirst doc\n2\tsecond doc\n")
    assert [(d.doc_id, d.text) for d in load_dataset(p2).docs()] == [("1", "first doc"), ("2", "second doc")]
    assert load_dataset(p2).docs_count() == 2
    p3 = tmp_path / "b.tsv"
    p3.write_text("1\tTitle\tBody\n")
    assert [(d.title, d.text) for d in load_dataset(p3).docs()] == [("Title", "Body")]


def test_parquet_corpus(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"_id": ["a", "b"], "title": ["A", None], "text": ["x", "y"]}), tmp_path / "c.parquet")
    ds = load_dataset(tmp_path / "c.parquet")
    assert [(d.doc_id, d.title, d.text) for d in ds.docs()] == [("a", "A", "x"), ("b", "", "y")]
    assert ds.docs_count() == 2


def test_file_dataset_with_queries_and_qrels(fixtures_dir):
    ds = load_dataset(fixtures_dir / "tiny_corpus.jsonl", queries=fixtures_dir / "tiny_queries.jsonl",
                      qrels=fixtures_dir / "tiny_qrels.tsv")
    assert [q.query_id for q in ds.queries()] == ["q1", "q2"]
    assert ds.qrels()["q1"] == {"d1": 2, "d3": 1}


def test_trec_qrels_override(tmp_path, fixtures_dir):
    from lsr.data.files import read_qrels_file
    p = tmp_path / "qrels.txt"
    p.write_text("q1 0 d1 1\nq1 0 d2 0\nq2 0 d4 2\n")
    assert read_qrels_file(p) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d4": 2}}
    ds = load_dataset(fixtures_dir / "tiny_corpus.jsonl", qrels=p)
    assert ds.qrels() == {"q1": {"d1": 1, "d2": 0}, "q2": {"d4": 2}}


@pytest.mark.parametrize("name,content,message", [
    ("bad.jsonl", '{"_id": "1", "text": "ok"}\n{"_id": "2", "text": "broken\n', r"bad\.jsonl:2: invalid JSON"),
    ("c.jsonl", '{"_id": "1", "text": "ok"}\n{"text": "no id"}\n', r"c\.jsonl:2: no id field"),
    ("c.jsonl", '{"_id": "1"}\n', r"c\.jsonl:1: no text field"),
    ("c.jsonl", "[1, 2]\n", r"c\.jsonl:1: expected a JSON object, got list"),
    ("c.tsv", "1\tok\n2\ta\tb\tc\n", r"c\.tsv:2: expected 2 .* found 4"),
])
def test_malformed_corpus_names_file_and_line(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(DataError, match=message):
        list(load_dataset(p).docs())


def test_bad_qrels_value(tmp_path):
    from lsr.data.files import read_qrels_file
    q = tmp_path / "q.tsv"
    q.write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
    with pytest.raises(DataError, match=r"q\.tsv:2: relevance 'high' is not a number"):
        read_qrels_file(q)


def test_unknown_sources():
    with pytest.raises(DataError, match="neither an existing path nor a known ir_datasets id"):
        load_dataset("beir/not-a-dataset")
    with pytest.raises(DataError, match="dataset path not found"):
        load_dataset("./no/such/folder")
    with pytest.raises(DataError, match="file not found"):
        load_dataset("beir/scifact/test", queries="/no/such/queries.jsonl")


def test_unknown_file_format(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("a,b\n")
    with pytest.raises(DataError, match="unknown corpus format"):
        list(load_dataset(p).docs())


def test_no_queries_or_qrels(fixtures_dir):
    ds = load_dataset(fixtures_dir / "tiny_corpus.jsonl")
    with pytest.raises(DataError, match="has no queries"):
        list(ds.queries())
    with pytest.raises(DataError, match="has no relevance judgements"):
        ds.qrels()
