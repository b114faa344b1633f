"""End-to-end flows: dataset -> encoder -> index, and text -> hits -> metrics.

The CLI is a thin layer over these functions; the index package stays
torch-free, and the encoder is loaded only when a query has to be encoded.
"""
from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import Dataset, load_dataset
from .errors import DataError, IndexError_, ModelError, QueryError
from .index import INDEX_TYPES, DocStore, load_index


def _partial_dir(output: Path) -> Path:
    return output.parent / f"{output.name}.partial"


def build_index(dataset: str | Dataset, model: str | None, output, index_type: str = "seismic",
                max_length: int = 256, batch_size: int = 32, overwrite: bool = False,
                progress: bool = True, shard_size: int = 10000, split: str | None = None,
                keep_vectors: bool = True, params: dict | None = None, dense: str | None = None,
                dense_dtype: str = "float32", bm25: bool | None = None):
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
    """
    from .encoders.shards import encode_corpus, read_settings, shard_paths
    from .index.docs import write_docstore
    from .sparse import read_vectors

    output = Path(output)
    if index_type not in INDEX_TYPES:
        raise IndexError_(f"unknown index type {index_type!r} (choose from {', '.join(INDEX_TYPES)})")
    if output.exists() and not overwrite:
        raise IndexError_(f"{output} already exists (use --overwrite to replace it)")

    if dense:  # fail before the (long) sparse encoding, not after it
        from .encoders.registry import resolve_model
        from .retrieval.dense import DTYPES
        if dense_dtype not in DTYPES:
            raise IndexError_(f"dense dtype {dense_dtype!r}; choose from {', '.join(DTYPES)}")
        kind = resolve_model(dense).kind
        if kind not in (None, "dense"):
            raise ModelError(f"--dense {dense!r} is a {kind} model, not a dense bi-encoder (e.g. minilm)")

    if bm25 is None:
        from .retrieval.bm25 import is_bm25_name
        bm25 = bool(dense) and not (model and is_bm25_name(model))
    pre_encoded = read_settings(Path(dataset)) if isinstance(dataset, (str, Path)) and Path(dataset).is_dir() else None
    if pre_encoded is not None:
        # A folder written by `lsr encode`: index its vectors as they are.
        if not pre_encoded.get("complete"):
            raise DataError(f"{dataset}: encoding is incomplete; rerun `lsr encode` to finish it")
        if model and model != pre_encoded["model"]:
            raise ModelError(f"{dataset} was encoded with {pre_encoded['model']!r}, not {model!r}")
        if pre_encoded.get("kind") == "bm25":
            raise DataError(f"{dataset}: BM25 vectors need the statistics of their corpus; "
                            "index the dataset itself with --model bm25")
        shards, encoder_info = shard_paths(Path(dataset)), pre_encoded
        try:
            docs_source = load_dataset(pre_encoded["dataset"])
        except DataError:
            docs_source = None  # no doc store if the original corpus is gone
        vectors_dir = None
    else:
        from .encoders import load_encoder
        from .retrieval.bm25 import BM25Encoder, parse_bm25_name
        if not model:
            raise ModelError("no model given (use --model, e.g. --model splade-tiny)")
        ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, split=split)
        bm25_options = parse_bm25_name(model)
        if bm25_options is not None:  # lexical: no model, statistics fitted on this corpus and saved with the index
            encoder = BM25Encoder.fit((d.full_text for d in ds.docs()), progress=progress, **bm25_options)
            encoder.name = model
        else:
            encoder = load_encoder(model, max_length=max_length, batch_size=batch_size)
        vectors_dir = _partial_dir(output) / "vectors"
        shards = encode_corpus(ds, encoder, vectors_dir, shard_size=shard_size, progress=progress,
                               dataset_name=str(dataset) if not isinstance(dataset, Dataset) else ds.name)
        encoder_info, docs_source = read_settings(vectors_dir), ds

    ids, vectors = read_vectors(shards)
    # Every index type's build() takes ``progress`` (the exact index has nothing long to show).
    index = INDEX_TYPES[index_type].build(vectors, ids, progress=progress, **(params or {}))
    meta = {"encoder": {"name": encoder_info["model"], "kind": encoder_info.get("kind", "splade"),
                        "max_length": encoder_info["max_length"]},
            "dataset": encoder_info.get("dataset")}

    if (dense or bm25) and docs_source is None:
        raise DataError(f"{dataset}: the original corpus is needed for --dense / --bm25 and was not found")

    def extras(tmp: Path):
        if dense or bm25:
            texts = _texts_in_index_order(docs_source, index.doc_ids)
        if dense:
            from .retrieval.dense import FOLDER, DenseEncoder, DenseIndex
            enc = DenseEncoder(dense)
            emb = enc.encode_documents(texts, progress=progress)
            DenseIndex.build(emb, dense_dtype, model=dense).save(tmp / FOLDER)
        if bm25:
            build_index(docs_source, "bm25", tmp / "lexical", index_type="exact", progress=progress,
                        keep_vectors=False)
        if encoder_info.get("kind") == "bm25":  # never pre-encoded (refused above): the encoder is at hand
            encoder.save(tmp / "bm25")
        if docs_source is not None:
            write_docstore(tmp, docs_source.docs(), index.doc_ids)
        if keep_vectors and vectors_dir is not None:
            # Copy, not move: if the save fails after this, the encoded
            # shards must still be in .partial for the next attempt.
            shutil.copytree(vectors_dir, tmp / "vectors")

    index.save(output, overwrite=overwrite, meta=meta, extra_writer=extras)
    if vectors_dir is not None:
        shutil.rmtree(_partial_dir(output), ignore_errors=True)
    return index


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


@dataclass
class Hit:
    """One search result; ``metadata`` holds the document store's other fields (often none)."""

    doc_id: str
    score: float
    title: str | None = None
    text: str | None = None
    metadata: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"doc_id": self.doc_id, "score": self.score}
        if self.title:
            d["title"] = self.title
        if self.metadata:
            d["metadata"] = self.metadata
        return d


