"""`lsr serve` under load on scifact: throughput, p50/p99 latency and errors at 1, 8 and 32 concurrent clients,
for sparse and hybrid search, beside in-process `Retriever.batch_search` throughput in the same run; every
response checked against the in-process result; RSS per worker.

    python bench/serve_load.py [--duration 60] [--workers 2]   # writes bench/out/serve_load.json and .png

Loopback only (127.0.0.1), a server started and stopped per mode, clients bounded in count and time
(httpx.AsyncClient, one connection per client). Queries: beir/scifact/test's 300, round robin, k=10.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the in-process reference encodes as a server worker does

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(index: Path, mode: str, workers: int, port: int) -> subprocess.Popen:
    import httpx
    proc = subprocess.Popen([sys.executable, "-m", "lsr", "serve", str(index), "--port", str(port), "--mode", mode,
                             "--workers", str(workers), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("server did not start in 300 s")


def rss(pid: int) -> dict:
    """kB of resident memory of a process: all, anonymous (its own), file-backed (the mapped index and
    libraries: page cache shared with every other process mapping them)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            fields[name] = int(value.split()[0])
    return fields


def mapped_kb(pid: int, folder: Path) -> int:
    """kB of a process's resident memory mapped from files under ``folder`` (the index's arrays: page cache
    that every worker mapping them shares)."""
    total, inside = 0, False
    prefix = str(folder.resolve())
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line: address perms offset dev inode [path]
            inside = len(head) >= 6 and head[5].startswith(prefix)
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(p) for p in children.read_text().split()] if children.exists() else []
    # uvicorn's multiprocess supervisor also starts multiprocessing's resource tracker: not a worker
    return [k for k in kids if "resource_tracker" not in Path(f"/proc/{k}/cmdline").read_text()] or [pid]


async def load(url: str, queries: list[str], expected: dict, concurrency: int, duration: float, mode: str) -> dict:
    import httpx
    latencies, statuses, mismatches, errors = [], [], [], []
    counter = [0]
    deadline = time.monotonic() + duration

    async def client(c: httpx.AsyncClient):
        while time.monotonic() < deadline:
            i = counter[0] % len(queries)
            counter[0] += 1
            t = time.perf_counter()
            try:
                r = await c.post("/search", json={"query": queries[i], "k": 10, "mode": mode})
            except httpx.HTTPError as e:
                errors.append(type(e).__name__)
                continue
            latencies.append(time.perf_counter() - t)
            statuses.append(r.status_code)
            if r.status_code == 200:
                got = [(h["doc_id"], h["score"]) for h in r.json()["hits"]]
                want = expected[i]
                if [d for d, _ in got] != [d for d, _ in want] or any(
                        abs(a - b) > 1e-5 * max(1.0, abs(b)) for (_, a), (_, b) in zip(got, want)):
                    mismatches.append(i)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as c:
        start = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    ok = sum(1 for s in statuses if s == 200)
    lat = sorted(latencies)
    return {"concurrency": concurrency, "seconds": wall, "requests": len(statuses), "ok": ok,
            "throughput_qps": ok / wall, "p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
            "mean_ms": 1000 * statistics.fmean(lat) if lat else None,
            "status_counts": {str(s): statuses.count(s) for s in sorted(set(statuses))},
            "errors_5xx": sum(1 for s in statuses if s >= 500), "transport_errors": len(errors),
            "checked": ok, "mismatches": len(mismatches)}


def in_process(index: Path, mode: str, queries: list[str]) -> tuple[dict, dict]:
    """The expected hits per query (Retriever.search, as the server calls it) and batch_search throughput."""
    from lsr import Retriever
    r = Retriever(index, mode=mode)
    expected = {i: [(h.doc_id, h.score) for h in r.search(q, 10)] for i, q in enumerate(queries)}
    best = 0.0
    for _ in range(2):
        t = time.perf_counter()
        for s in range(0, len(queries), 32):
            r.batch_search(queries[s:s + 32], 10)
        best = max(best, len(queries) / (time.perf_counter() - t))
    r.close()
    return expected, {"batch_search_qps": best, "batch": 32, "threads": os.environ.get("OMP_NUM_THREADS")}


def plot(report: dict, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, res in report["modes"].items():
        xs = [x["concurrency"] for x in res["levels"]]
        a.plot(xs, [x["throughput_qps"] for x in res["levels"]], marker="o", label=f"{mode} served")
        a.axhline(res["in_process"]["batch_search_qps"], linestyle="--", alpha=0.5, label=f"{mode} in-process batch")
        b.plot(xs, [x["p99_ms"] for x in res["levels"]], marker="o", label=f"{mode} p99")
        b.plot(xs, [x["p50_ms"] for x in res["levels"]], marker=".", linestyle=":", label=f"{mode} p50")
    a.set(xscale="log", xlabel="concurrent clients", ylabel="queries/s", title="throughput")
    b.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="ms", title="latency")
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparse-index", type=Path, default=ROOT / "indexes" / "scifact-splade-tiny",
                    help="the demo index (make demo)")
    ap.add_argument("--hybrid-index", type=Path, default=OUT / "living" / "hybrid-whole",
                    help="scifact with splade-tiny + MiniLM + BM25 (bench/living.py builds it; or lsr index "
                    "beir/scifact -m splade-tiny --dense minilm -o DIR)")
    ap.add_argument("--modes", default="sparse,hybrid")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per concurrency level")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT / "serve_load.json")
    args = ap.parse_args(argv)
    from lsr.data import load_dataset
    queries = [q.text for q in load_dataset("beir/scifact/test").queries()]
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join([sys.executable, *sys.argv]),
              "queries": len(queries), "k": 10, "workers": args.workers, "duration_s": args.duration,
              "cpus": os.cpu_count(), "modes": {}}
    for mode in args.modes.split(","):
        index = args.sparse_index if mode == "sparse" else args.hybrid_index
        expected, reference = in_process(index, mode, queries)
        port = free_port()
        proc = start(index, mode, args.workers, port)
        url = f"http://127.0.0.1:{port}"
        try:
            levels = []
            for c in (int(x) for x in args.concurrency.split(",")):
                res = asyncio.run(load(url, queries, expected, c, args.duration, mode))
                res["rss_kb"] = {str(p): {**rss(p), "index_mapped": mapped_kb(p, index)} for p in workers_of(proc.pid)}
                levels.append(res)
                print(f"{mode:7} c={c:3}  {res['throughput_qps']:7.1f} q/s  p50 {res['p50_ms']:7.1f} ms  "
                      f"p99 {res['p99_ms']:7.1f} ms  5xx {res['errors_5xx']}  mismatches {res['mismatches']}",
                      flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        one = levels[0]["throughput_qps"]
        report["modes"][mode] = {
            "index": str(index), "in_process": reference, "levels": levels, "exit_code": code,
            "served_fraction_of_in_process": {str(x["concurrency"]): x["throughput_qps"] / reference["batch_search_qps"]
                                              for x in levels},
            "never_below_one_client": all(x["throughput_qps"] >= one for x in levels)}
        print(f"{mode}: in-process batch_search {reference['batch_search_qps']:.1f} q/s; exit code {code}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    plot(report, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
