"""Living indexes: add, update, delete in place; segments searched as one; merges; snapshots; the commit point."""
import gzip
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import BEIR, in_another_thread, needs_shared
from lsr import IndexWriter, Retriever
from lsr.cli.app import app
from lsr.errors import DataError, IndexError_
from lsr.index import commit as commits
from lsr.index.info import index_info
from lsr.retrieval.writer import plan_merge

pytestmark = needs_shared
runner = CliRunner()
QUERIES = ["computer indexing of documents", "information retrieval evaluation", "automatic abstracting",
           "library catalog", "machine translation of scientific text"]


def _corpus(name):
    return [json.loads(line) for line in gzip.open(BEIR / name / "corpus.jsonl.gz", "rt")]


def _write(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def _index(args):
    res = runner.invoke(app, ["index", *map(str, args), "-q"])
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def adi(tmp_path_factory):
    """ADI (82 docs) with splade-tiny + minilm + BM25: built at once, and its first 70 docs (to grow by 12)."""
    tmp = tmp_path_factory.mktemp("adi")
    rows = _corpus("adi")
    first, rest = _write(tmp / "first.jsonl", rows[:70]), _write(tmp / "rest.jsonl", rows[70:])
    _index([BEIR / "adi", "-m", "splade-tiny", "--dense", "minilm", "-o", tmp / "whole"])
    _index([first, "-m", "splade-tiny", "--dense", "minilm", "-o", tmp / "first"])
    return {"tmp": tmp, "rows": rows, "rest": rest, "whole": tmp / "whole", "first": tmp / "first"}


@pytest.fixture
def grown(adi, tmp_path):
    """The first 70 ADI docs plus the other 12 added by `lsr add` (two segments)."""
    out = tmp_path / "grown"
    shutil.copytree(adi["first"], out)
    res = runner.invoke(app, ["add", str(out), str(adi["rest"]), "-q"])
    assert res.exit_code == 0, res.output
    return out


def _top(retriever, k=10):
    ids, scores = retriever.batch_search_ids(QUERIES, k)
    return ids, scores


def test_grown_exact_index_scores_as_built_at_once(adi, grown):
    assert index_info(adi["first"])["index_type"] == "exact"  # 70 docs: auto picks exact
    info = index_info(grown)
    assert [s["docs"] for s in info["segments"]] == [70, 12] and info["docs"] == 82 and info["deleted"] == 0
    ids_w, s_w = _top(Retriever(adi["whole"]))
    ids_g, s_g = _top(Retriever(grown))
    np.testing.assert_allclose(s_g, s_w, rtol=1e-5)
    assert (ids_g == ids_w).mean() > 0.95  # equal scores may swap places; the scores above are the same


def test_grown_hybrid_close_and_merged_hybrid_equal(adi, grown, tmp_path):
    from lsr.data import load_dataset
    from lsr.eval.run import evaluate_index
    ds = load_dataset(str(BEIR / "adi"))

    def ndcg(path):
        return evaluate_index(Retriever(path, mode="hybrid"), ds, ["nDCG@10"], progress=False)["nDCG@10"]
    whole, grown_v = ndcg(adi["whole"]), ndcg(grown)
    # global BM25 N, df (and IDF in PRF feedback); the first segment keeps the average length it was weighted
    # with (15% growth here): the bar for the hybrid is 0.002
    assert grown_v == pytest.approx(whole, abs=0.002)
    with IndexWriter(grown, merge=False) as w:
        w.merge(1)
    assert len(index_info(grown)["segments"]) == 1
    assert ndcg(grown) == pytest.approx(whole, abs=1e-4)  # a merge rewrites BM25 with the global statistics


def test_delete_never_returned_and_counted(grown):
    r = Retriever(grown)
    victims = [h.doc_id for h in r.search(QUERIES[0], 5)]
    res = runner.invoke(app, ["delete", str(grown), *victims, "nope-1", "-q"])
    assert res.exit_code == 0, res.output
    assert "1 id(s) not in the index: 'nope-1'" in res.output
    old = r.search(QUERIES[0], 5)
    assert [h.doc_id for h in old] == victims  # a snapshot: the reader opened before still answers as before
    assert r.refresh() is True
    for hits in r.batch_search(QUERIES, 82):
        assert not {h.doc_id for h in hits} & set(victims)
    assert len(r) == 77 and len(r.batch_search([QUERIES[0]], 100)[0]) <= 77
    with pytest.raises(KeyError, match=victims[0]):
        r.get([victims[0]])
    info = index_info(grown)
    assert (info["docs"], info["deleted"]) == (77, 5)
    res = runner.invoke(app, ["info", str(grown), "--json"])
    data = json.loads(res.output)
    assert {"docs", "deleted", "segments", "model", "index_type", "bytes"} <= set(data) and data["deleted"] == 5
    # merging drops them for good
    res = runner.invoke(app, ["merge", str(grown), "-q"])
    assert res.exit_code == 0, res.output
    info = index_info(grown)
    assert (info["docs"], info["deleted"], len(info["segments"])) == (77, 0, 1)
    r.refresh()
    assert not {h.doc_id for h in r.search(QUERIES[0], 82)} & set(victims)


def test_update_found_by_new_text_once(grown):
    r = Retriever(grown)
    target = r.search("automatic abstracting", 1)[0]
    new = "zebrafish telomerase regulates circadian bioluminescence in anglerfish"
    with IndexWriter(grown, merge=False) as w:
        w.add([{"doc_id": target.doc_id, "text": new, "metadata": {"v": 2}}])
    assert w.last_report["replaced"] == 1 and w.last_report["added"] == 0
    r.refresh()
    hits = r.search(new, 82)
    assert hits[0].doc_id == target.doc_id and hits[0].text == new
    assert [h.doc_id for h in hits].count(target.doc_id) == 1
    stale = [h for h in r.search(target.text[:200], 82) if h.doc_id == target.doc_id]
    assert all(h.text == new for h in stale)
    assert r.get([target.doc_id])[0]["text"] == new and len(r) == 82


def test_where_delete_and_filters_across_segments(tmp_path):
    rows = [{"_id": f"d{i}", "text": f"solar panel efficiency report number {i}", "metadata": {"year": 2000 + i}}
            for i in range(30)]
    _index([_write(tmp_path / "a.jsonl", rows[:20]), "-m", "bm25", "-o", tmp_path / "idx"])
    with IndexWriter(tmp_path / "idx", merge=False) as w:
        w.add(rows[20:])
    r = Retriever(tmp_path / "idx")
    assert {h.doc_id for h in r.search("solar panel", 30, where={"year": {"$gte": 2025}})} == \
        {f"d{i}" for i in range(25, 30)}
    res = runner.invoke(app, ["delete", str(tmp_path / "idx"), "--where", '{"year": {"$lt": 2010}}', "-q"])
    assert res.exit_code == 0, res.output
    r.refresh()
    assert {h.doc_id for h in r.search("solar panel", 30)} == {f"d{i}" for i in range(10, 30)}
    res = runner.invoke(app, ["delete", str(tmp_path / "idx"), "-q"])
    assert res.exit_code == 1 and "nothing to delete" in res.output


def test_grown_bm25_uses_global_statistics(tmp_path):
    rows = _corpus("cranfield")
    _index([BEIR / "cranfield", "-m", "bm25", "-o", tmp_path / "whole"])
    _index([_write(tmp_path / "a.jsonl", rows[:1200]), "-m", "bm25", "-o", tmp_path / "grown"])
    with IndexWriter(tmp_path / "grown", merge=False) as w:
        w.add(rows[1200:])
    queries = ["boundary layer transition", "supersonic flow over wings", "heat transfer in hypersonic flow"]
    w_ids, w_s = Retriever(tmp_path / "whole").batch_search_ids(queries, 10)
    g_ids, g_s = Retriever(tmp_path / "grown").batch_search_ids(queries, 10)
    # IDF is global exactly; only the first segment's length normalisation keeps its own average length
    np.testing.assert_allclose(g_s, w_s, rtol=0.02)
    assert (g_ids == w_ids).mean() >= 0.8
    with IndexWriter(tmp_path / "grown", merge=False) as w:
        w.merge(1)
    g_ids, g_s = Retriever(tmp_path / "grown").batch_search_ids(queries, 10)
    np.testing.assert_allclose(g_s, w_s, rtol=1e-5)


def test_reader_snapshot_keeps_its_files_until_refresh(grown):
    r = Retriever(grown)
    before = _top(r)
    with IndexWriter(grown, merge=False) as w:
        w.merge(1)
    old_segments = {"seg-00000001", "seg-00000002"}
    # another writer's garbage collection skips the commit this reader holds
    with IndexWriter(grown, merge=False):
        pass
    import os
    assert old_segments <= set(os.listdir(grown))
    np.testing.assert_allclose(_top(r)[1], before[1])
    assert r.refresh() and r.generation == commits.generations(grown)[-1]
    import gc
    gc.collect()
    with IndexWriter(grown, merge=False):
        pass
    assert not old_segments & set(os.listdir(grown))
    np.testing.assert_allclose(_top(r)[1], before[1], rtol=1e-5)


def test_one_writer_at_a_time(grown):
    with in_another_thread(lambda: IndexWriter(grown)):
        with pytest.raises(IndexError_, match="another thread"):
            IndexWriter(grown).open()
    res = runner.invoke(app, ["delete", "/nonexistent/index", "x"])
    assert res.exit_code == 1 and "index not found" in res.output


def test_damaged_commit_and_live_file_are_refused(grown):
    with IndexWriter(grown, merge=False) as w:
        w.delete([Retriever(grown).search(QUERIES[1], 1)[0].doc_id])
    gen = commits.generations(grown)[-1]
    path = grown / f"commit-{gen:08d}.json"
    commit = json.loads(path.read_text())
    live = grown / commit["segments"][0]["live"] if commit["segments"][0]["live"] else \
        grown / commit["segments"][1]["live"]
    data = bytearray(live.read_bytes())
    data[-1] ^= 1
    live.write_bytes(bytes(data))
    with pytest.raises(IndexError_, match="live-"):
        Retriever(grown)
    data[-1] ^= 1
    live.write_bytes(bytes(data))
    Retriever(grown)
    commit["segments"][0]["docs"] += 1
    path.write_text(json.dumps(commit))
    with pytest.raises(IndexError_, match="checksum mismatch"):
        Retriever(grown)
    res = runner.invoke(app, ["check", str(grown)])
    assert res.exit_code == 1 and "commit" in res.output


def test_upgrade_keeps_results_and_old_format_loads(adi, tmp_path):
    out = tmp_path / "idx"
    shutil.copytree(adi["whole"], out)
    before = _top(Retriever(out))
    res = runner.invoke(app, ["upgrade", str(out)])
    assert res.exit_code == 0 and "segmented" in res.output
    after = _top(Retriever(out))
    np.testing.assert_array_equal(after[0], before[0])
    assert Retriever(adi["whole"]).index.index_type == "exact"  # the one-folder format still loads as it is
    res = runner.invoke(app, ["check", str(out)])
    assert res.exit_code == 0, res.output


def test_auto_index_type_follows_size(tmp_path):
    from lsr.retrieval import build_index
    from lsr.retrieval.segment import segment_type
    idx = build_index(str(BEIR / "adi"), "bm25", tmp_path / "a", progress=False)
    assert idx.index_type == "exact"
    idx = build_index(str(BEIR / "adi"), "bm25", tmp_path / "b", params={"knn": 2}, progress=False)
    assert idx.index_type == "seismic"  # seismic build parameters ask for seismic
    assert segment_type({"index_type": "auto"}, 49_999) == "exact"
    assert segment_type({"index_type": "auto"}, 50_000) == "seismic"
    assert segment_type({"index_type": "seismic"}, 999) == "exact"  # a fresh small segment: searched exactly
    assert segment_type({"index_type": "exact"}, 10**7) == "exact"


def test_tiered_merge_policy():
    seg = lambda docs, deleted=0: {"docs": docs, "deleted": deleted}  # noqa: E731
    policy = {"segments_per_tier": 10, "floor_docs": 1000, "deletes_pct": 50}
    assert plan_merge([seg(50_000)] + [seg(100)] * 9, policy) == []
    assert plan_merge([seg(50_000)] + [seg(100)] * 10, policy) == list(range(1, 11))
    assert plan_merge([seg(50_000), seg(100, 60)], policy) == [1]  # mostly deleted: rewritten
    assert plan_merge([seg(100)] * 12, {"policy": "none"}) == []


def test_writer_refuses_bad_input(grown):
    with IndexWriter(grown, merge=False) as w:
        with pytest.raises(DataError, match="without an id"):
            w.add([{"text": "no id"}])
        with pytest.raises(DataError, match="list of ids"):
            w.delete("d1")
    with pytest.raises(Exception, match="merge policy"):
        IndexWriter(grown, merge={"tiers": 3})


KILL = """
import os, sys
import lsr.index.commit as commits
from lsr import IndexWriter
point = sys.argv[2]
if point == "before-commit":      # the new segment is in place, the commit point not yet written
    commits.write = lambda *a, **k: os._exit(9)
elif point == "mid-segment":      # the new segment's files half written in place (its manifest not yet)
    import lsr.index.storage as storage
    storage.write_manifest = lambda *a, **k: os._exit(9)
elif point == "mid-upgrade":      # the one-folder index half linked into its first segment
    real = commits.link_tree
    def link_tree(src, dst):
        real(src, dst)
        os._exit(9)
    commits.link_tree = link_tree
with IndexWriter(sys.argv[1], merge=False) as w:
    w.add([{"doc_id": "new-1", "text": "a document about wind tunnels"}])
"""


@pytest.mark.parametrize("point", ["before-commit", "mid-segment", "mid-upgrade"])
def test_writer_killed_at_the_worst_moments(tmp_path, point):
    import os
    import subprocess
    import sys
    rows = [{"_id": f"d{i}", "text": f"wind tunnel measurements of flow number {i}"} for i in range(20)]
    _index([_write(tmp_path / "a.jsonl", rows), "-m", "bm25", "-o", tmp_path / "idx"])
    if point != "mid-upgrade":
        with IndexWriter(tmp_path / "idx"):
            pass  # segmented already: the kill lands in or after the segment's writing
    before = Retriever(tmp_path / "idx").batch_search_ids(["wind tunnel"], 5)
    res = subprocess.run([sys.executable, "-c", KILL, str(tmp_path / "idx"), point], capture_output=True, text=True)
    assert res.returncode == 9, res.stderr
    r = Retriever(tmp_path / "idx")  # the old state, whole
    assert len(r) == 20 and "new-1" not in set(r.batch_search_ids(["wind tunnels"], 30)[0][0])
    np.testing.assert_array_equal(r.batch_search_ids(["wind tunnel"], 5)[0], before[0])
    with IndexWriter(tmp_path / "idx"):
        pass  # the next writer cleans up
    names = set(os.listdir(tmp_path / "idx"))
    assert names == commits.referenced(commits.newest(tmp_path / "idx"))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with IndexWriter(tmp_path / "idx") as w:  # the number the dead writer used is free again
        w.add([{"doc_id": "new-1", "text": "a document about wind tunnels"}])
    assert Retriever(tmp_path / "idx").search("wind tunnels", 1)[0].doc_id == "new-1"


def test_writer_verifies_what_it_reads_search_what_it_searches(grown):
    """An add reads segments' doc ids (checked, quick) but not their search arrays: a damaged array is not
    the add's to find; the next search (and `lsr check`) names it."""
    seg = grown / commits.newest(grown)["segments"][0]["name"]
    ids = seg / "doc_ids.parquet"
    good = ids.read_bytes()
    ids.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(IndexError_, match="doc_ids.parquet"):
        with IndexWriter(grown, merge=False) as w:
            w.add([{"doc_id": "x1", "text": "indexing of documents"}])
    ids.write_bytes(good)
    array = next(p for p in sorted(seg.glob("*.npy")))
    data = bytearray(array.read_bytes())
    data[-1] ^= 1
    array.write_bytes(bytes(data))
    with IndexWriter(grown, merge=False) as w:
        w.add([{"doc_id": "x1", "text": "indexing of documents"}])
    with pytest.raises(IndexError_, match=array.name):
        Retriever(grown)
    res = runner.invoke(app, ["check", str(grown)])
    assert res.exit_code == 1 and array.name in res.output


def test_settings_checked_kept_and_completed(tmp_path):
    from lsr.errors import ParameterError
    rows = [{"_id": f"d{i}", "text": f"rotor blade noise study {i}", "metadata": {"year": 2000 + i}}
            for i in range(10)]
    _index([_write(tmp_path / "a.jsonl", rows), "-m", "bm25", "-o", tmp_path / "idx"])
    idx = tmp_path / "idx"
    with IndexWriter(idx, merge={"segments_per_tier": 4}) as w:
        with pytest.raises(ParameterError, match="merge policy"):
            w.set_settings(merge="tiered")
        with pytest.raises(ParameterError, match="query_cut"):
            w.set_settings(search={"query_cut": 0})
        with pytest.raises(ParameterError, match="exact_below"):
            IndexWriter(idx, exact_below="10")
        # top-level fields are metadata, as in a JSONL corpus; no metadata at all in the other new document
        w.add([{"_id": "n1", "text": "rotor blade noise", "year": 2030}, {"_id": "n2", "text": "rotor noise"}])
    with IndexWriter(idx, merge={"deletes_pct": 30}, index_type="seismic") as w:
        pass
    settings = commits.newest(idx)["settings"]
    assert settings["merge"]["segments_per_tier"] == 4 and settings["merge"]["deletes_pct"] == 30
    assert (settings["index_type"], settings["exact_below"]) == ("seismic", 1000)  # forced: small ones exact
    r = Retriever(idx)
    assert r.get(["n1"])[0]["metadata"] == {"year": 2030}
    # a filter on a field the second segment's n2 lacks: it is null there, as in search
    with IndexWriter(idx, merge=False) as w:
        w.delete(where={"year": {"$gte": 2005}})
    r.refresh()
    assert sorted(h.doc_id for h in r.search("rotor blade noise", 20)) == ["d0", "d1", "d2", "d3", "d4", "n2"]
    # deleting everything: the index stays usable, merges have nothing to do, the next add works
    res = runner.invoke(app, ["delete", str(idx), "d0", "d1", "d2", "d3", "d4", "n2", "-q"])
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, ["merge", str(idx)]).exit_code == 0
    with IndexWriter(idx) as w:
        w.add([{"_id": "z", "text": "rotor"}])
    r.refresh()
    assert [h.doc_id for h in r.search("rotor", 5)] == ["z"] and len(r) == 1


