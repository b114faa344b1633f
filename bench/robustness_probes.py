"""Probes of bench/robustness.py that run real ``lsr`` processes: bad CLI input, kills mid-write,
concurrent writers and outputs that must not be deleted (see that file's docstring)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

QUERY = "computer retrieval of documents"


def lsr_cli(*args, env=None, timeout=900, cwd=None):
    """Run the real ``lsr`` command (python -m lsr.cli.app) and return (rc, stdout, stderr)."""
    cmd = [sys.executable, "-m", "lsr.cli.app", *map(str, args)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    return res.returncode, res.stdout, res.stderr


# --------------------------------------------------------------- bad input
def strict_json(text: str) -> bool:
    def refuse(name):
        raise ValueError(name)
    try:
        for line in text.strip().splitlines() or [""]:
            json.loads(line, parse_constant=refuse)
    except ValueError:
        return False
    return True


def bad_input_cases(ix: dict, dataset: Path, other: Path, work: Path) -> list[dict]:
    """(name, args, expect): expect is error (exit 1 with `error:`, or typer's usage exit 2), ok, warn
    (exit 0 and a warning), json (exit 0, strict JSON on stdout) or any (no crash)."""
    H, B, q = ix["hybrid"], ix["bm25"], QUERY
    nested = "{" + '"$and": [{' * 500 + '"a": 1' + "}]" * 500 + "}"
    many = json.dumps({"doc_id": {"$in": [str(i) for i in range(12_000)]}})  # one argv string < 128 KiB
    c = [
        ("empty query", ["search", H, ""], "error"),
        ("blank query", ["search", H, "   "], "error"),
        ("huge query", ["search", H, "retrieval " * 12_000, "-q"], "any"),  # one argv string < 128 KiB
        ("k 0", ["search", H, q, "-k", "0"], "error"),
        ("k -1", ["search", H, q, "-k", "-1"], "error"),
        ("k 10^12", ["search", H, q, "-k", str(10**12), "-q"], "ok"),
        ("k not a number", ["search", H, q, "-k", "ten"], "error"),
        ("zero hits, table", ["search", B, "zzzqqqxxy", "-q"], "ok"),
        ("zero hits, json", ["search", B, "zzzqqqxxy", "--json", "-q"], "json"),
        ("json output", ["search", H, q, "--json", "-q"], "json"),
        ("where not JSON", ["search", H, q, "--where", '{"a":'], "error"),
        ("where nested 500", ["search", H, q, "--where", nested], "error"),
        ("where 12k values", ["search", H, q, "--where", many, "-q"], "any"),
        ("where unknown operator", ["search", H, q, "--where", '{"a": {"$regex": "x"}}'], "error"),
        ("index missing", ["search", work / "no-such-index", q], "error"),
        ("index is a dataset", ["search", dataset, q], "error"),
        ("index is vectors/", ["search", H / "vectors", q], "error"),
        ("index is a file", ["search", H / "manifest.json", q], "error"),
        ("query-cut 0", ["search", H, q, "--query-cut", "0"], "error"),
        ("heap-factor -1", ["search", H, q, "--heap-factor", "-1"], "error"),
        ("heap-factor nan", ["search", H, q, "--heap-factor", "nan"], "error"),
        ("knn -5", ["search", H, q, "--knn", "-5"], "error"),
        ("dense list absent", ["search", B, q, "--lists", "sparse,dense"], "error"),
        ("hybrid without lists", ["search", B, q, "--hybrid"], "error"),
        ("queries file missing", ["search", H, "--queries", work / "nope.tsv"], "error"),
        ("eval k 0", ["eval", H, dataset, "-k", "0"], "error"),
        ("eval k -1", ["eval", H, dataset, "-k", "-1"], "error"),
        ("eval nDCG@0", ["eval", H, dataset, "--metrics", "nDCG@0", "-q"], "error"),
        ("eval unknown metric", ["eval", H, dataset, "--metrics", "nDCGG@10", "-q"], "error"),
        ("eval wrong corpus", ["eval", H, other, "-q"], "warn"),
        ("eval dataset missing", ["eval", H, work / "no-such-dataset", "-q"], "error"),
        ("eval json", ["eval", H, dataset, "--json", "-q"], "json"),
        ("index unknown model", ["index", dataset, "--model", "no-such-model", "-o", work / "bad1", "-q"], "error"),
        ("index model typo", ["index", dataset, "--model", "splade-tny", "-o", work / "bad2", "-q"], "error"),
        ("index unknown dataset", ["index", "beir/no-such", "--model", "bm25", "-o", work / "bad3", "-q"], "error"),
        ("index bad type", ["index", dataset, "--model", "bm25", "--index-type", "hnsw", "-o", work / "bad4"],
         "error"),
        ("tune-hybrid on test split", ["tune-hybrid", H, "--queries", dataset, "-q"], "error"),
        ("ask empty", ["ask", H, " "], "error"),
        ("check missing", ["check", work / "no-such-index"], "error"),
        ("check clean", ["check", H], "ok"),
    ]
    return [{"family": "bad input", "name": n, "args": [str(a) for a in args], "expect": e} for n, args, e in c]


def run_bad_input(case: dict) -> dict:
    rc, out, err = lsr_cli(*case["args"], timeout=600)
    expect = case["expect"]
    if "Traceback" in err or rc not in (0, 1, 2):
        outcome = "crash"
    elif expect == "error":
        usage = rc == 2 and "Usage:" in err and "Error" in err  # typer's usage error (a missing argument)
        outcome = "refused" if (rc == 1 and "error:" in err) or usage else ("silent" if rc == 0 else "crash")
    elif expect == "warn":
        outcome = "ok" if rc == 0 and "warning" in err.lower() else "silent"
    elif expect == "json":
        outcome = "ok" if rc == 0 and strict_json(out) else ("crash" if rc == 0 else "wrong")
    elif expect == "ok":
        outcome = "ok" if rc == 0 else "wrong"
    else:
        outcome = "ok" if rc != 1 or "error:" in err else "crash"
    last = (err.strip().splitlines() or [""])[-1]
    return {**case, "args": case["args"][:3], "rc": rc, "outcome": outcome, "message": last[:300]}


# -------------------------------------------------------------------- kills
KILL_CHILD = r"""
import atexit, errno, importlib, json, os, sys
target, nth, count_file, argv, action = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
if target.startswith("fallback:"):  # no RENAME_EXCHANGE: the two-rename swap and its recovery
    import lsr.atomic
    lsr.atomic._exchange = lambda a, b: False
    target = target[len("fallback:"):]
module, attr = target.rsplit(".", 1)
module = importlib.import_module(module)
original, calls = getattr(module, attr), [0]
def wrapped(*args, **kwargs):
    calls[0] += 1
    if calls[0] == nth:
        if action == "kill":
            os._exit(137)  # as kill -9 would: no cleanup, no finally
        raise OSError(errno.ENOSPC, "No space left on device (injected)")
    return original(*args, **kwargs)
setattr(module, attr, wrapped)
atexit.register(lambda: open(count_file, "w").write(str(calls[0])) if count_file != "-" else None)
from lsr.cli.app import app
sys.argv = ["lsr", *argv]
app()
"""


def kill_targets() -> list[str]:
    import lsr.atomic
    own = [f"lsr.atomic.{n}" for n in dir(lsr.atomic) if "exchange" in n.lower() or "renameat" in n.lower()]
    return ["os.replace", "os.rename", "os.fsync", "shutil.rmtree", "shutil.copytree", "numpy.save", *own,
            "fallback:os.replace"]


FAULT_TARGETS = ["numpy.save", "os.fsync", "os.replace", "builtins.open", "fallback:os.replace"]


def identity(index: Path) -> str | None:
    try:
        from lsr.index import load_index
        load_index(index)  # full verification (and recovery of an interrupted swap)
        return (index / "manifest.json").read_text()
    except Exception:  # noqa: BLE001 - not loadable: reported as such
        return None


def leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir()
                  if (p.name.startswith(f".{path.name}.") and not p.name.endswith(".lock"))
                  or p.name == f"{path.name}.partial")


def run_kills(pristine: Path, dataset: Path, work: Path, per_target: int, only: list[str] | None = None,
              action: str = "kill") -> list:
    """``action`` "kill": os._exit at the n-th call; "fault": that call raises OSError(ENOSPC) instead, and the
    command must end in an ``error:`` line (exit 1) with the old index whole, or succeed with the new one."""
    from tqdm.auto import tqdm
    results = []
    target_path = work / action / "index"
    argv = ["index", str(dataset), "--model", "bm25", "--index-type", "exact", "-o", str(target_path),
            "--overwrite", "-q"]
    plan = []
    for target in only or (kill_targets() if action == "kill" else FAULT_TARGETS):
        count_file = work / "kill-count"
        count_file.unlink(missing_ok=True)
        _fresh(pristine, target_path)
        subprocess.run([sys.executable, "-c", KILL_CHILD, target, "0", count_file, json.dumps(argv), action],
                       capture_output=True, timeout=900)
        calls = int(count_file.read_text()) if count_file.exists() else 0
        # Spread over the run, the last call (the publishing rename, the final fsync) always among them.
        points = sorted({calls - round(i * (calls - 1) / max(1, per_target - 1)) for i in range(min(per_target, calls))})
        plan += [(target, n, calls) for n in points]
    for target, n, calls in tqdm(plan, desc=f"{action}s", unit=action):
        _fresh(pristine, target_path)
        old = (target_path / "manifest.json").read_text()
        res = subprocess.run([sys.executable, "-c", KILL_CHILD, target, str(n), "-", json.dumps(argv), action],
                             capture_output=True, text=True, timeout=900)
        after = identity(target_path)
        state = "crash" if "Traceback" in res.stderr or res.returncode not in (0, 1, 137) else (
            "lost" if after is None else ("old" if after == old else "new"))
        if action == "fault" and state in ("old", "new"):
            clean = (res.returncode == 1 and "error:" in res.stderr) or (res.returncode == 0 and state == "new")
            state = state if clean else "crash"
        rc2, _, err2 = lsr_cli(*argv)
        final = identity(target_path)
        left = leftovers(target_path)
        outcome = state if state in ("crash", "lost") else (
            "next writer failed" if rc2 != 0 or final is None else ("leftover" if left else "ok"))
        results.append({"family": action, "target": target, "call": n, "calls": calls, "rc": res.returncode,
                        "state": state, "outcome": outcome, "leftovers": left,
                        "message": ((res.stderr.strip().splitlines() or [""])[-1] + " | " + err2.strip())[-300:]})
    return results


def _fresh(pristine: Path, target: Path) -> None:
    shutil.rmtree(target.parent, ignore_errors=True)
    target.parent.mkdir(parents=True)
    shutil.copytree(pristine, target)


# ------------------------------------------------------------------ writers
def _popen_index(dataset: Path, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lsr.cli.app", "index", str(dataset), "--model", "bm25", "--index-type", "exact",
           "-o", str(out), "-q", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def run_writers(pristine: Path, dataset: Path, work: Path, trials: int) -> list:
    results = []
    base = work / "writers"
    for trial in range(trials):
        for overwrite in (False, True):
            out = base / f"two-{trial}-{overwrite}" / "index"
            shutil.rmtree(out.parent, ignore_errors=True)
            out.parent.mkdir(parents=True)
            if overwrite:
                shutil.copytree(pristine, out)
            extra = ("--overwrite",) if overwrite else ()
            procs = [_popen_index(dataset, out, *extra) for _ in range(2)]
            done = [(p.wait(timeout=900), p.stderr.read()) for p in procs]
            crashed = any("Traceback" in err or rc not in (0, 1) for rc, err in done)
            unclean = any(rc == 1 and "error:" not in err for rc, err in done)
            ok = identity(out) is not None and any(rc == 0 for rc, _ in done) if not overwrite else identity(out)
            outcome = "crash" if crashed or unclean else ("ok" if ok else "lost")
            results.append({"family": "writers", "name": f"two writers{' --overwrite' if overwrite else ''}",
                            "rcs": [rc for rc, _ in done], "outcome": outcome,
                            "message": " | ".join(err.strip().splitlines()[-1] if err.strip() else "" for _, err in done)[:300],
                            "leftovers": leftovers(out)})
    # Outputs that are not an lsr index, or hold the input: refused, nothing deleted.
    notes = base / "notes"
    data = base / "tree" / "data" / "adi"
    afile = base / "a-file.txt"
    for case, output, guarded, dataset_arg in (
            ("--overwrite on a folder of notes", notes, notes, dataset),
            ("-o is the dataset folder", data, data, data),
            ("-o contains the dataset", data.parent.parent, data.parent.parent, data),
            ("-o inside the dataset", data / "index", data, data),
            ("--overwrite on a file", afile, afile, dataset)):
        shutil.rmtree(base / "notes", ignore_errors=True)
        shutil.rmtree(base / "tree", ignore_errors=True)
        notes.mkdir(parents=True)
        (notes / "todo.txt").write_text("my notes\n")
        shutil.copytree(dataset, data)
        afile.write_text("not an index\n")
        before = snapshot(guarded) if guarded.is_dir() else afile.read_text()
        rc, _, err = lsr_cli("index", dataset_arg, "--model", "bm25", "--index-type", "exact", "-o", output,
                             "--overwrite", "-q")
        after = snapshot(guarded) if guarded.is_dir() else (afile.read_text() if afile.exists() else None)
        kept = after == before if case != "-o inside the dataset" else all(after.get(k) == v for k, v in before.items())
        outcome = "crash" if "Traceback" in err else ("lost" if not kept else ("refused" if rc == 1 else "ok"))
        results.append({"family": "writers", "name": case, "rcs": [rc], "outcome": outcome,
                        "message": (err.strip().splitlines() or [""])[-1][:300]})
    return results
