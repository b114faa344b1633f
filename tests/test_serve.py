"""`lsr serve`: answers equal lsr.Retriever's, bad requests get 4xx with messages, API key, limits, documents,
metrics, timeouts; and a real server process under load shuts down cleanly on SIGTERM."""
import gzip
import json
import shutil

import pytest
from typer.testing import CliRunner

from conftest import BEIR, needs_shared
from lsr import Retriever
from lsr.cli.app import app as cli

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from lsr.serve import Limits, ServeConfig, create_app  # noqa: E402

pytestmark = needs_shared
QUERIES = ["computer indexing of documents", "information retrieval evaluation", "automatic abstracting"]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """ADI (82 docs) with a year in each document's metadata; splade-tiny + MiniLM (hybrid)."""
    tmp = tmp_path_factory.mktemp("serve")
    rows = [json.loads(line) for line in gzip.open(BEIR / "adi" / "corpus.jsonl.gz", "rt")]
    with open(tmp / "adi.jsonl", "w") as f:
        for i, r in enumerate(rows):
            f.write(json.dumps({**r, "metadata": {"year": 2000 + i % 3}}) + "\n")
    res = CliRunner().invoke(cli, ["index", str(tmp / "adi.jsonl"), "-m", "splade-tiny", "--dense", "minilm",
                                   "-o", str(tmp / "idx"), "-q"])
    assert res.exit_code == 0, res.output
    return tmp / "idx"


@pytest.fixture(scope="module")
def client(index):
    with TestClient(create_app(ServeConfig(str(index), mode="sparse"), Limits(max_k=100, max_batch=8))) as c:
        yield c


def _pairs(hits):
    return [(h["doc_id"], h["score"]) for h in hits]


def test_search_equals_retriever(client, index):
    sparse, hybrid = Retriever(index), Retriever(index, mode="hybrid")
    for q in QUERIES:
        r = client.post("/search", json={"query": q, "k": 7})
        assert r.status_code == 200 and r.json()["took_ms"] > 0
        assert _pairs(r.json()["hits"]) == [(h.doc_id, h.score) for h in sparse.search(q, 7)]
        r = client.post("/search", json={"query": q, "k": 5, "mode": "hybrid", "fields": ["text", "metadata"]})
        want = hybrid.search(q, 5)
        assert _pairs(r.json()["hits"]) == [(h.doc_id, h.score) for h in want]
        assert [h["text"] for h in r.json()["hits"]] == [h.text for h in want]
        assert [h["list_scores"] for h in r.json()["hits"]] == [h.list_scores for h in want]
    where = {"year": {"$gte": 2001}}
    r = client.post("/search", json={"query": QUERIES[0], "k": 10, "where": where, "fields": ["metadata"]})
    assert _pairs(r.json()["hits"]) == [(h.doc_id, h.score) for h in sparse.search(QUERIES[0], 10, where=where)]
    assert all(h["metadata"]["year"] >= 2001 for h in r.json()["hits"])
    # per-request fusion parameters: as a Retriever opened with that config
    from dataclasses import replace
    rrf = Retriever(index, mode="hybrid", config=replace(hybrid._hybrid.config, fusion="rrf", weights=(2.0, 1.0, 1.0)))
    r = client.post("/search", json={"query": QUERIES[1], "mode": "hybrid",
                                     "params": {"fusion": "rrf", "weights": [2.0, 1.0, 1.0]}})
    assert _pairs(r.json()["hits"]) == [(h.doc_id, h.score) for h in rrf.search(QUERIES[1], 10)]
    r = client.post("/search/batch", json={"queries": QUERIES, "k": 4})
    assert [_pairs(x) for x in r.json()["results"]] == \
        [[(h.doc_id, h.score) for h in hits] for hits in sparse.batch_search(QUERIES, 4)]


def test_search_equals_lsr_search_json(client, index):
    for q in QUERIES:
        res = CliRunner().invoke(cli, ["search", str(index), q, "-k", "5", "--json", "--text"])
        assert res.exit_code == 0, res.output
        served = client.post("/search", json={"query": q, "k": 5, "fields": ["text"]}).json()["hits"]
        assert served == json.loads(res.output)["hits"]


