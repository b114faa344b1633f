"""Options shared by several commands, each declared once (typing.Annotated aliases).

Conventions: every flag has an empty metavar (no ``<bool>`` in ``--help``);
every option taking a value names it (``-k K``, ``--where JSON``); the
seismic, hybrid and PRF options sit in their own help panels.
"""
from pathlib import Path
from typing import Annotated, Optional

import typer

SEISMIC = "Seismic search (a seismic index; with --hybrid, its sparse list)"
HYBRID = "Hybrid search (fuse the index's sparse, dense and BM25 lists)"
FEEDBACK = "Pseudo-relevance feedback"
OUTPUT = "Output"
INFERENCE = "Inference (how the models run)"


def flag(*decls: str, help: str, **kwargs) -> typer.models.OptionInfo:
    """A boolean option that takes no value."""
    return typer.Option(*decls, help=help, metavar="", **kwargs)


def k_option(help: str) -> typer.models.OptionInfo:
    """``-k/--k``: the same spelling on every command that takes a number of hits."""
    return typer.Option("-k", "--k", min=1, metavar="K", help=help)


IndexDir = Annotated[Path, typer.Argument(metavar="INDEX", help="index directory", show_default=False)]
Quiet = Annotated[bool, flag("--quiet", "-q", help="no progress bars (lsr's or the libraries')")]
Overwrite = Annotated[bool, flag("--overwrite", help="replace an existing output folder")]
Split = Annotated[Optional[str], typer.Option("--split", metavar="NAME", help="qrels split of a BEIR folder")]
MaxLength = Annotated[int, typer.Option("--max-length", min=1, metavar="N", help="tokens per text (longer ones "
                                                                                    "are truncated)")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, metavar="N", help="texts per forward pass")]
Where = Annotated[Optional[str], typer.Option(
    "--where", metavar="JSON", help='metadata filter, e.g. \'{"year": 2020}\' or '
    '\'{"doc_id": {"$in": ["1", "2"]}}\' (docs/rag.md)')]

# ------------------------------------------------------------------ inference
EncodeBackend = Annotated[Optional[str], typer.Option(
    "--backend", metavar="torch|onnx|onnx-int8", rich_help_panel=INFERENCE,
    help="inference backend: torch, or ONNX Runtime on the model's exported graph (exported once, cached; "
         "onnx-int8: quantised, faster, approximate); recorded in the output (default: torch)")]
SearchBackend = Annotated[Optional[str], typer.Option(
    "--backend", metavar="torch|onnx|onnx-int8", rich_help_panel=INFERENCE,
    help="inference backend of the query models (default: the one the index records)")]
Threads = Annotated[Optional[int], typer.Option(
    "--threads", min=1, metavar="N", rich_help_panel=INFERENCE,
    help="intra-op threads of the models (default: the cores lsr may use; torch: 1 for a single query)")]
Device = Annotated[Optional[str], typer.Option("--device", metavar="cpu|cuda[:N]", rich_help_panel=INFERENCE,
                                               help="where the models run (default: cpu)")]


def check_inference(backend: Optional[str], threads: Optional[int], device: Optional[str],
                    index_dir: Optional[Path] = None) -> None:
    """Refuse a bad --backend or --device spelling, and with ``index_dir`` a device that the backends its
    lists will run on (the given one, else each list's recorded one) cannot use, before any model loads."""
    from ..retrieval.inference import check_device
    from ..retrieval.inference import check_inference as check
    check(backend, threads, device, default=None)
    if device is None or index_dir is None:
        return
    from ..index.info import index_info
    info = index_info(index_dir)
    recorded = [d.get("backend") or "torch" for d in (info["encoder"], info["dense"])
                if d is not None and d.get("kind") != "bm25"]
    for name in {backend} if backend else set(recorded):
        check_device(device, name)


def refuse_inference_without_model(index_dir: Path, searcher, config, **given) -> None:
    """Refuse --backend / --threads / --device on a search that runs no model (a BM25 index's sparse list
    alone, or with its BM25 list), naming the options."""
    named = ["--" + name for name, value in given.items() if value is not None]
    if not named or searcher.encoder_kind != "bm25" or (config is not None and "dense" in config.lists):
        return
    from ..errors import ParameterError
    verb = "applies" if len(named) == 1 else "apply"
    raise ParameterError(f"{', '.join(named)} {verb} to a neural model; {index_dir} is a BM25 index and this "
                         "search runs no model (--hybrid with its dense list would)")


# ---------------------------------------------------------------- seismic search
QueryCut = Annotated[Optional[int], typer.Option(
    "--query-cut", min=1, metavar="N", rich_help_panel=SEISMIC,
    help="query terms whose lists are visited (default: the index's, see `lsr tune`)")]
HeapFactor = Annotated[Optional[float], typer.Option(
    "--heap-factor", min=0.0, metavar="X", rich_help_panel=SEISMIC,
    help="skip a block whose summary scores below X times the k-th best (0: skip none)")]