def hits_for(doc_ids, docstore, numbers, scores) -> list[list[Hit]]:
    """(numbers, scores) of shape (n_queries, k) as Hits with the stored title, text and metadata,
    one list per query; -1 padding is dropped. Ids and documents are looked up once for the batch."""
    flat = sorted({int(n) for n in np.asarray(numbers).reshape(-1) if n >= 0})
    ids = dict(zip(flat, doc_ids.take(np.array(flat, dtype=np.int64)))) if flat else {}
    docs = dict(zip(flat, docstore.get(flat))) if docstore and flat else {}
    out = []
    for row_n, row_s in zip(numbers, scores):
        hits = []
        for n, s in zip(row_n, row_s):
            if n >= 0:
                d = docs.get(int(n))
                hits.append(Hit(str(ids[int(n)]), float(s), d["title"] if d else None, d["text"] if d else None,
                                d["metadata"] if d else {}))
        out.append(hits)
    return out


class Searcher:
    """An index plus the encoder recorded in it; the encoder loads on first query."""

    def __init__(self, index_dir, verify: bool = True, model: str | None = None):
        self.index = load_index(index_dir, verify=verify)
        self.index_dir = Path(index_dir)
        self.docstore = DocStore.load(self.index_dir)
        info = self.index.manifest.get("encoder") or {}
        self.encoder_kind = info.get("kind")
        self.model_name = model or info.get("name")
        self.max_length = int(info.get("max_length", 256))
        self._encoder = None
        self._lock = threading.Lock()
        self._masks: dict[str, np.ndarray] = {}  # recent filters' masks, by canonical JSON

    MASK_CACHE = 32

    def allowed(self, where: dict | None):
        """The bool mask (one entry per document) that ``where`` selects; None for no filter.

        Masks are cached: a RAG application tends to repeat a few filters,
        and evaluating one reads its columns from the document store.
        """
        if where is None or (isinstance(where, dict) and not where):
            return None  # {} filters nothing: the kernels' unfiltered path
        import json

        from .index.filters import compile_where
        try:
            key = json.dumps(where, sort_keys=True, default=str)
        except (TypeError, ValueError):
            key = None
        mask = self._masks.get(key) if key is not None else None
        if mask is None:
            from .index.docs import FilterColumns
            columns = FilterColumns(self.docstore, self.index.doc_ids)
            mask = compile_where(where, columns, len(self.index))
            mask.setflags(write=False)
            if key is not None:
                with self._lock:
                    if len(self._masks) >= self.MASK_CACHE:
                        self._masks.pop(next(iter(self._masks)))
                    self._masks[key] = mask
        return mask

    @property
    def encoder(self):
        with self._lock:
            if self._encoder is None:
                if not self.model_name:
                    raise ModelError(f"{self.index_dir} does not record its model; pass one explicitly")
                if self.encoder_kind == "bm25":
                    from .retrieval.bm25 import BM25Encoder  # the corpus statistics saved with the index
                    self._encoder = BM25Encoder.load(self.index_dir / "bm25")
                else:
                    # Queries only: a token-weight query side (inference-free) loads without torch.
                    from .encoders import load_query_encoder
                    self._encoder = load_query_encoder(self.model_name, max_length=self.max_length)
                if self._encoder.vocab.fingerprint != self.index.vocab.fingerprint:
                    raise ModelError(f"model {self.model_name!r} has a different vocabulary than "
                                     f"the index {self.index_dir}")
        return self._encoder

    def encode_queries(self, texts: Sequence[str]):
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise QueryError("query is empty" if len(texts) == 1 else f"query {i} is empty")
        return self.encoder.encode_queries(list(texts))

    def batch_search(self, texts: Sequence[str], k: int = 10, threads: int | None = None,
                     where: dict | None = None, **params):
        """(doc_ids, scores) arrays of shape (n_queries, k); ``params`` go to the index
        (query_cut, heap_factor for a seismic index; its stored defaults otherwise);
        ``where`` filters on metadata (:mod:`lsr.index.filters`)."""
        return self.index.batch_search(self.encode_queries(texts), k, threads=threads,
                                       allowed=self.allowed(where), **params)

    def search(self, text: str, k: int = 10, where: dict | None = None, **params) -> list[Hit]:
        numbers, scores = self.index.search_numbers(self.encode_queries([text]), k, threads=1,
                                                    allowed=self.allowed(where), **params)
        return hits_for(self.index.doc_ids, self.docstore, numbers, scores)[0]