def test_explain_and_encode(client, index):
    r = Retriever(index)
    got = client.post("/search", json={"query": QUERIES[0], "k": 3, "explain": True, "explain_terms": 4}).json()
    want = r.explain(QUERIES[0], [h["doc_id"] for h in got["hits"]], top=4)
    assert [h["explain"] for h in got["hits"]] == [w["terms"] for w in want]
    assert all(len(h["explain"]) <= 4 and h["explain"][0]["contribution"] > 0 for h in got["hits"])
    q = r._searcher.encode_queries([QUERIES[0]])
    idx, val = q.row(0)
    out = client.post("/encode", json={"texts": [QUERIES[0]]}).json()["vectors"][0]
    assert sorted(zip(out["indices"], out["values"])) == sorted(zip(idx.tolist(), val.tolist()))
    tokens = client.post("/encode", json={"texts": [QUERIES[0]], "format": "tokens", "top": 3}).json()["vectors"][0]
    top3 = sorted(zip(val.tolist(), idx.tolist()), reverse=True)[:3]
    assert tokens == {q.vocab.tokens[i]: v for v, i in top3}
    doc = client.post("/encode", json={"texts": ["automatic indexing of documents"], "side": "document"}).json()
    assert doc["vocab_size"] == r.index.vocab.size and len(doc["vectors"][0]["indices"]) > 5


