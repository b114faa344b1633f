"""Commands that search an index: search, eval (ask: :mod:`.ask`)."""
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import (
    OUTPUT,
    DenseMoved,
    Device,
    FbDocs,
    FbTerms,
    Fusion,
    HeapFactor,
    Hybrid,
    IndexDir,
    Knn,
    Lists,
    Norm,
    Prf,
    PrfBeta,
    QueryCut,
    Quiet,
    SearchBackend,
    Split,
    Threads,
    Weights,
    Where,
    check_seismic_options,
    flag,
    hybrid_config,
    k_option,
    refuse_inference_without_model,
    seismic_params,
)
from .output import check_output_file, hit_json, metadata_fields, note, print_hits, print_json, warn
from .queries import read_queries

BATCH = 256  # queries per batch of --queries


def _open(index_dir: Path, config, params: dict, backend=None, threads=None, device=None):
    """(front door, its sparse Searcher, the parameters each call takes): a Searcher, or a
    HybridSearcher with the seismic parameters bound to its sparse list; its models run on ``backend``
    (None: the index's recorded one) with ``threads`` on ``device``."""
    if config is None:
        from ..retrieval import Searcher
        front = main = Searcher(index_dir, backend=backend, threads=threads, device=device)
    else:
        from ..retrieval import HybridSearcher
        front = HybridSearcher(index_dir, config, backend=backend, threads=threads, device=device, **params)
        main, params = front.main, {}
    refuse_inference_without_model(index_dir, main, config, backend=backend, threads=threads, device=device)
    return front, main, params


