"""Commands that tune an index's search defaults: tune (seismic), tune-hybrid (fusion)."""
from pathlib import Path
from typing import Annotated

import typer

from .options import IndexDir, Quiet, Split, flag, k_option, split_list
from .output import print_json

DryRun = Annotated[bool, flag("--dry-run", help="measure and report, but do not store")]


def tune(
    index_dir: IndexDir,
    queries: Annotated[str, typer.Option("--queries", metavar="DATASET", help="sample queries: ir_datasets id, "
                                         "BEIR folder, or JSONL/TSV file")],
    target_recall: Annotated[float, typer.Option("--target-recall", min=0.0, max=1.0, metavar="R",
                                                 help="recall@k against exact search")] = 0.95,
    k: Annotated[int, k_option("the k of recall@k")] = 10,
    sample: Annotated[int, typer.Option("--sample", min=1, metavar="N", help="queries to use (a seeded "
                                        "sample)")] = 200,
    dry_run: DryRun = False,
    as_json: Annotated[bool, flag("--json", help="print the full grid as JSON")] = False,
    quiet: Quiet = False,
):
    """Pick query_cut and heap_factor (and knn, when the index has a k-NN graph)
    meeting a recall target at the lowest latency, and store them in the index
    as its search defaults.

    [b]Example[/b]: lsr tune indexes/scifact --queries beir/scifact/train --target-recall 0.95
    """
    from ..errors import IndexError_
    from ..retrieval.tune import tune_seismic
    result = tune_seismic(index_dir, queries, target_recall=target_recall, k=k, sample=sample, store=not dry_run,
                          progress=not (quiet or as_json))
    best = result["best"]
    if as_json:
        print_json(result)
    elif best:
        typer.echo(f"query_cut={best['query_cut']} heap_factor={best['heap_factor']} knn={best['knn']}: recall@{k} "
                   f"{best['recall']:.3f}, {best['mean_ms']:.3f} ms/query over {result['queries']} queries"
                   + (" (not stored: --dry-run)" if dry_run else f"; stored as the defaults of {index_dir}"))
    if not best:
        top = max(result["runs"], key=lambda r: r["recall"])
        raise IndexError_(f"no setting reached recall@{k} {target_recall} (best {top['recall']:.3f} at "
                          f"query_cut={top['query_cut']}, heap_factor={top['heap_factor']}); nothing stored")


def tune_hybrid(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX", show_default=False,
                                              help="an index directory with a dense and/or BM25 list")],
    queries: Annotated[str, typer.Option("--queries", metavar="DATASET", help="a split with relevance judgements: "
                                         "ir_datasets id (beir/scifact/train, beir/nfcorpus/dev) or BEIR folder; "
                                         "never the test split")],
    lists: Annotated[str, typer.Option("--lists", metavar="LIST,...", help="lists to fuse")] = "bm25,sparse,dense",
    metric: Annotated[str, typer.Option("--metric", metavar="NAME", help="ir-measures name to maximise")] = "nDCG@10",
    step: Annotated[float, typer.Option("--step", min=0.01, max=0.5, metavar="X", help="weight grid step")] = 0.1,
    split: Split = None,
    dry_run: DryRun = False,
    as_json: Annotated[bool, flag("--json", help="print every configuration's score as JSON")] = False,
    quiet: Quiet = False,
):
    """Tune hybrid fusion (method, normalisation, weights) on judged queries and store
    the best as the index's default for `lsr search --hybrid` / `lsr eval --hybrid`.
    A BEIR folder is tuned on its dev split, else train (--split picks another; never test).

    [b]Example[/b]: lsr tune-hybrid indexes/scifact --queries beir/scifact/train
    """
    from ..retrieval.tune import tune_hybrid as run_tuning
    names = split_list(lists) or []
    best, table, path = run_tuning(index_dir, queries, names, metric=metric, step=step, split=split,
                                   store=not dry_run, progress=not (quiet or as_json))
    if as_json:
        print_json({"best": best.to_json(), "grid": table, "stored": str(path) if path is not None else None})
        return
    # The result and where it went: the command's output, on stdout (stderr is for warnings and errors).
    typer.echo(f"best {metric} {best.tuned_on['value']:.4f} on {best.tuned_on['dataset']} ({best.tuned_on['queries']} "
               f"queries): fusion {best.fusion}, norm {best.norm}, weights {dict(zip(names, best.weights))}")
    typer.echo(f"stored as the hybrid default of {index_dir} ({path})" if path is not None
               else "not stored (--dry-run)")