@pytest.mark.parametrize("body, status, message", [
    ({"query": "x", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
    ({"query": "x", "k": -1}, 422, "k: Input should be greater than or equal to 1"),
    ({"query": "x", "k": 10**6}, 422, "k: Input should be less than or equal to 100"),
    ({"query": "x", "kk": 3}, 422, "kk: unknown field"),
    ({"query": "x", "params": {"query_cut": 0}}, 422, "params.query_cut"),
    ({"query": "x", "params": {"topn": 3}}, 422, "params.topn: unknown field"),
    ({"query": "x", "params": {"fusion": "rrf"}}, 422, "apply to mode 'hybrid'"),
    ({"query": "x", "mode": "exact"}, 422, "mode: Input should be 'sparse', 'dense' or 'hybrid'"),
    ({"query": ""}, 422, "query: String should have at least 1 character"),
    ({"query": "   "}, 422, "query is empty"),
    ({"query": "x" * 1_000_000}, 422, "query: String should have at most 4096 characters"),
    ({"query": "x", "where": {"year": {"$regex": "a"}}}, 422, "$regex"),
    ({"k": 3}, 422, "query: Field required"),
    ({"query": "x", "explain_terms": 3}, 422, "add \"explain\": true"),
    ({"query": "x", "mode": "hybrid", "params": {"fusion": "rrf", "norm": "zscore"}}, 422, "norm applies to convex"),
    ({"query": "x", "mode": "hybrid", "params": {"weights": [1.0]}}, 422, "one non-negative weight per list"),
    ([1, 2], 422, "Input should be a valid dictionary"),
])
def test_bad_search_requests(client, body, status, message):
    r = client.post("/search", json=body)
    assert r.status_code == status and message in r.json()["error"], r.json()


def test_bad_input_is_never_5xx_and_never_echoed(client, index, tmp_path):
    r = client.post("/search", json={"query": "x" * 1_000_000})
    assert r.status_code == 422 and len(r.content) < 2000  # the megabyte is not sent back
    r = client.post("/search", content=b'{"query": "x", "k": NaN}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"].startswith("k: ")
    r = client.post("/search", content=b'{"query": "x", "params": {"heap_factor": Infinity}}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and "params.heap_factor" in r.json()["error"]
    r = client.post("/search", content=b"query=x", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    # hybrid on an index with one list: a clear 422, not an index error
    from lsr.retrieval import build_index
    build_index(str(index.parent / "adi.jsonl"), "bm25", tmp_path / "one", progress=False)
    with TestClient(create_app(ServeConfig(str(tmp_path / "one")))) as c:
        r = c.post("/search", json={"query": "indexing", "mode": "hybrid"})
        assert r.status_code == 422 and "one list only" in r.json()["error"]
        r = c.post("/encode", json={"texts": ["automatic indexing"], "side": "document", "format": "tokens"})
        assert r.status_code == 200 and set(r.json()["vectors"][0]) >= {"index", "automat"}


def test_documents_by_id(client, index):
    r = Retriever(index)
    got = client.get("/documents/1").json()
    assert got == r.get(["1"])[0]
    terms = client.get("/documents/1/terms", params={"top": 4}).json()
    assert terms == {"doc_id": "1", "terms": r.doc_terms("1", 4)}
    assert client.get("/documents/nope").status_code == 404 and "nope" in client.get("/documents/nope").json()["error"]
    assert client.get("/documents/1/terms", params={"top": 0}).status_code == 422


def test_bad_bodies_and_other_endpoints(client):
    r = client.post("/search", content=b'{"query": "x",', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]
    r = client.post("/search", content=b"x" * (2 << 20), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "1,048,576 bytes" in r.json()["error"]
    chunks = (b"x" * 65536 for _ in range(40))  # no Content-Length: counted as it arrives
    r = client.post("/search", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/search/batch", json={"queries": ["a"] * 9})
    assert r.status_code == 422 and "queries: List should have at most 8 items" in r.json()["error"]
    r = client.post("/encode", json={"texts": ["a"], "side": "both"})
    assert r.status_code == 422 and "side" in r.json()["error"]
    r = client.request("DELETE", "/documents", json={})
    assert r.status_code == 422 and "give ids and/or where" in r.json()["error"]
    assert client.post("/documents", json={"documents": [{"doc_id": "x"}]}).json()["error"].startswith(
        "documents.0.text: Field required")
    assert client.get("/nowhere").status_code == 404


def test_api_key(index):
    with TestClient(create_app(ServeConfig(str(index)), api_key="s3cret")) as c:
        body = {"query": QUERIES[0], "k": 2}
        assert c.post("/search", json=body).status_code == 401
        r = c.post("/search", json=body, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "API key" in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
        assert c.post("/search", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.post("/search", json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/metrics").status_code == 401 and c.get("/health").status_code == 200


def test_documents_info_metrics(index, tmp_path):
    from lsr.index.info import index_info
    copy = tmp_path / "idx"
    shutil.copytree(index, copy)
    with TestClient(create_app(ServeConfig(str(copy), mode="sparse"))) as c:
        n = c.get("/health").json()["docs"]
        doc = {"doc_id": "new-1", "title": "Wind tunnels", "text": "supersonic wind tunnel flow measurements"}
        r = c.post("/documents", json={"documents": [doc, {**doc, "doc_id": "1"}]})
        assert r.status_code == 200 and r.json()["added"] == 1 and r.json()["replaced"] == 1
        assert r.json()["docs"] == n + 1 and c.get("/health").json()["generation"] == r.json()["generation"]
        hits = c.post("/search", json={"query": "supersonic wind tunnel", "k": 2}).json()["hits"]
        assert {h["doc_id"] for h in hits} == {"new-1", "1"}
        r = c.request("DELETE", "/documents", json={"ids": ["new-1", "nope"]})
        assert r.json()["deleted"] == 1 and r.json()["unknown"] == ["nope"]
        hits = c.post("/search", json={"query": "supersonic wind tunnel", "k": 5}).json()["hits"]
        assert "new-1" not in {h["doc_id"] for h in hits}
        assert c.get("/info").json() == json.loads(json.dumps(index_info(copy)))
        text = c.get("/metrics").text
    assert 'lsr_requests_total{endpoint="/search",method="POST",status="200"} 2.0' in text
    assert 'lsr_request_duration_seconds_bucket{endpoint="/documents",le="+Inf"} 2.0' in text
    assert "lsr_index_generation" in text


def test_timeout_is_503_and_abandoned_work_keeps_its_slot(index, monkeypatch):
    import threading
    import time
    running, most, lock = [0], [0], threading.Lock()

    def slow(self, *a, **k):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.5)
        with lock:
            running[0] -= 1
        return []

    with TestClient(create_app(ServeConfig(str(index), mode="sparse", threads=1), Limits(timeout_s=0.2))) as c:
        monkeypatch.setattr(Retriever, "batch_search", slow)  # what /search calls (a batch of one)
        statuses = []
        threads = [threading.Thread(target=lambda: statuses.append(
            c.post("/search", json={"query": QUERIES[0]}).status_code)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        r = c.post("/search", json={"query": QUERIES[0]})
        time.sleep(0.8)
    assert statuses == [503] * 4 and r.status_code == 503 and "timeout of 0.2 s" in r.json()["error"]
    assert most[0] == 1  # timed-out requests' threads kept their one slot: never two searches at once