def search(
    index_dir: IndexDir,
    query: Annotated[Optional[str], typer.Argument(metavar="QUERY", show_default=False,
                                                   help="query text (or --queries FILE for many)")] = None,
    k: Annotated[int, k_option("hits per query")] = 10,
    queries: Annotated[Optional[str], typer.Option(
        "--queries", metavar="SOURCE", help="search many queries: a JSONL/TSV/Parquet queries file, a dataset "
        "(beir/scifact/test), or - for stdin (one query per line, numbered 1..n, or id<TAB>text); results as a "
        "TREC run")] = None,
    run: Annotated[Optional[Path], typer.Option(
        "--run", metavar="OUT", rich_help_panel=OUTPUT,
        help="with --queries: write the TREC run here (default: stdout)")] = None,
    as_json: Annotated[bool, flag("--json", rich_help_panel=OUTPUT, help='print {"hits": [{doc_id, score, title, '
                                  '...}]} (with --queries: one {"query_id", "hits"} line per query)')] = False,
    text: Annotated[bool, flag("--text", rich_help_panel=OUTPUT, help="show each hit's text")] = False,
    metadata: Annotated[Optional[list[str]], typer.Option(
        "--metadata", metavar="FIELD,...", rich_help_panel=OUTPUT,
        help="show these metadata fields (table columns; JSON key metadata); all: every stored field")] = None,
    explain: Annotated[bool, flag("--explain", rich_help_panel=OUTPUT, help="under each hit, its top tokens as "
                                  "token query-weight×doc-weight=contribution (the sparse list's, with --hybrid); "
                                  '--json: an "explain" list per hit')] = False,
    explain_terms: Annotated[Optional[int], typer.Option(
        "--explain-terms", min=1, metavar="N", rich_help_panel=OUTPUT,
        help="tokens shown per hit by --explain (default 5)")] = None,
    where: Where = None,
    quiet: Quiet = False,
    query_cut: QueryCut = None,
    heap_factor: HeapFactor = None,
    knn: Knn = None,
    hybrid: Hybrid = False,
    lists: Lists = None,
    fusion: Fusion = None,
    norm: Norm = None,
    weights: Weights = None,
    prf: Prf = None,
    fb_docs: FbDocs = None,
    fb_terms: FbTerms = None,
    prf_beta: PrfBeta = None,
    backend: SearchBackend = None,
    threads: Threads = None,
    device: Device = None,
    dense: DenseMoved = False,
):
    """Search an index with a text query, or many (--queries) into a TREC run.

    With --hybrid (or --lists) the index's sparse, dense and BM25 lists are
    fused; --query-cut, --heap-factor and --knn then apply to its sparse list.

    [b]Examples[/b]: lsr search indexes/scifact "vitamin D and bone density" -k 5
              lsr search indexes/scifact --queries queries.tsv --run run.txt -k 100
    """
    from ..errors import QueryError
    from ..index.filters import parse_where
    if query is not None and queries is not None:
        raise typer.BadParameter("give a QUERY or --queries FILE, not both", param_hint="QUERY / --queries")
    if query is None and queries is None:
        raise typer.BadParameter("give a QUERY, or --queries FILE (- for stdin)", param_hint="QUERY")
    if run is not None and queries is None:
        raise typer.BadParameter("--run writes the results of --queries FILE", param_hint="'--run'")
    check_output_file(run, "--run")
    if run is not None and as_json:
        raise typer.BadParameter("--run writes a TREC run and --json prints hits as JSON lines: choose one",
                                 param_hint="'--run' / '--json'")
    if explain and queries is not None:
        raise typer.BadParameter("--explain explains the hits of one QUERY, not of a batch of --queries",
                                 param_hint="'--explain' / '--queries'")
    if explain_terms is not None and not explain:
        raise typer.BadParameter("--explain-terms sets how many tokens --explain shows; add --explain",
                                 param_hint="'--explain-terms'")
    if query is not None and not query.strip():
        raise QueryError("query is empty")
    batch = read_queries(queries) if queries is not None else None  # a bad file fails before any loading
    if batch is not None and (run is not None or not as_json) and (text or metadata):
        raise typer.BadParameter("--text and --metadata show in the table or --json, not in a TREC run",
                                 param_hint="'--text' / '--metadata'")
    where_ = parse_where(where) if where is not None else None
    params = seismic_params(query_cut, heap_factor, knn)
    check_seismic_options(index_dir, params)
    config = hybrid_config(index_dir, hybrid, lists, fusion, norm, weights, prf, fb_docs, fb_terms, prf_beta)
    front, searcher, call = _open(index_dir, config, params, backend, threads, device)
    searcher.allowed(where_)  # a bad filter fails before the model loads
    fields = metadata_fields(metadata, searcher.docstore)
    if batch is not None:
        _search_batch(front, call, batch, k, where_, run, as_json, text, fields, quiet)
        return
    if config is None or "sparse" in config.lists:
        n_tokens = searcher.encoder.token_length(query)
        if searcher.max_length and n_tokens > searcher.max_length:  # 0: no limit (bm25)
            warn(f"query is {n_tokens} tokens; only the first {searcher.max_length} are used")
    hits = front.search(query, k, where=where_, **call)
    from .explain import EXPLAIN_TERMS, explain_hits, print_explained
    explained = explain_hits(searcher, query, hits, explain_terms or EXPLAIN_TERMS) if explain else None
    if as_json:
        rows = [hit_json(h, text, fields) for h in hits]
        for row, e in zip(rows, explained or []):
            row["explain"] = e["terms"]
        print_json({"hits": rows})
        return
    if explained is not None:
        print_explained(query, hits, explained, fields, text, fused=config is not None)
        return
    print_hits(query, hits, fields, text, filtered=where_ is not None)


def _search_batch(front, call: dict, batch, k: int, where, run: Optional[Path], as_json: bool, text: bool,
                  fields, quiet: bool) -> None:
    from tqdm.auto import tqdm

    from ..eval import run_from_results, trec_run_lines, write_trec_run
    qids = [qid for qid, _ in batch]
    results = {}
    shown = not quiet and len(batch) > BATCH  # a bar for more than one batch
    with tqdm(total=len(batch), unit="query", desc="searching", disable=not shown, mininterval=1.0) as bar:
        for start in range(0, len(batch), BATCH):
            part = batch[start:start + BATCH]
            texts = [t for _, t in part]
            if as_json and run is None:
                for (qid, _), hits in zip(part, front.batch_search(texts, k, where=where, **call)):
                    print_json({"query_id": qid, "hits": [hit_json(h, text, fields) for h in hits]})
            else:
                ids, scores = front.batch_search_ids(texts, k, where=where, **call)
                results.update(run_from_results([qid for qid, _ in part], ids, scores, drop_self=False))
            bar.update(len(part))
    if as_json and run is None:
        return
    ordered = {qid: results[qid] for qid in qids}
    if run is None:
        for line in trec_run_lines(ordered):
            typer.echo(line)
        return
    write_trec_run(run, ordered)
    note(f"wrote {sum(len(h) for h in ordered.values())} hits for {len(qids)} queries to {run}")


