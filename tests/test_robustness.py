"""The robustness matrix, CI-sized: bench/robustness.py --sample run as the user would run it.

The full matrix (211 corruptions of every file, every manifest edit on two
index kinds, 40 bad inputs, kills at every step of a build, concurrent
writers) is the benchmark; this sample covers each family: one same-size
corruption of every file of a BM25 index on all eight entry points, five
manifest edits, seven bad inputs, kills at the publishing rename and the
last fsync, two concurrent writers and the five outputs that must not be
deleted. It fails on any silent wrong result, crash or lost data.
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
    fails = [r for r in report["results"] if r["outcome"] in ("silent", "crash", "lost", "wrong", "leftover",
                                                              "next writer failed") and r.get("entry") != "quick"]
    assert res.returncode == 0 and report["failures"] == 0, (res.stdout[-3000:], res.stderr[-3000:], fails[:5])
    families = {r["family"] for r in report["results"]}
    assert families == {"corruption", "manifest", "bad input", "kill", "writers"}
    corrupted = {r["file"] for r in report["results"] if r["family"] == "corruption"}
    assert {"manifest.json", "post_docs.npy", "docs.parquet", "vocab.json"} <= corrupted
    # every corruption refused on every entry point, by a message naming the index
    for r in report["results"]:
        if r["family"] in ("corruption", "manifest") and r["entry"] != "quick":
            assert r["outcome"] == "detected" and f"case-{r['case']}" in r["message"], r
    kills = [r for r in report["results"] if r["family"] == "kill"]
    assert kills and all(r["state"] in ("old", "new") and not r["leftovers"] for r in kills), kills
