"""Living indexes under concurrency (issue acceptance): 8 reader threads search while a writer in another
process adds, deletes and merges; no error, and every answer is the answer of some commit.

The writer's steps are a fixed sequence, so replaying it on a copy of the same starting index yields the
same commits with the same generation numbers: the replay, done first in this process with a search after
each commit, gives the expected top 10 of every generation; the concurrent run is then checked against it.
"""
import gzip
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BEIR, needs_shared
from lsr import IndexWriter, Retriever
from lsr.index.info import index_info

pytestmark = needs_shared
QUERIES = ["flow over a flat plate", "heat transfer in hypersonic flow", "boundary layer transition",
           "buckling of cylindrical shells", "supersonic wing drag", "shock wave interaction",
           "laminar separation", "vibration of panels"]
K = 10
N_FIRST, BATCH = 800, 100  # the starting index, and each added batch (cranfield has 1,400 documents)


def write_sequence(index_dir, plan_path, pause=0.0, on_commit=None) -> list[int]:
    """The writer's fixed steps (adds, deletes, an update, merges), one commit each; the generations made.
    Run here for the expected answers (``on_commit`` searches after each commit) and as a separate process
    (``pause`` between commits, so that readers see several)."""
    plan = json.loads(Path(plan_path).read_text())
    rows = plan["rows"]
    gens = []
    with IndexWriter(index_dir, merge=False) as w:  # opening it upgrades the one-folder index: generation 1

        def done():
            gens.append(w.current["generation"])
            if on_commit:
                on_commit(gens[-1])
            time.sleep(pause)

        done()
        for step in plan["steps"]:
            if step[0] == "add":
                w.add(rows[step[1]:step[2]])
                w.commit()
            elif step[0] == "update":  # documents already there, with a changed text
                w.add([{**r, "text": r["text"] + " flutter flutter"} for r in rows[step[1]:step[2]]])
                w.commit()
            elif step[0] == "delete":
                w.delete(step[1])
                w.commit()
            else:
                w.merge(max_segments=1)
            done()
    return gens


def consistent(ids, scores, exp_ids, exp_scores) -> bool:
    """Same scores, and the same ids except where the expected scores tie (tied documents may swap)."""
    exp_scores, scores = np.asarray(exp_scores, np.float64), np.asarray(scores, np.float64)
    if not np.allclose(scores, exp_scores, rtol=1e-5, atol=1e-5, equal_nan=True):
        return False
    for row in range(len(exp_ids)):
        for j in np.flatnonzero(np.asarray(ids[row]) != np.asarray(exp_ids[row])):
            tied = np.abs(exp_scores[row] - exp_scores[row][j]) <= 1e-5
            if tied.sum() < 2:
                return False
    return True


def between(lo, g, hi) -> bool:
    """Whether generation ``g`` lies from ``lo`` to ``hi`` (None: the one-folder index, before generation 1)."""
    order = lambda x: 0 if x is None else x
    return order(lo) <= order(g) <= order(hi)


def _top(r):
    ids, scores = r.batch_search_ids(QUERIES, K)
    return np.asarray(ids).tolist(), np.asarray(scores, np.float64).tolist()


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """cranfield's first 800 documents as a one-folder BM25 index (exact), and the writer's plan."""
    from lsr.retrieval import build_index
    tmp = tmp_path_factory.mktemp("concurrency")
    rows = [json.loads(line) for line in gzip.open(BEIR / "cranfield" / "corpus.jsonl.gz", "rt")]
    with open(tmp / "first.jsonl", "w") as f:
        for r in rows[:N_FIRST]:
            f.write(json.dumps(r) + "\n")
    build_index(str(tmp / "first.jsonl"), "bm25", tmp / "index", index_type="exact", progress=False)
    ids, _ = _top(Retriever(tmp / "index"))
    # delete documents the queries find, so that deletions change answers
    del1 = sorted({row[0] for row in ids} | {row[1] for row in ids})
    del2 = sorted({row[2] for row in ids} - set(del1))
    docs = [{"doc_id": r["_id"], "title": r["title"], "text": r["text"]} for r in rows]
    steps = [["add", 800, 900], ["add", 900, 1000], ["delete", del1], ["add", 1000, 1100], ["merge"],
             ["add", 1100, 1200], ["update", 0, 50], ["delete", del2], ["add", 1200, 1300], ["merge"]]
    (tmp / "plan.json").write_text(json.dumps({"rows": docs, "steps": steps}))
    return tmp


def test_readers_see_only_commits_while_another_process_writes(start, tmp_path):
    import shutil
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(start / "index", a)
    shutil.copytree(start / "index", b)
    plan = start / "plan.json"

    # the expected answers, by generation (None: the one-folder index before the first write)
    expected = {None: _top(Retriever(a))}

    def record(gen):
        assert index_info(a)["generation"] == gen
        expected[gen] = _top(Retriever(a))
    gens_a = write_sequence(a, plan, on_commit=record)
    assert gens_a == list(range(1, len(gens_a) + 1))
    assert consistent(*expected[1], *expected[None])  # the upgrade changes no answer
    steps = json.loads(plan.read_text())["steps"]
    for g, step in zip(gens_a[1:], steps):  # the check tells commits apart: each add, update or delete changes answers
        assert step[0] == "merge" or not consistent(*expected[g], *expected[g - 1]), step[:1]

    # 8 readers on copy b: 4 with their own Retriever (refreshing before each search), 4 sharing one
    shared = Retriever(b)
    _top(shared)  # the first query loads the encoder (a one-folder index's loads only before the upgrade)
    own = [Retriever(b) for _ in range(4)]
    for r in own:
        _top(r)
    seen: list[list] = [[] for _ in range(8)]
    errors: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def read(t):
        try:
            r, mine = (own[t], True) if t < 4 else (shared, False)
            n = 0
            while True:
                last = not writing.is_set()  # after the writer ended: one more, on the final commit
                if mine or n % 3 == 0 or last:
                    r.refresh()  # shared: refreshed by every thread now and then, while others search
                g0 = r.generation
                ids, scores = _top(r)
                seen[t].append((g0, r.generation, ids, scores))
                n += 1
                if last:
                    return
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=read, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    tests = Path(__file__).resolve().parent
    code = (f"import sys; sys.path.insert(0, {str(tests)!r}); from test_living_concurrency import write_sequence; "
            f"import json; print(json.dumps(write_sequence({str(b)!r}, {str(plan)!r}, pause=0.3)))")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    finally:
        writing.clear()
        for t in threads:
            t.join(60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == gens_a  # the same commits, generation by generation
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)

    final = gens_a[-1]
    for t, results in enumerate(seen):
        for g0, g1, ids, scores in results:
            if t < 4:  # its own Retriever: no other thread moves it between the two reads
                assert g0 == g1
            # the shared one may move to a newer commit between them: the answer is one of that range's
            candidates = [g0] if g0 == g1 else [g for g in expected if between(g0, g, g1)]
            assert any(consistent(ids, scores, *expected[g]) for g in candidates), (t, g0, g1)
        assert results[-1][1] == final  # every reader ends on the last commit
    distinct = {g for results in seen for g0, g1, _, _ in results for g in (g0, g1)}
    assert len(distinct) >= 3, distinct
    assert all(len({r[0] for r in results}) >= 2 for results in seen)
    # the writer's garbage collection leaves b as a: the newest commit and its one segment
    shape = lambda info: [(s["name"], s["docs"], s["deleted"]) for s in info["segments"]]
    assert shape(index_info(b)) == shape(index_info(a))