def eval_(
    index_dir: IndexDir,
    dataset: Annotated[str, typer.Argument(metavar="DATASET", show_default=False, help="ir_datasets id with qrels "
                                           "(beir/scifact/test) or BEIR folder")],
    metrics: Annotated[Optional[list[str]], typer.Option(
        "--metrics", metavar="NAME,...", help="ir-measures names (default nDCG@10 R@100 RR@10)")] = None,
    as_json: Annotated[bool, flag("--json", help='print {"nDCG@10": ..., ...}')] = False,
    depth: Annotated[int, typer.Option(
        "--depth", "-k", "--k", min=1, metavar="N", help="hits searched per query (-k is the same option); every "
        "metric is computed on this one run, and a cutoff deeper than N is refused")] = 1000,
    run: Annotated[Optional[Path], typer.Option("--run", metavar="OUT", help="also write the TREC run (depth hits "
                                                "per query)")] = None,
    queries: Annotated[Optional[Path], typer.Option("--queries", metavar="FILE", help="queries file (JSONL/TSV) "
                                                    "instead of the dataset's")] = None,
    qrels: Annotated[Optional[Path], typer.Option("--qrels", metavar="FILE", help="qrels file (BEIR TSV or TREC) "
                                                  "instead of the dataset's")] = None,
    split: Split = None,
    keep_self_hits: Annotated[bool, flag("--keep-self-hits", help="keep hits whose doc id equals the query id "
                                         "(BEIR drops them)")] = False,
    quiet: Quiet = False,
    query_cut: QueryCut = None,
    heap_factor: HeapFactor = None,
    knn: Knn = None,
    hybrid: Hybrid = False,
    lists: Lists = None,
    fusion: Fusion = None,
    norm: Norm = None,
    weights: Weights = None,
    prf: Prf = None,
    fb_docs: FbDocs = None,
    fb_terms: FbTerms = None,
    prf_beta: PrfBeta = None,
    backend: SearchBackend = None,
    threads: Threads = None,
    device: Device = None,
    dense: DenseMoved = False,
):
    """Evaluate an index on a dataset's judged queries (BEIR conventions).

    Every judged query is searched --depth hits deep (default 1000, the TREC/BEIR convention) and every
    metric is computed on that one run, so nDCG@10 is the same alone or next to R@100. A warning says when
    fewer than half of the judged documents are in the index (qrels of another corpus).

    [b]Example[/b]: lsr eval indexes/scifact beir/scifact/test --metrics nDCG@10 --metrics R@100
    """
    import warnings

    from ..data import load_dataset
    from ..eval import evaluate_index, parse_metrics
    from ..eval.run import QrelsCoverageWarning, check_depth
    names = [m for spec in (metrics or []) for m in spec.replace(",", " ").split()] or None
    measures = parse_metrics(names)  # fail on a bad metric before any work
    check_depth(measures, depth, "--depth")
    check_output_file(run, "--run")
    params = seismic_params(query_cut, heap_factor, knn)
    check_seismic_options(index_dir, params)
    config = hybrid_config(index_dir, hybrid, lists, fusion, norm, weights, prf, fb_docs, fb_terms, prf_beta)
    front, _, call = _open(index_dir, config, params, backend, threads, device)
    ds = load_dataset(dataset, split=split, queries=queries, qrels=qrels)
    with warnings.catch_warnings():  # a warning (qrels of another corpus) as a `warning:` line, when it happens
        warnings.simplefilter("always", QrelsCoverageWarning)
        warnings.showwarning = lambda message, *_: warn(str(message))
        results = evaluate_index(front, ds, measures, depth=depth, run_path=run, progress=not (quiet or as_json),
                                 drop_self=not keep_self_hits, **call)
    if as_json:
        print_json(results)
        return
    for name, value in results.items():
        typer.echo(f"{name:>10}  {value:.4f}")