def evaluate_index(searcher: Searcher, dataset: Dataset, metrics=None, k: int | None = None,
                   run_path=None, batch_size: int = 256, progress: bool = True, drop_self: bool = True,
                   per_query: bool = False, **params):
    """Search every judged query of ``dataset`` and compute the metrics
    (with ``per_query``: ``(means, {metric: {query_id: value}})``).

    ``drop_self`` applies BEIR's rule of discarding a hit whose doc id equals
    the query id (BEIR's default; turn it off for collections whose query and
    doc ids share a namespace by accident).
    """
    from tqdm.auto import tqdm

    from .eval import evaluate, parse_metrics, run_from_results, write_trec_run
    measures = parse_metrics(metrics)
    qrels = dataset.qrels()
    queries = [q for q in dataset.queries() if q.query_id in qrels]
    if not queries:
        raise DataError(f"dataset {dataset.name!r} has no queries with relevance judgements")
    if k is None:
        cutoffs = [getattr(m, "params", {}).get("cutoff") for m in measures]
        k = max([c for c in cutoffs if c] or [1000]) if all(cutoffs) else 1000
        k += 1  # room for the self-hit BEIR drops
    empty = [q.query_id for q in queries if not q.text.strip()]
    if empty:
        raise QueryError(f"dataset {dataset.name!r}: query {empty[0]!r} is empty")
    run = {}
    with tqdm(total=len(queries), unit="query", desc="searching", disable=not progress, mininterval=1.0) as bar:
        for start in range(0, len(queries), batch_size):
            part = queries[start:start + batch_size]
            ids, scores = searcher.batch_search([q.text for q in part], k, **params)
            run.update(run_from_results([q.query_id for q in part], ids, scores, drop_self=drop_self))
            bar.update(len(part))
    if run_path:
        write_trec_run(run_path, run)
    return evaluate(run, qrels, measures, per_query=per_query)
