"""Crash safety of living indexes, CI-sized: bench/living_crash.py on beir/adi (82 documents), 20 SIGKILLs each
of `lsr add`, `lsr delete` and `lsr merge` at seeded random moments.

After every kill the index must load fully verified, hold all of the batch or
none of it (live ids, count, stored texts), answer ten queries as the
uninterrupted reference of that state does, and be left by the next writer
with nothing but its newest commit's files (and pass `lsr check`); when the
kill left the old state, the next writer redoing the batch reaches the
uninterrupted run's state exactly.
"""
import importlib.util

from conftest import BEIR, ROOT, needs_shared


def load_bench():
    spec = importlib.util.spec_from_file_location("living_crash", ROOT / "bench" / "living_crash.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_shared
def test_killed_writers_leave_the_old_or_the_new_index_and_no_garbage(tmp_path):
    bench = load_bench()
    report = bench.main(["--corpus", str(BEIR / "adi"), "--trials", "20", "--seed", "1",
                         "--out", str(tmp_path / "living_crash.json"), "--work", str(tmp_path / "work")])
    fails = [r for r in report["results"] if not r["ok"]]
    assert report["failures"] == 0 and not fails, fails[:5]
    assert set(report["ops"]) == {"add", "delete", "merge"}
    for op, c in report["ops"].items():
        assert c["trials"] >= 20 and c["old"] + c["new"] == c["trials"], (op, c)
        # the kills landed: some while the writer held its lock (writing), some leaving the old state
        assert c["killed_writing"] >= 1 and c["old"] >= 1, (op, c)
        assert c["old_vs_new"], (op, c)  # the two states differ where the checks look: they can tell them apart
    # every trial ended in exactly the old or the new state; partial batches never seen
    for r in report["results"]:
        batch = report["ops"][r["op"]]["batch"]
        assert r["state"] in ("old", "new") and r["applied"] == (batch if r["state"] == "new" else 0), r
    # killed writers did leave garbage, and the next writer removed it (no trial failed on leftovers)
    assert sum(c["garbage_cleaned"] for c in report["ops"].values()) >= 1
