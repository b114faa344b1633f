"""`lsr.Retriever`: the search API a RAG application calls.

    from lsr import Retriever
    r = Retriever.load("indexes/scifact")              # sparse, or mode="hybrid" / "dense"
    for hit in r.search("vitamin D and bone density", k=5):
        print(hit.doc_id, hit.score, hit.title, hit.text[:80])

Loading opens the index's memory-mapped arrays and nothing else: the query
encoder (and the dense model, for hybrid) loads on the first query, so a
process that only serves a torch-free inference-free index never imports
torch. One Retriever may be shared by any number of threads: the index
kernels keep per-thread scratch space and the lazy model loads are locked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import QueryError
from .hits import Hit, check_request

MODES = ("sparse", "hybrid", "dense")


class Retriever:
    """Search one index directory: its sparse list, its dense list, or the hybrid of its lists."""

    def __init__(self, index_dir, mode: str | None = None, config=None, verify=True, backend: str | None = None,
                 threads: int | None = None, device: str | None = None, **search_params):
        from .searcher import Searcher
        self._args = (mode, config, verify)
        # How the query models run (None: the backend each list records); kept by refresh() and with_params().
        self._inference = {"backend": backend, "threads": threads, "device": device}
        mode = mode or ("hybrid" if config is not None else "sparse")
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}; choose from {', '.join(MODES)}")
        if config is not None and mode != "hybrid":  # a config says what to fuse: only hybrid mode fuses
            raise ValueError(f"config applies to mode='hybrid', not mode={mode!r}")
        self.index_dir = Path(index_dir)
        self.mode = mode
        # The index type's search parameters (seismic: query_cut, heap_factor, knn), checked now, not at the first query.
        self.search_params = search_params
        if mode == "sparse" and config is None:
            self._searcher = Searcher(self.index_dir, verify=verify, **self._inference)
            self._searcher.index.check_search_params(search_params)
            self._hybrid = None
        else:
            from .hybrid import HybridConfig, HybridSearcher
            if config is None and mode == "dense":
                config = HybridConfig(lists=("dense",))
            self._hybrid = HybridSearcher(self.index_dir, config, verify=verify, **self._inference, **search_params)
            self._searcher = self._hybrid.main
        self.docstore = self._searcher.docstore

    @classmethod
    def load(cls, index_dir, mode: str | None = None, config=None, verify=True, backend: str | None = None,
             threads: int | None = None, device: str | None = None, **search_params) -> Retriever:
        """Open ``index_dir``. ``mode``: "sparse" (default), "hybrid" (default when ``config``, a
        :class:`HybridConfig`, is given) or "dense". ``verify``: True / "full" (default) hashes every byte
        of every index file (xxh3, tens of GB/s warm); False / "quick" checks sizes, headers and each file's first
        and last 64 KiB. Both check the manifest's checksum and the arrays' bounds (docs/index-format.md). ``search_params``: the index type's search
        parameters (query_cut, heap_factor, knn for seismic), checked here.

        How the query models run: ``backend`` ("torch", "onnx" or "onnx-int8"; None, the default: the one the
        index records for each list, torch where it records none), ``threads`` (their intra-op threads; None:
        lsr's default, one for a single query) and ``device`` ("cpu", "cuda", "cuda:N"). A bad backend or an
        unavailable device raises :class:`lsr.errors.ModelError` here."""
        return cls(index_dir, mode, config, verify, backend, threads, device, **search_params)

    def __len__(self) -> int:
        """The documents searchable (live ones, for an index with deletions)."""
        index = self._searcher.index
        return getattr(index, "n_live", len(index))

    @property
    def generation(self) -> int | None:
        """The commit searched (a segmented index: see :meth:`refresh`), else None."""
        return self._searcher.generation

    def refresh(self) -> bool:
        """See the index's newest commit (documents added, updated, deleted, merged since this Retriever
        opened it); True if it changed. Until then, and while other threads still search, answers come from
        the commit opened before: a snapshot, whose files no writer deletes while it is open."""
        from .. import layout
        from ..index import commit as commits
        if not layout.is_segmented(self.index_dir):
            return False  # a one-folder index never changes in place (a rebuild replaces the folder)
        gens = commits.generations(self.index_dir)
        if gens and gens[-1] == self.generation:
            return False
        mode, config, verify = self._args
        fresh = Retriever(self.index_dir, mode, config, verify, **self._inference, **self.search_params)
        old = self._searcher
        if old._encoder is not None and old.encoder_kind != "bm25" and fresh._searcher.model_name == old.model_name \
                and fresh._searcher.backend == old.backend:
            fresh._searcher._encoder = old._encoder  # the query model is the index's: no reload
        if self._hybrid is not None and fresh._hybrid is not None:
            for name, lst in self._hybrid._lists.items():
                new = fresh._hybrid._lists.get(name)
                if name == "dense" and new is not None and lst._encoder is not None and new.backend == lst.backend:
                    new._encoder = lst._encoder
        self.__dict__.update(fresh.__dict__)  # one assignment per attribute: a search in flight keeps its objects
        return True

    def close(self) -> None:
        """Release the commit held (a segmented index); searching after close is not supported."""
        self._searcher.close()

    def with_params(self, config=None, **search_params) -> Retriever:
        """This Retriever with other search parameters (they replace its own) and, in hybrid mode, another
        :class:`HybridConfig` over the lists it has open, sharing its open index, lists and models:
        ``r.with_params(query_cut=5).search(q)`` equals ``Retriever(dir, query_cut=5).search(q)`` without
        reloading anything. Parameters are checked here, as ``Retriever.load`` checks them."""
        import copy
        new = copy.copy(self)
        if self._hybrid is None:
            if config is not None:
                raise ValueError(f"config applies to mode='hybrid', not mode={self.mode!r}")
            self._searcher.index.check_search_params(search_params)
        else:
            new._hybrid = self._hybrid.derive(config, **search_params)
        new.search_params = search_params
        return new


    def get(self, doc_ids: Sequence[str]) -> list[dict]:
        """Stored documents by id: ``{"doc_id", "title", "text", "metadata"}`` each, in the order asked.

        Reads only those rows of the memory-mapped store, never the whole
        corpus. An unknown id raises KeyError naming it.
        """
        if isinstance(doc_ids, str):
            raise QueryError("get takes a list of doc ids")
        searcher = self._searcher  # once: a concurrent refresh() swaps it, ids and store must be one commit's
        if searcher.docstore is None:
            raise QueryError(f"{self.index_dir} has no document store (its corpus was not found when it was built)")
        ids = searcher.index.doc_ids
        numbers = []
        for d in doc_ids:
            try:
                numbers.append(ids.number_of(str(d)))
            except KeyError:
                raise KeyError(f"document {d!r} is not in the index {self.index_dir}") from None
        return searcher.docstore.get(numbers)

    def allowed(self, where: dict | None):
        """The document mask ``where`` selects (None: no filter); raises QueryError for a bad filter."""
        return self._searcher.allowed(where)

    @property
    def index(self):
        """The sparse index searched (doc ids, vocabulary, manifest)."""
        return self._searcher.index

    @property
    def metadata_fields(self) -> list[str]:
        """The metadata fields stored with the documents (what ``where`` can name, with doc_id and title)."""
        return self.docstore.metadata_fields if self.docstore else []

    def batch_search(self, queries: Sequence[str], k: int = 10, where: dict | None = None) -> list[list[Hit]]:
        """Top-``k`` hits for each query (fewer when the index holds fewer matching documents).

        ``where`` keeps only documents whose metadata match it, e.g.
        ``{"year": {"$gte": 2018}}`` (syntax: :mod:`lsr.index.filters`); the
        filter is applied inside the index scan, so the hits are the best k
        matching documents.
        """
        check_request(queries, k)
        if not queries:
            return []
        if self._hybrid is not None:
            return self._hybrid.batch_search(list(queries), k, where)
        return self._searcher.batch_search(list(queries), k, where, **self.search_params)

    def batch_search_ids(self, queries: Sequence[str], k: int = 10, where: dict | None = None):
        """(doc_ids, scores) arrays of shape (n_queries, k) (empty slots '' / -inf), for runs and evaluation."""
        check_request(queries, k)
        if self._hybrid is not None:
            return self._hybrid.batch_search_ids(list(queries), k, where)
        return self._searcher.batch_search_ids(list(queries), k, where, **self.search_params)

    def search(self, query: str, k: int = 10, where: dict | None = None) -> list[Hit]:
        if not isinstance(query, str):
            raise QueryError(f"query must be a string, got {type(query).__name__}")
        return self.batch_search([query], k, where)[0]

    def explain(self, query: str, doc_ids: Sequence[str], top: int = 10) -> list[dict]:
        """Why each document scores for ``query``: one ``{"doc_id", "score", "terms"}`` per id, in order.

        ``terms`` are the ``top`` largest contributions ``{"token", "query_weight", "doc_weight",
        "contribution"}`` (contribution = query weight × document weight, as the index's kernels multiply
        them), largest first; ``score`` is the sum of *all* the contributions: the document's sparse score
        (on an exact index the search's score, up to float32 rounding; a document sharing no token with the
        query scores 0 with no terms). The full query is used: a seismic search's ``query_cut`` and
        ``heap_factor`` decide which documents it scores, not their scores, so a seismic hit's score is this
        sum too (its forward index may hold float16 weights: those are the ones shown). In hybrid and dense
        mode the index's sparse list is explained, not the fused score. An unknown doc id raises KeyError
        naming it; an empty query or a ``top`` that is not an integer >= 1 raises QueryError.
        """
        from .explain import check_top, explain, numbers_of
        if not isinstance(query, str):
            raise QueryError(f"query must be a string, got {type(query).__name__}")
        if not query.strip():
            raise QueryError("query is empty")
        top = check_top(top)
        searcher = self._searcher  # once: a concurrent refresh() swaps it, numbers and index must be one commit's
        numbers = numbers_of(searcher.index, doc_ids, self.index_dir)
        return explain(searcher, [query], [numbers], top)[0]

    def doc_terms(self, doc_id: str, top: int = 20) -> list[dict]:
        """A document's ``top`` heaviest tokens in the index's sparse list, ``[{"token", "weight"}]``, heaviest
        first, with the weights its search scores with. An unknown doc id raises KeyError naming it."""
        from .explain import check_top, doc_terms, numbers_of
        top = check_top(top)
        if not isinstance(doc_id, str):
            raise QueryError(f"doc_id must be a string, got {type(doc_id).__name__}")
        searcher = self._searcher
        (number,) = numbers_of(searcher.index, [doc_id], self.index_dir)
        return doc_terms(searcher.index, number, top)
