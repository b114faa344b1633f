"""Building an index from a dataset: encode (resumably), index, and add the lists a hybrid search fuses.

The flow is data -> encoders -> index; the dense and BM25 lists are built
here too, beside the sparse index and in its document numbering.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from .. import layout
from ..atomic import INDEX_FORMAT, prepare_target
from ..data import Dataset, load_dataset
from ..errors import DataError, IndexError_, LsrError, ModelError, ParameterError
from ..index import INDEX_TYPES
from ..layout import partial_dir


def build_index(dataset: str | Dataset, model: str | None, output, index_type: str = "auto",
                max_length: int | None = None, batch_size: int | None = None, overwrite: bool = False,
                progress: bool = True, shard_size: int | None = None, split: str | None = None,
                keep_vectors: bool = True, params: dict | None = None, dense: str | None = None,
                dense_dtype: str | None = None, bm25: bool | None = None, backend: str | None = None,
                threads: int | None = None, device: str | None = None):
    """Encode a dataset (or reuse a folder written by ``lsr encode``) and build an index.

    Encoding goes to ``<output>.partial/vectors`` and resumes there after an
    interruption; the index appears at ``output`` only when complete. With
    ``dense`` (a sentence-transformers model, e.g. "minilm") the documents'
    dense embeddings are stored in ``<output>/dense`` (``dense_dtype``:
    float32, float16 or int8); with ``bm25`` a BM25 exact index of the same
    documents goes to ``<output>/lexical``: the lists
    :class:`lsr.retrieval.HybridSearcher` fuses. ``bm25`` defaults to on
    with ``dense`` (the recommended hybrid fuses all three), unless the
    index itself is BM25.

    Every option is checked before any encoding, and one that cannot apply is
    refused rather than ignored: ``params`` the index type does not take,
    ``dense_dtype`` without ``dense``, ``max_length`` / ``batch_size`` for
    BM25 (no model) or for a folder already encoded (its settings are fixed;
    so are ``shard_size`` and ``split`` there). Defaults for a neural model:
    ``max_length`` the one a model saved by ``lsr train`` / ``lsr compose`` records, else 256;
    ``batch_size`` 32, ``shard_size`` 10,000.

    ``backend`` ("torch", default, "onnx" or "onnx-int8": :mod:`lsr.encoders.backends`), ``threads``
    (intra-op threads; default the cores this process may use) and ``device`` ("cpu", "cuda", "cuda:N")
    say how the model and the dense model run. The backend is recorded in the manifest's "encoder"
    entry and the dense list's config, and searches use it by default. A folder from ``lsr encode``
    keeps the backend it records: there the three apply to the dense model only.

    ``index_type``: "auto" (default) builds an exact index for a collection of fewer than
    :data:`lsr.retrieval.segment.AUTO_EXACT_BELOW` documents (50,000) and a seismic one otherwise
    (seismic build ``params`` ask for seismic); "exact" or "seismic" forces either.

    Safe to point at a path in use: ``overwrite`` replaces only an lsr index, never the dataset or a
    folder holding it; a second build of the same ``output`` gets an IndexError (lock held for the
    whole run); a local ``model`` path is stored absolute, with its fingerprint.
    """
    from ..atomic import writer_lock

    output = Path(output)
    if index_type not in INDEX_TYPES and index_type != "auto":
        raise IndexError_(f"unknown index type {index_type!r} (choose from auto, {', '.join(INDEX_TYPES)})")
    refuse_overlap(output, dataset, IndexError_)
    with writer_lock(output, IndexError_):
        # Before any encoding, what publishing will check too: an interrupted swap repaired, dead builds'
        # temporaries deleted (their disk back), an existing output refused unless --overwrite and an lsr index.
        prepare_target(output, overwrite, IndexError_, INDEX_FORMAT, hint="use --overwrite to replace it")
        return _build(dataset, model, output, index_type, max_length, batch_size, overwrite, progress, shard_size,
                      split, keep_vectors, params, dense, dense_dtype, bm25, (backend, threads, device))


def _build(dataset, model, output: Path, index_type, max_length, batch_size, overwrite, progress, shard_size,
           split, keep_vectors, params, dense, dense_dtype, bm25, inference=(None, None, None)):
    from ..encoders.shards import encode_corpus, read_settings, shard_paths
    from ..index.docs import write_docstore
    from ..sparse import read_vectors

    requested = index_type
    # a typo fails now, not after the encoding
    INDEX_TYPES["seismic" if index_type == "auto" else index_type].check_build_params(params or {})
    if dense_dtype is not None and not dense:
        raise ParameterError("dense_dtype (--dense-dtype) applies to the dense list: give dense (--dense MODEL)")
    dense_dtype = dense_dtype or "float32"

    if dense:  # fail before the (long) sparse encoding, not after it
        from ..encoders.registry import resolve_model
        from ..index.dense import DTYPES
        if dense_dtype not in DTYPES:
            raise IndexError_(f"dense dtype {dense_dtype!r}; choose from {', '.join(DTYPES)}")
        resolve_model(dense, expect="dense", role="--dense")

    from ..encoders.bm25 import is_bm25_name
    lexical_model = bool(model) and is_bm25_name(model)
    if bm25 is None:
        bm25 = bool(dense) and not lexical_model
    pre_encoded = read_settings(Path(dataset)) if isinstance(dataset, (str, Path)) and Path(dataset).is_dir() else None
    if not dense and (pre_encoded is not None or lexical_model):  # no model runs: how it would run cannot apply
        _refuse_given(f"{dataset} is already encoded (its vectors keep the backend they record)"
                      if pre_encoded is not None else f"{model!r} has no neural model",
                      backend=inference[0], threads=inference[1], device=inference[2])
    from .inference import check_inference
    backend, threads, device = check_inference(*inference)  # a bad name or an absent GPU fails before encoding
    if pre_encoded is not None:
        # A folder written by `lsr encode`: index its vectors as they are.
        if not pre_encoded.get("complete"):
            raise DataError(f"{dataset}: encoding is incomplete; rerun `lsr encode` to finish it")
        if model and stored_model_name(model) != stored_model_name(pre_encoded["model"]):
            raise ModelError(f"{dataset} was encoded with {pre_encoded['model']!r}, not {model!r}")
        if pre_encoded.get("kind") == "bm25":
            raise DataError(f"{dataset}: BM25 vectors need the statistics of their corpus; "
                            "index the dataset itself with --model bm25")
        _refuse_given(f"{dataset} is already encoded (its settings are in its encode.json)",
                      max_length=max_length, batch_size=batch_size, shard_size=shard_size, split=split)
        shards, encoder_info = shard_paths(Path(dataset)), pre_encoded
        try:
            docs_source = load_dataset(pre_encoded["dataset"])
        except DataError:
            docs_source = None  # no doc store if the original corpus is gone
        vectors_dir = None
    else:
        from ..encoders import load_encoder
        from ..encoders.bm25 import BM25Encoder, parse_bm25_name
        from ..encoders.fingerprint import model_fingerprint
        if not model:
            raise ModelError("no model given (use --model, e.g. --model splade-tiny)")
        model = stored_model_name(model)  # a relative path means the same folder whatever the searcher's cwd
        model_fp = model_fingerprint(model)
        ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, split=split)
        bm25_options = parse_bm25_name(model)
        if bm25_options is not None:  # lexical: no model, statistics fitted on this corpus and saved with the index
            _refuse_given(f"{model!r} has no neural model", max_length=max_length, batch_size=batch_size)
            encoder = BM25Encoder.fit((d.full_text for d in ds.docs()), progress=progress,
                                     corpus=str(dataset) if not isinstance(dataset, Dataset) else ds.name, **bm25_options)
            encoder.name = model
        else:
            encoder = load_encoder(model, max_length=max_length or recorded_model_max_length(model) or 256,
                                   batch_size=batch_size or 32, backend=backend, threads=threads, device=device)
        vectors_dir = partial_dir(output) / layout.VECTORS_DIR
        # The .partial folder is this build's scratch: other content or settings restart it (with a warning).
        shards = encode_corpus(ds, encoder, vectors_dir, shard_size=shard_size or 10000, progress=progress,
                               dataset_name=str(dataset) if not isinstance(dataset, Dataset) else ds.name,
                               restart=True, model_fingerprint=model_fp)
        encoder_info, docs_source = read_settings(vectors_dir), ds

    ids, vectors = read_vectors(shards)
    if index_type == "auto":  # by size (OpenSearch's approximate_threshold): small collections are searched exactly
        from .segment import AUTO_EXACT_BELOW
        index_type = "seismic" if params or len(ids) >= AUTO_EXACT_BELOW else "exact"
    # Every index type's build() takes ``progress`` (the exact index has nothing long to show).
    index = INDEX_TYPES[index_type].build(vectors, ids, progress=progress, **(params or {}))
    kind = encoder_info.get("kind", "splade")
    meta = {"encoder": {"name": encoder_info["model"], "kind": kind,
                        "max_length": encoder_info["max_length"],
                        **({"fingerprint": encoder_info["model_fingerprint"]}
                           if encoder_info.get("model_fingerprint") else {}),
                        # BM25 runs no model; vectors encoded before backends were recorded came from torch
                        **({"backend": encoder_info.get("backend", "torch")} if kind != "bm25" else {})},
            "dataset": encoder_info.get("dataset"), "requested_type": requested}

    if (dense or bm25) and docs_source is None:
        raise DataError(f"{dataset}: the original corpus is needed for --dense / --bm25 and was not found")

    def extras(tmp: Path):
        if dense or bm25:
            texts = _texts_in_index_order(docs_source, index.doc_ids)
        if dense:
            from ..encoders.dense import DenseEncoder
            from ..index.dense import DenseIndex
            enc = DenseEncoder(dense, device=device, backend=backend, threads=threads)
            emb = enc.encode_documents(texts, progress=progress)
            emb[[i for i, t in enumerate(texts) if not t.strip()]] = 0  # an empty document scores 0 for any query
            DenseIndex.build(emb, dense_dtype, model=dense, backend=enc.backend).save(tmp / layout.DENSE_DIR)
        if bm25:
            # inside this build's temporary folder: under its lock already, nothing there to protect
            _build(docs_source, "bm25", tmp / layout.LEXICAL_DIR, "exact", max_length=None, batch_size=None,
                   overwrite=False, progress=progress, shard_size=None, split=None, keep_vectors=False, params=None,
                   dense=None, dense_dtype=None, bm25=False)
        if encoder_info.get("kind") == "bm25":  # never pre-encoded (refused above): the encoder is at hand
            encoder.save(tmp / layout.BM25_DIR)
        if docs_source is not None:
            write_docstore(tmp, docs_source.docs(), index.doc_ids)
        if keep_vectors and vectors_dir is not None:
            # Copy, not move: if the save fails after this, the encoded
            # shards must still be in .partial for the next attempt.
            shutil.copytree(vectors_dir, tmp / layout.VECTORS_DIR)

    index.save(output, overwrite=overwrite, meta=meta, extra_writer=extras)
    if vectors_dir is not None:
        shutil.rmtree(partial_dir(output), ignore_errors=True)
    return index


def stored_model_name(model: str) -> str:
    """``model`` as an index records it: a local folder by its absolute path (resolved now, against this
    working directory), any other name as given."""
    from ..encoders.names import describe
    try:
        d = describe(model)
    except LsrError:
        return model
    return str(d.path) if d.source == "local" and d.path is not None else model


def recorded_model_max_length(model: str) -> int | None:
    from ..encoders.names import describe
    from ..encoders.splade import recorded_max_length
    d = describe(model)
    return recorded_max_length(d.path) if d.path is not None and d.kind not in ("bm25", "composition") else None


def _local_paths(dataset) -> list[Path]:
    """The local files and folders ``dataset`` (a spec or a Dataset) reads from."""
    if isinstance(dataset, (str, os.PathLike)):
        p = Path(dataset).expanduser()
        return [p] if p.exists() else []
    dataset = getattr(dataset, "base", dataset)
    found = [getattr(dataset, a, None) for a in ("folder", "corpus")]
    return [Path(p) for p in found if p is not None]


def refuse_overlap(output, dataset, error: type[LsrError] = IndexError_, option: str = "output") -> None:
    """Refuse an ``output`` that is, contains or lies inside the dataset's folder or file: replacing or
    restarting it would delete the data being read."""
    out = Path(output).expanduser().resolve()
    for src in _local_paths(dataset):
        src = src.resolve()
        if out == src:
            how = "is"
        elif out in src.parents:
            how = "contains"
        elif src in out.parents:
            how = "lies inside"
        else:
            continue
        raise error(f"the {option} {output} {how} the dataset {src} being read; choose an {option} folder "
                    "outside it")


def _texts_in_index_order(source, doc_ids) -> list[str]:
    """The documents' texts in the index's document numbering (what dense rows must follow)."""
    texts = {}
    for d in source.docs():
        texts[d.doc_id] = d.full_text
    ids = doc_ids.take(np.arange(len(doc_ids), dtype=np.int64))
    missing = [str(i) for i in ids if str(i) not in texts]
    if missing:
        raise DataError(f"document {missing[0]!r} of the index is not in the corpus {getattr(source, 'name', '')!r}")
    return [texts[str(i)] for i in ids]


def _refuse_given(why: str, **options) -> None:
    """Refuse options that were given (not None) but cannot apply, naming them and why."""
    given = [name for name, value in options.items() if value is not None]
    if given:
        raise ParameterError(f"{', '.join(given)} cannot apply: {why}")
