"""Print a markdown comparison of a bench/out/seismic_*.json file (used for docs/RESULTS.md).

    python bench/results_table.py bench/out/seismic_synthetic1000000.json
"""
import json
import sys

import numpy as np


def setting(x):
    """A run's search setting as printed: query_cut / heap_factor (/ knn when refinement was on)."""
    return f"{x['query_cut']} / {x['heap_factor']}" + (f" / knn {x['knn']}" if x.get("knn") else "")


def main(path):
    r = json.load(open(path))
    S = r["systems"]
    print(f"{r['data']}: {r['docs']:,} documents (mean nnz {r['mean_doc_nnz']:.1f}), {r['queries']} queries "
          f"(mean nnz {r['mean_query_nnz']:.1f}); build parameters {r['params']}\n")
    print("| system | build s | index MB | build peak RSS MB |\n|---|---:|---:|---:|")
    for name, s in S.items():
        if "build_s" in s:
            extra = f" ({s['index_only_build_s']:.1f} index only)" if "index_only_build_s" in s else ""
            print(f"| {name} | {s['build_s']:.1f}{extra} | {s['index_bytes'] / 1e6:.1f} | {s['peak_rss_mb']:.0f} |")
    print("\n| query_cut / heap_factor | lsr recall@10 | pyseismic recall@10 | lsr mean ms | pyseismic mean ms "
          "| lsr / pyseismic | lsr p99 ms | lsr batch q/s (2 threads) |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    py = {setting(x): x for x in S["pyseismic-lsr"]["runs"]}
    for a in S["lsr-seismic"]["runs"]:
        b = py.get(setting(a))  # absent when only lsr ran this setting (e.g. its k-NN graph)
        pr, pm, ratio = ((f"{b['recall@10']:.3f}", f"{b['mean_ms']:.3f}", f"{a['mean_ms'] / b['mean_ms']:.2f}")
                         if b else ("", "", ""))
        print(f"| {setting(a)} | {a['recall@10']:.3f} | {pr} | {a['mean_ms']:.3f} | {pm} | {ratio} | "
              f"{a['p99_ms']:.3f} | {a['batch_2t_qps']:,.0f} |")
    for name in ("lsr-exact", "scipy-brute-force"):
        x = S[name]["runs"][0]
        print(f"\n{name}: mean {x['mean_ms']:.2f} ms, p50 {x['p50_ms']:.2f}, p99 {x['p99_ms']:.2f}, "
              f"batch (2 threads) {x['batch_2t_qps']:,.0f} q/s.", end="")
    print("\n")
    acceptance(S)


def best(runs, target):
    ok = [x for x in runs if x["recall@10"] >= target]
    return min(ok, key=lambda x: x["mean_ms"]) if ok else None


def acceptance(S, target=0.95):
    """Each Seismic's fastest setting with recall@10 >= target, and the issue's ratios."""
    lsr, ps = best(S["lsr-seismic"]["runs"], target), best(S["pyseismic-lsr"]["runs"], target)
    exact = S["lsr-exact"]["runs"][0]["mean_ms"]
    for name, b in (("lsr-seismic", lsr), ("pyseismic-lsr", ps)):
        print(f"- {name} fastest at recall@10 >= {target}: " + (
            f"{setting(b)}, recall {b['recall@10']:.3f}, "
            f"{b['mean_ms']:.3f} ms" if b else "not reached on this grid"))
    if lsr and ps:
        print(f"- latency lsr / pyseismic: {lsr['mean_ms'] / ps['mean_ms']:.2f}")
        same = [x for x in S["lsr-seismic"]["runs"] if x["recall@10"] >= ps["recall@10"]]
        if same:
            m = min(same, key=lambda x: x["mean_ms"])
            print(f"- lsr at recall >= pyseismic's {ps['recall@10']:.3f}: {m['mean_ms']:.3f} ms "
                  f"({setting(m)}), ratio {m['mean_ms'] / ps['mean_ms']:.2f}")
    if lsr:
        print(f"- exact / lsr-seismic latency: {exact / lsr['mean_ms']:.1f}x")
    plain_l = best([x for x in S["lsr-seismic"]["runs"] if not x.get("knn")], target)
    plain_p = best([x for x in S["pyseismic-lsr"]["runs"] if not x.get("knn")], target)
    if plain_l and plain_p:
        print(f"- without graphs, fastest at recall@10 >= {target}: lsr {setting(plain_l)} "
              f"({plain_l['recall@10']:.3f}, {plain_l['mean_ms']:.3f} ms), pyseismic {setting(plain_p)} "
              f"({plain_p['recall@10']:.3f}, {plain_p['mean_ms']:.3f} ms): ratio "
              f"{plain_l['mean_ms'] / plain_p['mean_ms']:.2f}; exact / lsr {exact / plain_l['mean_ms']:.1f}x")
    same_setting(S)
    frontier(S, target)
    a, b = S["lsr-seismic"], S["pyseismic-lsr"]
    graph_a, graph_b = a.get("timings", {}).get("knn_s", 0.0), b.get("knn_build_s", 0.0)
    print(f"- index size lsr / pyseismic: {a['index_bytes'] / b['index_bytes']:.2f}; build time lsr / pyseismic: "
          f"{(a['build_s'] - graph_a) / b['index_only_build_s']:.2f} (index only), "
          f"{a['build_s'] / b['build_s']:.2f} (end to end)")
    if graph_a or graph_b:
        print(f"- k-NN graph build: lsr {graph_a:.1f} s, pyseismic {graph_b:.1f} s; index with graph, "
              f"lsr / pyseismic: {a['build_s'] / (b['index_only_build_s'] + graph_b):.2f}")


def same_setting(S):
    """Every setting both systems ran: the spread of lsr / pyseismic latency and of the recall difference."""
    key = lambda x: (x["query_cut"], x["heap_factor"], x.get("knn", 0))  # noqa: E731
    theirs = {key(x): x for x in S["pyseismic-lsr"]["runs"]}
    pairs = [(x, theirs[key(x)]) for x in S["lsr-seismic"]["runs"] if key(x) in theirs]
    if pairs:
        r = np.array([a["mean_ms"] / b["mean_ms"] for a, b in pairs])
        d = np.array([a["recall@10"] - b["recall@10"] for a, b in pairs])
        print(f"- same setting ({len(pairs)} shared), lsr / pyseismic latency: min {r.min():.2f}, "
              f"median {np.median(r):.2f}, max {r.max():.2f}; recall difference median {np.median(d):+.3f}, "
              f"range {d.min():+.3f} to {d.max():+.3f}")


def frontier(S, target=0.95):
    """Every pyseismic setting on its recall/latency frontier (recall >= target) against lsr's
    fastest setting reaching at least that recall: the "at equal or higher recall" comparison."""
    pareto, top = [], -1.0
    for x in sorted(S["pyseismic-lsr"]["runs"], key=lambda x: (x["mean_ms"], -x["recall@10"])):
        if x["recall@10"] > top:
            pareto.append(x)
            top = x["recall@10"]
    ratios = []
    print(f"\n| pyseismic setting (recall >= {target}, frontier) | recall | ms | lsr fastest setting at >= that "
          "recall | recall | ms | lsr / pyseismic |\n|---|---:|---:|---|---:|---:|---:|")
    for p in (x for x in pareto if x["recall@10"] >= target):
        ok = [x for x in S["lsr-seismic"]["runs"] if x["recall@10"] >= p["recall@10"]]
        m = min(ok, key=lambda x: x["mean_ms"]) if ok else None
        if m is None:
            print(f"| {setting(p)} | {p['recall@10']:.3f} | {p['mean_ms']:.3f} | not reached | | | |")
            continue
        ratios.append(m["mean_ms"] / p["mean_ms"])
        print(f"| {setting(p)} | {p['recall@10']:.3f} | {p['mean_ms']:.3f} | "
              f"{setting(m)} | {m['recall@10']:.3f} | {m['mean_ms']:.3f} | "
              f"{ratios[-1]:.2f} |")
    if ratios:
        print(f"\n- at equal or higher recall (>= {target}), lsr / pyseismic latency: worst {max(ratios):.2f}, "
              f"best {min(ratios):.2f} over {len(ratios)} frontier points")


if __name__ == "__main__":
    main(sys.argv[1])
