"""Searcher: one index directory plus the query encoder it records."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import layout
from ..errors import ModelError, QueryError
from ..index import DocStore, load_index
from .hits import Hit, check_request, hits_for


class Searcher:
    """An index plus the encoder recorded in it; the encoder loads on first query."""

    def __init__(self, index_dir, verify=True, model: str | None = None, snapshot=None, sub: str | None = None,
                 backend: str | None = None, threads: int | None = None, device: str | None = None):
        """``snapshot`` and ``sub``: a segmented index's opened commit and the nested list to search
        ("lexical"), as :class:`HybridSearcher` opens its lists; by default the directory's newest commit.

        How the query model runs: ``backend`` ("torch", "onnx", "onnx-int8"; None: the one the index records,
        torch for an index that records none), ``threads`` (its intra-op threads; None: lsr's default, one
        for a single query) and ``device`` ("cpu", "cuda", "cuda:N"). A BM25 index runs no model: they do not
        apply there (:attr:`backend` is None). A bad backend name or an unavailable device raises ModelError
        here, before the first query."""
        from .inference import check_inference
        # names and spelling now; whether the backend can run on the device once the index says which backend
        self._backend, self.threads, self._device = check_inference(backend, threads, device, default=None)
        self.index_dir = Path(index_dir)
        self.snapshot, self.sub = snapshot, sub
        self._lock = threading.Lock()
        self._masks: dict[str, np.ndarray] = {}  # recent filters' masks, by canonical JSON
        for _ in range(3):  # a writer's first commit may swap a one-folder index while it opens: open again
            if self._open(verify, model):
                break
        else:
            from ..errors import IndexError_
            raise IndexError_(f"{self.index_dir} keeps being replaced while it opens; retry")

    def _open(self, verify, model) -> bool:
        """Open the index, its document store and (BM25) its statistics from one state of the folder;
        False if a one-folder index changed meanwhile."""
        if self.snapshot is None and layout.is_segmented(self.index_dir):
            from ..index.segmented import Snapshot
            self.snapshot = Snapshot(self.index_dir, verify)
        if self.snapshot is not None:
            self.index = self.snapshot.index(self.sub)
            self.docstore = self.snapshot.docstore() if not self.sub else None
        else:
            self.index = load_index(self.index_dir, verify=verify)
            if getattr(self.index, "snapshot", None) is not None:  # became segmented since the check above
                self.snapshot = self.index.snapshot
                return self._open(verify, model)
            self.docstore = DocStore.load(self.index_dir)
        info = self.index.manifest.get("encoder") or {}
        self.encoder_kind = info.get("kind")
        self.model_name = model or info.get("name")
        # The model's files when the index was built; None when a model is passed (used as given).
        self.model_fingerprint = None if model else info.get("fingerprint")
        self.max_length = int(info.get("max_length", 256))
        self._encoder = None
        self.backend = self.device = None  # BM25 runs no model
        if self.encoder_kind != "bm25":
            from .inference import query_backend
            self.backend, self.device = query_backend(self.index_dir, info, self._backend, self._device)
        if self.encoder_kind == "bm25":
            # Now, not at the first query: its statistics are files of this folder, which a writer's first
            # commit moves into a segment (a neural model lives elsewhere and loads lazily).
            try:
                self.encoder  # noqa: B018
            except ModelError:
                if self.snapshot is not None or self._same_folder():
                    raise
                return False
        return self.snapshot is not None or self._same_folder()

    def _same_folder(self) -> bool:
        """Whether a one-folder index is still the one opened (a writer's first commit swaps the folder for
        a segmented one: its document store and BM25 statistics move into a segment)."""
        import json
        try:
            now = json.loads((self.index_dir / layout.MANIFEST).read_text()).get("index_id")
        except (OSError, ValueError):
            return False
        return now == self.index.manifest.get("index_id")

    MASK_CACHE = 32

    @property
    def generation(self) -> int | None:
        """The commit generation searched (a segmented index), else None."""
        return self.snapshot.generation if self.snapshot is not None else None

    def close(self) -> None:
        """Release the commit this searcher holds (a segmented index's files may then be deleted)."""
        if self.snapshot is not None and self.sub is None:
            self.snapshot.close()

    def allowed(self, where: dict | None):
        """The bool mask (one entry per document) that ``where`` selects; None for no filter.

        Masks are cached: a RAG application tends to repeat a few filters,
        and evaluating one reads its columns from the document store.
        """
        if where is None or (isinstance(where, dict) and not where):
            return None  # {} filters nothing: the kernels' unfiltered path
        import json

        from ..index.filters import check_where, compile_where
        check_where(where)  # depth and size limits before json.dumps recurses into a hostile filter
        try:
            key = json.dumps(where, sort_keys=True, default=str)
        except (TypeError, ValueError):
            key = None
        mask = self._masks.get(key) if key is not None else None
        if mask is None:
            from ..index.docs import FilterColumns
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
                if self.encoder_kind == "bm25" and self.snapshot is not None:
                    # each segment's statistics, combined: global N, df and average length
                    from ..encoders.bm25 import BM25Encoder, combine
                    sub = self.sub or ""
                    encoders = [BM25Encoder.load(d / sub / layout.BM25_DIR) for d in self.snapshot.dirs]
                    self._encoder, self.index.query_scales = combine(encoders, str(self.index_dir))
                elif self.encoder_kind == "bm25":
                    from ..encoders.bm25 import BM25Encoder  # the corpus statistics saved with the index
                    self._encoder = BM25Encoder.load(self.index_dir / layout.BM25_DIR)
                else:
                    # Queries only: a token-weight query side (inference-free) loads without torch.
                    from ..encoders import load_query_encoder
                    self._encoder = load_query_encoder(self.model_name, max_length=self.max_length,
                                                       device=self.device, backend=self.backend,
                                                       threads=self.threads)
                    self._check_model()
                if self._encoder.vocab.fingerprint != self.index.vocab.fingerprint:
                    raise ModelError(f"model {self.model_name!r} has a different vocabulary than "
                                     f"the index {self.index_dir}")
        return self._encoder

    def _check_model(self) -> None:
        """Refuse a model whose files changed since the index was built (retrained in place, another
        model at the path): its queries would be encoded unlike the documents, and results silently worse."""
        if not self.model_fingerprint:
            return  # an index written before fingerprints were recorded
        from ..encoders.fingerprint import model_fingerprint
        now = model_fingerprint(self.model_name)
        if now != self.model_fingerprint:
            self._encoder = None
            raise ModelError(f"model {self.model_name!r} is not the one the index {self.index_dir} was built with "
                             f"(its files changed: fingerprint {now}, the index records {self.model_fingerprint}); "
                             "rebuild the index (from Python, Searcher(index, model=...) uses a model as given)")

    def encode_queries(self, texts: Sequence[str]):
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise QueryError("query is empty" if len(texts) == 1 else f"query {i} is empty")
        return self.encoder.encode_queries(list(texts))

    def search_numbers(self, texts: Sequence[str], k: int = 10, where: dict | None = None,
                       threads: int | None = None, **params):
        """Top-``k`` internal doc numbers and scores, arrays of shape (n_queries, k); -1 / -inf pad.

        ``params`` are the index type's search parameters
        (:attr:`index.SEARCH_PARAMS`: query_cut, heap_factor, knn for a
        seismic index, none for an exact one); a name the index type does not
        take raises :class:`lsr.errors.ParameterError`. ``where`` filters on
        metadata (:mod:`lsr.index.filters`) inside the scan.
        """
        check_request(texts, k)
        allowed = self.allowed(where)  # a bad filter fails before the model loads
        return self.index.search_numbers(self.encode_queries(texts), k, threads=threads, allowed=allowed, **params)

    def batch_search_ids(self, texts: Sequence[str], k: int = 10, where: dict | None = None,
                         threads: int | None = None, **params):
        """(doc_ids, scores) arrays of shape (n_queries, k), empty slots '' / -inf: for runs and
        evaluation, where building :class:`Hit` objects with stored text would be wasted work."""
        numbers, scores = self.search_numbers(texts, k, where, threads, **params)
        return self.index.doc_ids.take(numbers), scores

    def batch_search(self, texts: Sequence[str], k: int = 10, where: dict | None = None,
                     threads: int | None = None, **params) -> list[list[Hit]]:
        """Hits for each query (best first; fewer than ``k`` when fewer documents match)."""
        numbers, scores = self.search_numbers(texts, k, where, threads, **params)
        return hits_for(self.index.doc_ids, self.docstore, numbers, scores)

    def search(self, text: str, k: int = 10, where: dict | None = None, **params) -> list[Hit]:
        """Hits for one query text, best first."""
        return self.batch_search([text], k, where, 1, **params)[0]

