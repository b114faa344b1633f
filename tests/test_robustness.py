"""The robustness matrix, CI-sized: bench/robustness.py --sample run as the user would run it.

The full matrix (211 corruptions of every file, every manifest edit on two
index kinds, 40 bad inputs, kills at every step of a build, concurrent
writers) is the benchmark; this sample covers each family: one same-size
corruption of every file of a BM25 index on all eight entry points, five
manifest edits, seven bad inputs, kills at the publishing rename, the last
fsync and the fallback swap's last rename, ENOSPC at the last array write and
the fallback's last rename, two concurrent writers and the five outputs that
must not be deleted; all after a control run in which every entry point
serves the undamaged indexes. It fails on any silent wrong result, crash,
lost data or refusal for the wrong reason.
"""
import json
import os
import subprocess
import sys

from conftest import ROOT, needs_shared


@needs_shared
def test_robustness_sample_has_no_silent_result_crash_or_loss(tmp_path):
    out = tmp_path / "robustness.json"
    env = {**os.environ, "TQDM_DISABLE": "1"}
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "robustness.py"), "--sample", "--out", str(out)],
                         capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)
    report = json.loads(out.read_text())
    bad = {"silent", "crash", "lost", "wrong", "leftover", "next writer failed", "control failed"}
    # corruptions, manifest edits and the control: one record per case, each entry point's outcome in "entries"
    fails = [r for r in report["results"]
             if ({o for e, o in r["entries"].items() if e != "quick"} if "entries" in r else {r["outcome"]}) & bad]
    assert res.returncode == 0 and report["failures"] == 0, (res.stdout[-3000:], res.stderr[-3000:], fails[:5])
    families = {r["family"] for r in report["results"]}
    assert families == {"control", "corruption", "manifest", "bad input", "kill", "fault", "writers"}
    corrupted = {r["file"] for r in report["results"] if r["family"] == "corruption"}
    assert {"manifest.json", "post_docs.npy", "docs.parquet", "vocab.json"} <= corrupted
    # every corruption refused on every entry point, by a message naming the damaged copy
    for r in report["results"]:
        if r["family"] in ("corruption", "manifest"):
            assert len(r["entries"]) == 8 and f"case-{r['case']}" in r["message"], r
            assert {o for e, o in r["entries"].items() if e != "quick"} == {"detected"}, r
    control = [r for r in report["results"] if r["family"] == "control"]
    assert len(control) == 2 and all(set(r["entries"].values()) == {"served"} for r in control), control
    kills = [r for r in report["results"] if r["family"] in ("kill", "fault")]
    assert len(kills) == 5 and all(r["state"] in ("old", "new") and not r["leftovers"] for r in kills), kills
    assert {r["target"] for r in kills} >= {"os.replace", "fallback:os.replace", "numpy.save"}
