"""Crash safety of living indexes: `lsr add`, `lsr delete` and `lsr merge` killed by SIGKILL at random moments.

    python bench/living_crash.py                 # 20 trials per operation on beir/cranfield
    python bench/living_crash.py --corpus adi --trials 30 --seed 7

Builds a BM25 exact index of 70% of the corpus in three segments (40% by
`lsr index`, 15% and 15% added, a few documents deleted: merge has
tombstones to drop). Each operation (add: 15% new documents plus a few
replacements; delete: 10% of the live ids; merge to one segment) is run
once uninterrupted on a copy, which gives its duration and the reference
"new" state; the base is the "old" one. Then per trial, on a fresh copy:
start the CLI, sleep a seeded random delay, SIGKILL it. Half the trials
draw the delay in [0, 1.1 x the whole run] from the launch (the brief's
random moment, often still in Python's start-up), half in [0, 1.1 x the
writer's part] from the moment the writer's lock file appears (so most
kills land while files are being written). Then:

  (a) Retriever(dir) loads, every byte verified;
  (b) the commit seen is the old or the new generation, and the live ids,
      their count and the batch's stored texts are exactly that state's
      (all of the batch or none of it);
  (c) ten queries' top 10 equal that state's reference (scores within
      1e-4, ids compared as sets inside a tie);
  (d) an IndexWriter is opened and closed (the next writer): the folder
      then holds exactly what the newest commit references, its parent no
      lock or temporary, the index still answers (c); where the kill left
      the old state, a writer redoing the batch in-process reaches the
      uninterrupted run's state (same generation, ids, scores); `lsr check`
      passes.

Writes --out (counts per operation and every trial) and exits 1 on any failure.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
SHARED = Path(os.environ.get("LSR_SHARED_DATA") or ROOT.parent / "shared" / "data")
OPS = ("add", "delete", "merge")
ENV = {**os.environ, "TQDM_DISABLE": "1"}


def read_jsonl(path: Path, n: int | None = None) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return rows[:n]


def write_jsonl(path: Path, rows) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def lsr(*args) -> list[str]:
    return [sys.executable, "-m", "lsr", *map(str, args)]


# ------------------------------------------------------------------ set-up
def setup(work: Path, corpus: Path, docs: int | None) -> dict:
    """The base index (three segments, a few deletions) and each operation's batch files."""
    from lsr import IndexWriter
    rows = read_jsonl(corpus / "corpus.jsonl.gz", docs)
    n = len(rows)
    cut = [round(n * f) for f in (0.4, 0.55, 0.7, 0.85)]
    first, second, third, new = rows[:cut[0]], rows[cut[0]:cut[1]], rows[cut[1]:cut[2]], rows[cut[2]:cut[3]]
    base = work / "base" / "idx"
    base.parent.mkdir(parents=True)
    res = subprocess.run(lsr("index", write_jsonl(work / "first.jsonl", first), "-m", "bm25", "--index-type",
                             "exact", "-o", base, "-q"), capture_output=True, text=True, env=ENV)
    if res.returncode:
        raise SystemExit(f"lsr index failed: {res.stderr}")
    as_record = lambda r: {"doc_id": r["_id"], "title": r.get("title", ""), "text": r["text"],  # noqa: E731
                           "metadata": r.get("metadata") or {}}
    tombstones = [r["_id"] for r in first[::33]]  # merge drops these
    with IndexWriter(base, merge=False) as w:
        w.add(map(as_record, second))
    with IndexWriter(base, merge=False) as w:
        w.add(map(as_record, third))
        w.delete(tombstones)
    live = [r["_id"] for r in first + second + third if r["_id"] not in set(tombstones)]
    # add: the new documents, and a few live ones replaced by the text of documents not indexed
    spare = rows[cut[3]:] or rows[:1]
    replaced = [{**r, "text": spare[i % len(spare)]["text"] + " revised"}
                for i, r in enumerate(second[:max(1, n // 50)])]
    batch_add = new + replaced
    deleted = live[1::10]
    write_jsonl(work / "add.jsonl", batch_add)
    (work / "delete.txt").write_text("\n".join(deleted) + "\n")
    return {"base": base, "docs": n, "universe": sorted({r["_id"] for r in rows}),
            "batch": {"add": [r["_id"] for r in batch_add], "delete": deleted, "merge": []},
            "cmd": {"add": lambda d: lsr("add", d, work / "add.jsonl", "-q", "--no-merge"),
                    "delete": lambda d: lsr("delete", d, "--ids-file", work / "delete.txt", "-q"),
                    "merge": lambda d: lsr("merge", d, "--max-segments", "1", "-q")},
            # the same work by an IndexWriter in this process (the next writer finishing a killed batch)
            "redo": {"add": lambda w: w.add(map(as_record, batch_add)), "delete": lambda w: w.delete(deleted),
                     "merge": lambda w: w.merge(1)}}


# ------------------------------------------------------------------ states
def state(idx: Path, universe, batch, queries) -> dict:
    """What a reader sees: generation, live ids, count, the batch's stored texts, the queries' top 10."""
    from lsr import Retriever
    r = Retriever(idx)  # verify=True: every byte of every file
    try:
        doc_ids = r.index.doc_ids
        live = set()
        for d in universe:
            try:
                doc_ids.number_of(d)
                live.add(d)
            except KeyError:
                pass
        present = [d for d in batch if d in live]
        texts = dict(zip(present, (g["text"] for g in r.get(present)))) if present else {}
        ids, scores = r.batch_search_ids(queries, 10)
        return {"generation": r.generation, "n": len(r), "live": live, "texts": texts,
                "ids": np.asarray(ids), "scores": np.asarray(scores, np.float64)}
    finally:
        r.close()


def same_top(a: dict, b: dict, tol: float = 1e-4) -> bool:
    """Equal top 10s: scores within ``tol``; ids equal as sets inside each run of tied scores (a tie that
    the cutoff splits may keep either documents)."""
    for ia, sa, ib, sb in zip(a["ids"], a["scores"], b["ids"], b["scores"]):
        if not np.allclose(sa, sb, rtol=0, atol=tol):
            return False
        start = 0
        for end in range(1, len(sa) + 1):
            if end == len(sa) or abs(sb[end] - sb[start]) > tol:
                if end < len(sa) and set(ia[start:end]) != set(ib[start:end]):
                    return False
                start = end
    return True


def mismatch(seen: dict, want: dict) -> list[str]:
    """How ``seen`` differs from the reference state ``want`` (empty: it is that state)."""
    bad = []
    if seen["live"] != want["live"]:
        extra, missing = len(seen["live"] - want["live"]), len(want["live"] - seen["live"])
        bad.append(f"live ids differ: {extra} extra, {missing} missing")
    if seen["n"] != want["n"]:
        bad.append(f"len {seen['n']} != {want['n']}")
    if seen["texts"] != want["texts"]:
        bad.append("stored texts of the batch differ")
    if not same_top(seen, want):
        bad.append("top 10 differs")
    return bad


# ------------------------------------------------------------------ one run
def launch(cmd, lock: Path, anchor: str | None = None, delay: float = 0.0) -> dict:
    """Run ``cmd``; SIGKILL it ``delay`` s after the anchor ("launch", or "lock": its writer lock file appearing)
    unless it has exited by then; None anchor: run to the end. Times the lock's appearance and the exit."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    t_lock = kill_at = None
    if anchor == "launch":
        kill_at = t0 + delay
    while p.poll() is None:
        now = time.perf_counter()
        if t_lock is None and lock.exists():
            t_lock = now - t0
            if anchor == "lock":
                kill_at = now + delay
        if kill_at is not None and now >= kill_at:
            writing = lock.exists()  # the writer holds its lock (it unlinks it on release)
            p.send_signal(signal.SIGKILL)
            p.wait()
            return {"killed": True, "writing": writing, "t_kill": round(now - t0, 4), "t_lock": t_lock, "rc": None}
        time.sleep(0.001)
    err = p.stderr.read().decode(errors="replace")
    return {"killed": False, "writing": False, "t_end": time.perf_counter() - t0, "t_lock": t_lock,
            "rc": p.returncode, "stderr": err[-2000:]}


def check(idx: Path) -> list[str]:
    """`lsr check DIR` run in this process (the CLI's own code and exit status, without a second interpreter)."""
    from typer.testing import CliRunner

    from lsr.cli.app import app
    res = CliRunner().invoke(app, ["check", str(idx)])
    return [f"lsr check exit {res.exit_code}: {res.output[-500:]}"] if res.exit_code else []


def leftovers(idx: Path) -> list[str]:
    """What the folder holds beyond the newest commit's files, and its parent beyond the folder (locks, swaps)."""
    from lsr.index import commit as commits
    keep = commits.referenced(commits.read(idx, commits.generations(idx)[-1]))
    return sorted(set(os.listdir(idx)) - keep) + sorted(f"../{n}" for n in set(os.listdir(idx.parent)) - {idx.name})


def trial(op: str, i: int, s: dict, refs: dict, queries, anchor: str, delay: float, work: Path) -> dict:
    from lsr import IndexWriter
    folder = work / "trials" / f"{op}-{i:02d}"
    idx = folder / "idx"
    shutil.copytree(s["base"], idx)
    run = launch(s["cmd"][op](idx), folder / ".idx.lock", anchor, delay)
    rec = {"op": op, "trial": i, "anchor": anchor, "delay": round(delay, 4),
           "outcome": "killed" if run["killed"] else "finished", "writing": run["writing"], "state": None,
           "applied": None, "garbage": [], "problems": []}
    p = rec["problems"]
    if not run["killed"] and run["rc"] != 0:
        p.append(f"finished with exit {run['rc']}: {run['stderr']}")
    old, new, batch = refs["old"], refs[op], s["batch"][op]
    try:
        # (a) loads, (b) all of the batch or none, (c) searches as the reference of that state does
        seen = state(idx, s["universe"], batch, queries)
        rec["state"] = {old["generation"]: "old", new["generation"]: "new"}.get(seen["generation"])
        # how many of the batch's changes a reader sees (delete: ids gone; add: ids holding the batch's text)
        rec["applied"] = sum((d not in seen["live"]) if op == "delete" else seen["texts"].get(d) == new["texts"][d]
                             for d in batch)
        want = new if rec["state"] == "new" else old
        if rec["state"] is None:
            p.append(f"generation {seen['generation']} is neither old ({old['generation']}) nor new")
        p += mismatch(seen, want)
        if rec["state"] == "old" and not run["killed"]:
            p.append("the run finished but its commit is not visible")
        # (d) the next writer removes what the killed one left, and the index still reads the same
        rec["garbage"] = leftovers(idx)
        with IndexWriter(idx, merge=False):
            pass
        if leftovers(idx):
            p.append(f"left after the next writer: {leftovers(idx)}")
        p += [f"after the next writer: {m}" for m in mismatch(state(idx, s["universe"], batch, queries), want)]
        if rec["state"] == "old":  # and it can do the interrupted work: the uninterrupted run's result, exactly
            with IndexWriter(idx, merge=False) as w:
                s["redo"][op](w)
            again = state(idx, s["universe"], batch, queries)
            p += [f"redone: {m}" for m in mismatch(again, new)]
            if again["generation"] != new["generation"]:
                p.append(f"redone: generation {again['generation']}, the uninterrupted run's {new['generation']}")
        p += check(idx)
    except Exception as e:  # noqa: BLE001 - any error here is a failure to record, not to stop on
        p.append(f"{type(e).__name__}: {e}")
    rec["ok"] = not p
    if rec["ok"]:
        shutil.rmtree(folder)  # failures are kept for a look
    return rec


# ------------------------------------------------------------------ main
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="trials per operation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpus", default="cranfield", help="a BEIR folder, or its name under shared/data/beir")
    ap.add_argument("--docs", type=int, default=None, help="use the corpus's first N documents")
    ap.add_argument("--out", type=Path, default=OUT / "living_crash.json")
    ap.add_argument("--work", type=Path, default=OUT / "living_crash")
    args = ap.parse_args(argv)
    t_start = time.time()
    corpus = Path(args.corpus) if Path(args.corpus).is_dir() else SHARED / "beir" / args.corpus
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    s = setup(args.work, corpus, args.docs)
    queries = [q["text"] for q in read_jsonl(corpus / "queries.jsonl.gz", 10)]
    refs = {"old": state(s["base"], s["universe"], sorted(set().union(*s["batch"].values())), queries)}
    timing = {}
    for op in OPS:  # each operation once, uninterrupted: its duration and its "new" state
        idx = args.work / f"ref-{op}" / "idx"
        shutil.copytree(s["base"], idx)
        run = launch(s["cmd"][op](idx), idx.parent / ".idx.lock")
        if run["rc"] != 0 or run["t_lock"] is None:
            raise SystemExit(f"uninterrupted {op} failed (exit {run['rc']}, lock at {run['t_lock']}): {run['stderr']}")
        timing[op] = {"total_s": round(run["t_end"], 3), "lock_s": round(run["t_lock"], 3)}
        refs[op] = state(idx, s["universe"], sorted(set().union(*s["batch"].values())), queries)
    results = []
    for op in OPS:
        rng = random.Random(f"{args.seed}-{op}")
        # restrict each reference's texts to this operation's batch
        op_refs = {k: {**refs[k], "texts": {d: t for d, t in refs[k]["texts"].items() if d in s["batch"][op]}}
                   for k in ("old", op)}
        total, writer = timing[op]["total_s"], timing[op]["total_s"] - timing[op]["lock_s"]
        for i in range(args.trials):
            anchor = "launch" if i % 2 == 0 else "lock"
            delay = rng.uniform(0, 1.1 * (total if anchor == "launch" else writer))
            rec = trial(op, i, s, op_refs, queries, anchor, delay, args.work)
            results.append(rec)
            print(f"{op:<6} {i:>3} {anchor:<6} {delay:6.3f}s {rec['outcome']:<8} {'writing' * rec['writing']:<7} "
                  f"{rec['state'] or '?':<4} {'ok' if rec['ok'] else 'FAIL ' + '; '.join(rec['problems'])}", flush=True)
    counts = {}
    for op in OPS:
        rs = [r for r in results if r["op"] == op]
        counts[op] = {"batch": len(s["batch"][op]), "trials": len(rs),
                      "killed": sum(r["outcome"] == "killed" for r in rs),
                      "killed_writing": sum(r["writing"] for r in rs),  # killed while holding the writer lock
                      "finished": sum(r["outcome"] == "finished" for r in rs),
                      "old": sum(r["state"] == "old" for r in rs), "new": sum(r["state"] == "new" for r in rs),
                      # trials whose killed writer left files in the index folder (not only its lock beside it)
                      "garbage_cleaned": sum(any(not g.startswith("../") for g in r["garbage"]) for r in rs),
                      "failures": sum(not r["ok"] for r in rs), **timing[op],
                      # what tells the two states apart (so the checks above could fail)
                      "old_vs_new": mismatch({**refs["old"], "texts": {}}, {**refs[op], "texts": {}})}
    report = {"date": time.strftime("%Y-%m-%d"), "corpus": str(corpus), "docs": s["docs"], "seed": args.seed,
              "trials_per_op": args.trials, "ops": counts,
              "failures": sum(c["failures"] for c in counts.values()), "runtime_s": round(time.time() - t_start, 1),
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{'op':<7}{'trials':>7}{'killed':>8}{'writing':>8}{'finished':>9}{'old':>5}{'new':>5}{'garbage':>8}"
          f"{'fail':>5}{'run s':>7}")
    for op, c in counts.items():
        print(f"{op:<7}{c['trials']:>7}{c['killed']:>8}{c['killed_writing']:>8}{c['finished']:>9}{c['old']:>5}"
              f"{c['new']:>5}{c['garbage_cleaned']:>8}{c['failures']:>5}{c['total_s']:>7}")
    print(f"{report['failures']} failure(s) in {report['runtime_s']} s; wrote {args.out}")
    if report["failures"] == 0:
        shutil.rmtree(args.work, ignore_errors=True)
    return report


if __name__ == "__main__":
    sys.exit(1 if main()["failures"] else 0)