Knn = Annotated[Optional[int], typer.Option(
    "--knn", min=0, metavar="N", rich_help_panel=SEISMIC,
    help="k-NN graph neighbours scored per hit (0: none; default: the index's)")]


def seismic_params(query_cut: Optional[int], heap_factor: Optional[float], knn: Optional[int]) -> dict:
    """The seismic search parameters given on the command line (None: the index's default)."""
    given = {"query_cut": query_cut, "heap_factor": heap_factor, "knn": knn}
    return {name: value for name, value in given.items() if value is not None}


# ----------------------------------------------------------------- hybrid search
Hybrid = Annotated[bool, flag(
    "--hybrid", rich_help_panel=HYBRID,
    help="fuse the index's lists with its tuned settings (`lsr tune-hybrid`) or the recommended default")]
Lists = Annotated[Optional[str], typer.Option(
    "--lists", metavar="LIST,...", rich_help_panel=HYBRID,
    help="the lists to fuse instead, e.g. sparse,dense,bm25 (sparse: the index itself)")]
Fusion = Annotated[Optional[str], typer.Option("--fusion", metavar="convex|rrf", rich_help_panel=HYBRID,
                                               help="fusion method")]
Norm = Annotated[Optional[str], typer.Option("--norm", metavar="minmax|zscore|none", rich_help_panel=HYBRID,
                                             help="score normalisation before a convex fusion")]
Weights = Annotated[Optional[str], typer.Option("--weights", metavar="W,...", rich_help_panel=HYBRID,
                                                help="one weight per fused list, e.g. 0.4,0.6")]


def _dense_moved(value: bool) -> bool:
    if value:
        raise typer.BadParameter("on search and eval the fused search is --hybrid (--lists sparse,dense picks "
                                 "the lists); --dense NAME is `lsr index`'s dense model")
    return value


# --dense names the dense model on `lsr index`; on search and eval it is refused with a pointer to --hybrid.
DenseMoved = Annotated[bool, typer.Option("--dense", hidden=True, metavar="", callback=_dense_moved)]

# ------------------------------------------------------------------ feedback
Prf = Annotated[Optional[str], typer.Option("--prf", metavar="after|before|both|none", rich_help_panel=FEEDBACK,
                                            help="pseudo-relevance feedback around fusion (none: off)")]
FbDocs = Annotated[Optional[int], typer.Option("--fb-docs", min=1, metavar="N", rich_help_panel=FEEDBACK,
                                               help="feedback documents")]
FbTerms = Annotated[Optional[int], typer.Option("--fb-terms", min=0, metavar="N", rich_help_panel=FEEDBACK,
                                                help="expansion terms (sparse lists)")]
PrfBeta = Annotated[Optional[float], typer.Option("--prf-beta", min=0.0, metavar="X", rich_help_panel=FEEDBACK,
                                                  help="weight of the feedback")]


def split_list(value: Optional[str]) -> Optional[list[str]]:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


def hybrid_config(index_dir: Path, hybrid: bool, lists: Optional[str], fusion: Optional[str],
                  norm: Optional[str], weights: Optional[str], prf: Optional[str], fb_docs: Optional[int],
                  fb_terms: Optional[int], prf_beta: Optional[float]):
    """The HybridConfig the options ask for (None: a plain sparse search)."""
    from ..errors import ParameterError
    from ..retrieval.hybrid import config_from_options
    try:
        w = [float(x) for x in split_list(weights)] if weights else None
    except ValueError:
        raise ParameterError(f"--weights {weights!r}: give numbers separated by commas") from None
    return config_from_options(index_dir, hybrid=hybrid, lists=split_list(lists), fusion=fusion, norm=norm,
                               weights=w, prf=prf, fb_docs=fb_docs, fb_terms=fb_terms, prf_beta=prf_beta)


def check_seismic_options(index_dir: Path, params: dict) -> None:
    """Refuse seismic options on an index type that does not take them, naming the options and the type."""
    if not params:
        return
    from .. import layout
    from ..errors import ParameterError
    from ..index import INDEX_TYPES, storage
    if layout.is_segmented(index_dir):  # the seismic segments take them (small ones are searched exactly)
        from ..index import commit as commits
        kinds = {s.get("index_type") for s in commits.newest(index_dir)["segments"]}
        index_type = "seismic" if "seismic" in kinds else "exact"
    else:
        index_type = storage.read_manifest(index_dir).get("index_type")
    cls = INDEX_TYPES.get(index_type)
    if cls is None:
        return  # load_index names the unknown type
    from ..index.params import names
    accepted = set(names(cls.SEARCH_PARAMS))
    refused = ["--" + name.replace("_", "-") for name in params if name not in accepted]
    if refused:
        verb = "applies" if len(refused) == 1 else "apply"
        article = "an" if index_type[:1] in "aeiou" else "a"
        raise ParameterError(f"{', '.join(refused)} {verb} to a seismic index; {index_dir} is {article} "
                             f"{index_type} index")
