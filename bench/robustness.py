"""The robustness matrix: lsr tried as a hostile user and a hostile disk would try it.

Families of probes, each case classified by what the user would see:

  control     the undamaged indexes on every entry point: all must serve them
              (otherwise an unrelated failure would pass for a detection)
  corruption  one file of an index rewritten in place, same size, bytes
              changed at a random offset; every entry point must refuse it
              with a message naming the damaged index (``detected``), never
              serve it (``silent``), crash, or fail for another reason
              (``wrong``)
  manifest    edits of manifest.json (dropped entries, changed counts or
              parameters, removed checksum, bad JSON): refused everywhere
  bad input   CLI invocations with bad arguments: an ``error:`` line and
              exit 1 (or typer's usage error, exit 2, for a missing
              argument), never a traceback or a signal
  kill        an `lsr index --overwrite` killed (os._exit) at the n-th call
              of each step that writes or publishes (file writes, fsync,
              renames, deletes; also with the two-rename fallback swap): the
              path must still hold a loadable index (the old or the new one)
              or be recovered on the next open, and the next writer must
              succeed and leave no temporary folders
  fault       the same steps raising OSError(ENOSPC) instead: an ``error:``
              line and exit 1 with the old index whole (or the new one in
              place when the failure came after publishing)
  writers     two `lsr index` processes on one output at once: one wins, the
              other gets a clean error; the index loads; plus --overwrite on
              folders that are not an lsr index, and outputs that equal,
              contain or lie inside the dataset (nothing of the user's deleted)

Corruptions and manifest edits run in a worker process (one case after the
other, each on a fresh copy of a pristine index); a worker killed by a signal
marks its current case ``crash`` and a new worker resumes after it. The CLI
entry points run in-process through typer's runner (the same code as the
``lsr`` command, without a Python start per case); bad inputs, kills, faults
and writers run real ``lsr`` processes.

    python bench/robustness.py                     # the full matrix (~211 corruptions)
    python bench/robustness.py --sample            # the CI-sized sample (tests/test_robustness.py)

Writes bench/out/robustness.json and prints the counts table (markdown).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# A sibling module: python puts bench/ on the path when this file runs as a script.
from robustness_probes import QUERY, bad_input_cases, lsr_cli, run_bad_input, run_kills, run_writers

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LSR_SHARED_DATA") or ROOT.parent / "shared" / "data").resolve()

ENTRY_POINTS = ("load_index", "Searcher", "Retriever", "cli search", "cli eval", "cli check", "cli ask")


# ----------------------------------------------------------------- fixtures
def build_fixtures(work: Path, dataset: Path) -> dict:
    """A hybrid index (splade-tiny seismic + MiniLM dense + BM25 lexical, doc store, vectors) and a BM25 exact
    index of one small collection: every kind of file an index holds."""
    out = {"hybrid": work / "pristine-hybrid", "bm25": work / "pristine-bm25"}
    for args in ((dataset, "--model", "splade-tiny", "--dense", "minilm", "-o", out["hybrid"], "-q"),
                 (dataset, "--model", "bm25", "--index-type", "exact", "-o", out["bm25"], "-q")):
        rc, _, err = lsr_cli("index", *args)
        if rc != 0:
            raise SystemExit(f"fixture build failed: {err}")
    return out


def index_files(index: Path) -> list[str]:
    return sorted(p.relative_to(index).as_posix() for p in index.rglob("*") if p.is_file())


# -------------------------------------------------------------- the cases
def corruption_cases(indexes: dict, n: int, rng: random.Random) -> list[dict]:
    """``n`` same-size rewrites spread over every file of both indexes (each file at least once)."""
    files = [(name, f) for name, index in indexes.items() for f in index_files(index)]
    cases = []
    for i in range(max(n, len(files))):
        name, f = files[i % len(files)] if i < len(files) else rng.choice(files)
        size = (indexes[name] / f).stat().st_size
        if size == 0:
            continue
        width = rng.choice([1, 1, 4, 64])
        offset = rng.randrange(size)
        cases.append({"family": "corruption", "index": name, "file": f, "offset": offset,
                      "width": min(width, size - offset), "seed": rng.randrange(1 << 30)})
    return cases[:max(n, len(files))]


MANIFEST_EDITS = [
    "drop a file entry", "drop docs.parquet entry", "counts.docs + 1", "counts missing", "counts.postings * 2",
    "index_type swapped", "format_version 99", "format removed", "params.query_cut = -3",
    "params.heap_factor = 'x'", "params.knn = 1e9", "a file's bytes + 1", "a file's sha256 changed",
    "a file's xxh3 changed", "checksum removed", "checksum changed", "vocab size + 1", "encoder name changed",
    "truncated JSON", "not JSON", "empty file", "JSON list", "index_id changed", "files empty",
]


def manifest_cases(indexes: dict) -> list[dict]:
    return [{"family": "manifest", "index": name, "edit": edit} for name in indexes for edit in MANIFEST_EDITS]


def apply_manifest_edit(index: Path, edit: str) -> None:
    path = index / "manifest.json"
    if edit in ("truncated JSON", "not JSON", "empty file"):
        text = path.read_text()
        path.write_text({"truncated JSON": text[: len(text) // 2], "not JSON": "<html>", "empty file": ""}[edit])
        return
    m = json.loads(path.read_text())
    files = m.get("files", {})
    first = sorted(files)[0]
    if edit == "JSON list":
        m = [m]
    elif edit == "drop a file entry":
        files.pop(sorted(files)[len(files) // 2])
    elif edit == "drop docs.parquet entry":
        files.pop("docs.parquet", None)
    elif edit == "counts.docs + 1":
        m["counts"]["docs"] += 1
    elif edit == "counts missing":
        m.pop("counts")
    elif edit == "counts.postings * 2":
        m["counts"]["postings"] *= 2
    elif edit == "index_type swapped":
        m["index_type"] = "exact" if m["index_type"] == "seismic" else "seismic"
    elif edit == "format_version 99":
        m["format_version"] = 99
    elif edit == "format removed":
        m.pop("format")
    elif edit.startswith("params."):
        key, value = edit[len("params."):].split(" = ")
        m.setdefault("params", {})[key] = json.loads(value.replace("'", '"'))
    elif edit == "a file's bytes + 1":
        files[first]["bytes"] += 1
    elif edit == "a file's sha256 changed":
        files[first]["sha256"] = "0" * 64
    elif edit == "a file's xxh3 changed":
        for info in files.values():
            for key in info:
                if key.startswith("xxh"):
                    info[key] = "0" * len(str(info[key]))
    elif edit == "checksum removed":
        m.pop("checksum", None)
    elif edit == "checksum changed":
        m["checksum"] = "0" * 32
    elif edit == "vocab size + 1":
        m["vocab"]["size"] += 1
    elif edit == "encoder name changed":
        m.setdefault("encoder", {})["name"] = "minilm"
    elif edit == "index_id changed":
        m["index_id"] = "f" * 32
    elif edit == "files empty":
        m["files"] = {}
    path.write_text(json.dumps(m, indent=2))


def corrupt(index: Path, case: dict) -> None:
    rng = random.Random(case["seed"])
    with open(index / case["file"], "r+b") as f:
        f.seek(case["offset"])
        old = f.read(case["width"])
        new = bytes(b ^ rng.randrange(1, 256) for b in old)  # every byte changes, size kept
        f.seek(case["offset"])
        f.write(new)


# ------------------------------------------------------------ entry points
def _cli(args: list) -> tuple[int, str, BaseException | None]:
    from typer.testing import CliRunner

    from lsr.cli.app import app
    res = CliRunner().invoke(app, [str(a) for a in args])
    out = res.output + (getattr(res, "stderr", "") if not res.output.endswith(getattr(res, "stderr", "")) else "")
    exc = res.exception if res.exception is not None and not isinstance(res.exception, SystemExit) else None
    return res.exit_code, out, exc


def run_entry(entry: str, index: Path, dataset: Path) -> tuple[str, str]:
    """(outcome, message) of one entry point on a damaged index: detected | silent | crash."""
    from lsr.errors import LsrError
    try:
        if entry == "load_index":
            from lsr.index import load_index
            load_index(index)
        elif entry == "Searcher":
            from lsr.retrieval import Searcher
            Searcher(index).search(QUERY, k=10)
        elif entry == "Retriever":
            from lsr import Retriever
            Retriever.load(index).search(QUERY, k=10)
        else:
            args = {"cli search": ["search", index, QUERY, "--json", "-q"],
                    "cli eval": ["eval", index, dataset, "-q"],
                    "cli check": ["check", index],
                    "cli ask": ["ask", index, QUERY, "--generator", "no-such-generator-robustness", "-q"]}[entry]
            rc, out, exc = _cli(args)
            if exc is not None:
                return "crash", f"{type(exc).__name__}: {exc}"[:300]
            if rc == 1 and "error:" in out and not (entry == "cli ask" and "no-such-generator" in out):
                return "detected", out.strip().splitlines()[-1][:300]
            return ("silent" if rc in (0, 1) else "crash"), f"rc {rc}: {out.strip()[-300:]}"
    except LsrError as e:
        return "detected", str(e)[:300]
    except Exception as e:  # noqa: BLE001 - any other exception is a crash the user would see as a traceback
        return "crash", f"{type(e).__name__}: {e}"[:300]
    return "silent", "served"


def run_quick(index: Path) -> tuple[str, str]:
    """verify="quick" (no whole-file checksum): may serve a damaged index, must never crash."""
    import numpy as np

    from lsr.errors import LsrError
    from lsr.index import load_index
    try:
        ix = load_index(index, verify="quick")
        rng = np.random.default_rng(0)
        from scipy.sparse import csr_matrix
        dims = rng.choice(ix.vocab.size, size=(4, 8))
        q = csr_matrix((rng.random(32, dtype=np.float32), dims.ravel(), np.arange(0, 33, 8)), shape=(4, ix.vocab.size))
        ix.batch_search(q, k=10)
    except LsrError as e:
        return "detected", str(e)[:300]
    except Exception as e:  # noqa: BLE001
        return "crash", f"{type(e).__name__}: {e}"[:300]
    return "served", ""


def worker(cases_file: Path, start: int, pristine: dict, dataset: Path, scratch: Path) -> None:
    """Run cases from ``start``, one JSON line per (case, entry point) on stdout."""
    cases = json.loads(cases_file.read_text())
    for i in range(start, len(cases)):
        case = cases[i]
        print(json.dumps({"begin": i}), flush=True)
        for entry in (*ENTRY_POINTS, "quick"):
            copy = scratch / f"case-{i}"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(pristine[case["index"]], copy)
            if case["family"] == "corruption":
                corrupt(copy, case)
            elif case["family"] == "manifest":
                apply_manifest_edit(copy, case["edit"])
            outcome, message = run_quick(copy) if entry == "quick" else run_entry(entry, copy, dataset)
            if case["family"] == "control":  # the undamaged index: every entry point must serve it
                outcome = "served" if outcome in ("silent", "served") else "control failed"
            elif outcome == "detected" and copy.name not in message:
                outcome = "wrong"  # refused, but not for the damage: an unrelated failure hides the result
            print(json.dumps({"case": i, "entry": entry, "outcome": outcome, "message": message}), flush=True)
            shutil.rmtree(copy, ignore_errors=True)


def run_cases(cases: list[dict], pristine: dict, dataset: Path, work: Path) -> list[dict]:
    """Run the cases in worker processes; a worker that dies marks its current case a crash."""
    cases_file = work / "cases.json"
    cases_file.write_text(json.dumps(cases))
    results, start = [], 0
    from tqdm.auto import tqdm
    bar = tqdm(total=len(cases), desc="corruptions + manifest edits", unit="case")
    while start < len(cases):
        cmd = [sys.executable, __file__, "--worker", cases_file, "--start", start, "--dataset", dataset,
               "--scratch", work, "--pristine", json.dumps({k: str(v) for k, v in pristine.items()})]
        proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        current, seen = None, set()
        for line in proc.stdout:
            if not line.startswith("{"):
                continue
            rec = json.loads(line)
            if "begin" in rec:
                if current is not None:
                    bar.update(1)
                current, seen = rec["begin"], set()
                continue
            seen.add(rec["entry"])
            results.append({**cases[rec["case"]], **rec})
        err = proc.stderr.read()
        rc = proc.wait()
        if current is None:
            raise SystemExit(f"worker failed to start: {err[-2000:]}")
        bar.update(1)
        if rc != 0:  # died inside case `current`: every entry point not reported crashed it
            for entry in (*ENTRY_POINTS, "quick"):
                if entry not in seen:
                    results.append({**cases[current], "case": current, "entry": entry, "outcome": "crash",
                                    "message": f"worker died (rc {rc}): {err.strip()[-300:]}"})
                    break  # the entry after it never ran: counted once
        start = current + 1
    bar.close()
    return results


# --------------------------------------------------------------------- main
BAD = {"silent", "crash", "lost", "wrong", "next writer failed", "leftover", "control failed"}


def table(results: list[dict]) -> str:
    fams = ["control", "corruption", "manifest", "bad input", "kill", "fault", "writers"]
    outcomes = sorted({r["outcome"] for r in results})
    rows = ["| family | cases | " + " | ".join(outcomes) + " |", "|---|---:|" + "---:|" * len(outcomes)]
    for fam in fams:
        rs = [r for r in results if r["family"] == fam and r.get("entry") != "quick"]
        if not rs:
            continue
        n = len({r.get("case", id(r)) for r in rs}) if fam in ("control", "corruption", "manifest") else len(rs)
        counts = {o: sum(r["outcome"] == o for r in rs) for o in outcomes}
        rows.append(f"| {fam} | {n} | " + " | ".join(str(counts[o]) for o in outcomes) + " |")
    quick = [r for r in results if r.get("entry") == "quick"]
    if quick:
        counts = {o: sum(r["outcome"] == o for r in quick) for o in outcomes}
        rows.append(f"| corruption + manifest, verify=quick | {len(quick)} | "
                    + " | ".join(str(counts[o]) for o in outcomes) + " |")
    return "\n".join(rows)


def compact(results: list[dict]) -> list[dict]:
    """One record per case (entry points' outcomes and first message under "entries"), for the file."""
    out, by_case = [], {}
    for r in results:
        if "entry" not in r:
            out.append(r)
            continue
        case = by_case.get(r["case"])
        if case is None:
            case = by_case[r["case"]] = {k: v for k, v in r.items() if k not in ("entry", "outcome", "message")}
            case["entries"], case["message"] = {}, r["message"][:200]
            out.append(case)
        case["entries"][r["entry"]] = r["outcome"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, default=SHARED / "beir" / "adi")
    ap.add_argument("--other", type=Path, default=SHARED / "beir" / "cranfield", help="a different corpus's qrels")
    ap.add_argument("--corruptions", type=int, default=211)
    ap.add_argument("--kill-points", type=int, default=8, help="kill points per target")
    ap.add_argument("--writer-trials", type=int, default=3)
    ap.add_argument("--sample", action="store_true", help="CI size: one corruption per file of the BM25 index, "
                    "a few manifest edits, bad inputs, kills and writers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "robustness.json")
    ap.add_argument("--worker", type=Path)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--scratch", type=Path)
    ap.add_argument("--pristine")
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.start, {k: Path(v) for k, v in json.loads(a.pristine).items()}, a.dataset, a.scratch)
        return
    rng = random.Random(a.seed)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="lsr-robustness-") as tmp:
        work = Path(tmp)
        pristine = build_fixtures(work, a.dataset)
        if a.sample:
            cases = corruption_cases({"bm25": pristine["bm25"]}, 0, rng)
            cases += [c for c in manifest_cases({"hybrid": pristine["hybrid"]})
                      if c["edit"] in ("drop docs.parquet entry", "counts missing", "params.query_cut = -3",
                                       "truncated JSON", "checksum changed")]
        else:
            cases = corruption_cases(pristine, a.corruptions, rng) + manifest_cases(pristine)
        control = [{"family": "control", "index": name} for name in pristine]
        results = run_cases(control + cases, pristine, a.dataset, work)
        bad = bad_input_cases(pristine, a.dataset, a.other, work)
        if a.sample:
            bad = [c for c in bad if c["name"] in ("zero hits, table", "zero hits, json", "k 10^12", "eval nDCG@0",
                                                   "where nested 500", "eval wrong corpus", "index model typo")]
        from tqdm.auto import tqdm
        results += [run_bad_input(c) for c in tqdm(bad, desc="bad inputs", unit="case")]
        results += run_kills(pristine["bm25"], a.dataset, work, 1 if a.sample else a.kill_points,
                             ["os.replace", "os.fsync", "fallback:os.replace"] if a.sample else None)
        results += run_kills(pristine["bm25"], a.dataset, work, 1 if a.sample else a.kill_points,
                             ["numpy.save", "fallback:os.replace"] if a.sample else None, action="fault")
        results += run_writers(pristine["bm25"], a.dataset, work, 1 if a.sample else a.writer_trials)
    failures = [r for r in results if r["outcome"] in BAD and not (r.get("entry") == "quick" and r["outcome"] == "silent")]
    summary = {"date": time.strftime("%Y-%m-%d"), "seconds": round(time.time() - started), "sample": a.sample,
               "dataset": str(a.dataset), "failures": len(failures), "table": table(results)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({**summary, "results": compact(results)}, indent=0))
    print(summary["table"])
    print(f"\n{len(results)} results, {len(failures)} failures, {summary['seconds']} s; details in {a.out}")
    for r in failures[:40]:
        print("FAIL", json.dumps({k: v for k, v in r.items() if k not in ("seed",)})[:400])
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