def test_opening_while_the_first_write_swaps_the_folder(tmp_path, monkeypatch):
    import lsr.retrieval.searcher as searcher_module
    rows = [{"_id": f"d{i}", "title": f"t{i}", "text": f"propeller wake study {i}"} for i in range(8)]
    _index([_write(tmp_path / "a.jsonl", rows), "-m", "bm25", "-o", tmp_path / "idx"])
    real, calls = searcher_module.DocStore.load, []

    def swapped_meanwhile(folder):
        if not calls:  # the index was opened from the one-folder layout; now a writer upgrades it
            with IndexWriter(tmp_path / "idx"):
                pass
        calls.append(folder)
        return real(folder)
    monkeypatch.setattr(searcher_module.DocStore, "load", staticmethod(swapped_meanwhile))
    r = Retriever(tmp_path / "idx")
    assert r.generation == 1 and r.docstore is not None  # reopened as what is there now, not half of each
    hits = r.search("propeller wake", 3)
    assert hits and all(h.text.startswith("propeller") for h in hits)


def test_segmented_bad_input_messages(tmp_path):
    from lsr.errors import QueryError
    from lsr.index import load_index
    rows = [{"_id": f"d{i}", "text": f"nozzle exhaust plume {i}"} for i in range(6)]
    _index([_write(tmp_path / "a.jsonl", rows[:4]), "-m", "bm25", "-o", tmp_path / "idx"])
    idx = tmp_path / "idx"
    res = runner.invoke(app, ["add", str(idx), str(_write(tmp_path / "b.jsonl", rows[4:])), "--batch-size", "8", "-q"])
    assert res.exit_code == 1 and "batch_size applies to a neural model; this index's model is BM25" in res.output
    res = runner.invoke(app, ["add", str(idx), str(tmp_path / "b.jsonl"), "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["delete", str(idx), "--ids-file", str(tmp_path / "missing.txt")])
    assert res.exit_code == 1 and "--ids-file" in res.output and "missing.txt" in res.output
    res = runner.invoke(app, ["tune", str(idx), "--queries", str(tmp_path / "a.jsonl")])
    assert res.exit_code == 1 and "is a segmented index; lsr tune works on a one-folder seismic index" in res.output
    index = load_index(idx)  # two segments of a BM25 list: vectors alone cannot carry the global statistics
    with pytest.raises(QueryError, match="segmented BM25 index scores with global statistics"):
        index.search_numbers(index.forward_vectors()[:1], 3)
    gen = commits.generations(idx)[-1]
    (idx / f"commit-{gen:08d}.json").rename(idx / f"commit-{gen + 5:08d}.json")
    with pytest.raises(IndexError_, match="not the one its name says"):
        Retriever(idx)
