"""What every index type shares: doc ids, vocabulary, persistence, query checks.

A subclass names its arrays (``ARRAYS``), its parameters (``BUILD_PARAMS``,
``SEARCH_PARAMS``: frozen dataclasses, see params.py), and implements
``_search(queries, k, threads, scores, docs, allowed=None, <its search
parameters>)`` writing internal doc numbers and scores; everything else
(parameter names checked, atomic save, verified load, id mapping) is here.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..errors import IndexError_, QueryError
from ..layout import VOCAB as VOCAB_FILE
from ..sparse import SparseVectors, Vocabulary, as_sparse_vectors
from . import bounds, storage
from . import params as index_params
from .docs import DocIds
from .params import NoParams

# The kernels' "no filter" (an empty mask): one shared array, so numba sees
# the same argument types with and without a filter and compiles once.
NO_FILTER = np.zeros(0, dtype=np.bool_)


def valid_k(k) -> int:
    """``k`` as an int; QueryError for a k that is not an integer >= 1 (True is not a k). Every front door
    (indexes, dense list, Searcher, HybridSearcher, Retriever) checks k with this."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise QueryError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def resolve_threads(threads: int | None) -> int:
    if threads == 1:  # the single-query path: no numba lookup
        return 1
    import numba
    return max(1, min(threads, numba.config.NUMBA_NUM_THREADS)) if threads else numba.config.NUMBA_NUM_THREADS


class FrontDoors:
    """What every searchable index offers on top of its ``search_numbers``, ``doc_ids`` and ``len``: a
    one-folder index (:class:`BaseIndex`) and a segmented one (lsr.index.segmented) share these."""

    def check_k(self, k) -> int:
        """``k`` as an int, clamped to the number of documents (as Lucene does: ``k=10**12`` allocates
        nothing huge); QueryError for a k that is not an integer >= 1."""
        return min(valid_k(k), len(self))

    def check_allowed(self, allowed) -> np.ndarray:
        """The ``allowed`` mask as a contiguous bool array, one entry per document; QueryError otherwise."""
        allowed = np.asarray(allowed)
        if allowed.dtype != np.bool_ or allowed.shape != (len(self),):
            raise QueryError(f"allowed must be a bool array of shape ({len(self)},), "
                             f"got {allowed.dtype} {allowed.shape}")
        return np.ascontiguousarray(allowed)

    def batch_search(self, queries, k: int = 10, threads: int | None = None, **params):
        """(doc_ids, scores) arrays of shape (n_queries, k). Empty slots: id '' and score -inf."""
        docs, scores = self.search_numbers(queries, k, threads, **params)
        return self.doc_ids.take(docs), scores

    def search(self, query, k: int = 10, **params):
        """One query (a 1-row SparseVectors or scipy row): (doc_ids, scores) of shape (k,)."""
        params.setdefault("threads", 1)
        docs, scores = self.search_numbers(query, k, **params)
        if docs.shape[0] != 1:
            raise QueryError(f"search() takes one query, got {docs.shape[0]}; use batch_search()")
        return self.doc_ids.take(docs[0]), scores[0]


class BaseIndex(FrontDoors):
    index_type = ""
    ARRAYS: tuple[str, ...] = ()
    FORMAT_VERSION = 1  # the layout this class writes; bump when ARRAYS or their meaning change
    READABLE_VERSIONS: tuple[int, ...] = (1,)  # layouts this class can still load
    # Arrays an older layout lacks: loaded empty (of this dtype) when the
    # manifest does not list them.
    OPTIONAL_ARRAYS: dict = {}
    # The parameters build() and search take beyond the common ones (vectors,
    # doc ids, k, threads, allowed, progress): a name that is not a field is
    # refused, never dropped.
    BUILD_PARAMS: type = NoParams
    SEARCH_PARAMS: type = NoParams

    def __init__(self, arrays: dict, doc_ids: DocIds, vocab: Vocabulary, params: dict | None = None,
                 manifest: dict | None = None, path: Path | None = None):
        for name in self.ARRAYS:
            setattr(self, name, arrays[name])
        self.doc_ids = doc_ids
        self.vocab = vocab
        self.params = dict(params or {})
        self.manifest = manifest or {}
        self.path = path

    def __len__(self) -> int:
        return len(self.doc_ids)

    @staticmethod
    def _doc_ids_for(doc_ids, n_vectors: int) -> DocIds:
        """External ids for a build: the given ones (one per vector) or "0", "1", ..."""
        ids = DocIds.from_list(doc_ids if doc_ids is not None else [str(i) for i in range(n_vectors)])
        if len(ids) != n_vectors:
            raise ValueError(f"{len(ids)} doc ids for {n_vectors} vectors")
        return ids

    @property
    def n_postings(self) -> int:
        raise NotImplementedError

    # ------------------------------------------------------------ parameters
    # For upper layers to check names against an index type before long work
    # (encoding a corpus, loading a model), without an index at hand.
    @classmethod
    def check_build_params(cls, given) -> None:
        """Raise :class:`lsr.errors.ParameterError` for a name in ``given`` that ``build`` does not take."""
        index_params.check(given, cls.BUILD_PARAMS, f"{cls.index_type} build")

    @classmethod
    def check_search_params(cls, given) -> None:
        """Raise :class:`lsr.errors.ParameterError` for a name in ``given`` that search does not take."""
        index_params.check(given, cls.SEARCH_PARAMS, f"{cls.index_type} search")

    # ------------------------------------------------------------ persistence
    def save(self, path, overwrite: bool = False, meta: dict | None = None, extra_writer=None,
             vocab_file: tuple | None = None, unpublished: bool = False) -> Path:
        """Write the index atomically. ``extra_writer(tmp_dir)`` may add files (doc store, vectors).
        ``vocab_file``: (path, its manifest description) of an immutable vocab.json of this same vocabulary
        (another verified segment's), hard-linked instead of writing and hashing 30,000 tokens again.
        ``unpublished``: write straight into ``path``, a segment folder no commit refers to yet (the commit
        that lists it publishes it; see :func:`lsr.atomic.unpublished_dir`), instead of a temporary
        folder swapped in."""
        from ..atomic import unpublished_dir
        path = Path(path)
        known = {}
        with (unpublished_dir(path) if unpublished else storage.atomic_dir(path, overwrite)) as tmp:
            for name in self.ARRAYS:
                storage.save_array(tmp, name, getattr(self, name))
            self.doc_ids.save(tmp)
            try:
                if vocab_file is None:
                    raise OSError
                os.link(vocab_file[0], tmp / VOCAB_FILE)
                known[VOCAB_FILE] = vocab_file[1]
            except OSError:
                (tmp / VOCAB_FILE).write_text(self.vocab.to_json())
            if extra_writer is not None:
                extra_writer(tmp)
            info = {"vocab": {"size": self.vocab.size, "fingerprint": self.vocab.fingerprint},
                    "counts": {"docs": len(self), "postings": self.n_postings},
                    "params": self.params}
            info.update(meta or {})
            self.manifest = storage.write_manifest(tmp, self.index_type, self.FORMAT_VERSION, info, known)
        self.path = path
        return path

    @classmethod
    def load(cls, path, verify=True, manifest: dict | None = None):
        """Open the index at ``path``, verified (``verify``: True/"full" hashes every byte, False/"quick" only
        sizes, headers and each file's first and last 64 KiB; both check the manifest and the arrays' bounds)."""
        path = Path(path)
        level = storage.verify_level(verify)
        manifest = manifest or storage.read_manifest(path)
        if manifest["index_type"] != cls.index_type:
            raise IndexError_(f"{path} is a {manifest['index_type']!r} index, not {cls.index_type!r}")
        storage.check_version(path, manifest, cls.READABLE_VERSIONS)
        bounds.check_counts(path, manifest)
        cls._check_manifest(path, manifest)
        storage.verify_files(path, manifest, level)
        try:
            vocab = Vocabulary.from_json((path / VOCAB_FILE).read_text())
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise IndexError_(f"{path / VOCAB_FILE}: unreadable vocabulary ({e}); rebuild the index") from None
        size = (manifest.get("vocab") or {}).get("size")
        if size is not None and size != vocab.size:
            raise IndexError_(f"{path / VOCAB_FILE}: {vocab.size} terms, the manifest says {size}; rebuild the index")
        listed = manifest["files"]
        arrays = {name: (np.zeros(0, dtype=cls.OPTIONAL_ARRAYS[name])
                         if name in cls.OPTIONAL_ARRAYS and f"{name}.npy" not in listed
                         else storage.load_array(path, name)) for name in cls.ARRAYS}
        for name, a in arrays.items():
            if a.ndim != 1:
                raise IndexError_(f"{path / (name + '.npy')}: {a.ndim}-dimensional, expected 1 (corrupt index)")
        index = cls(arrays, DocIds.load(path), vocab, manifest.get("params"), manifest, path)
        if len(index.doc_ids) != manifest["counts"]["docs"]:
            raise IndexError_(f"{path}: {len(index.doc_ids)} doc ids, manifest says {manifest['counts']['docs']}")
        index._check_arrays(path)
        return index

    @classmethod
    def _check_manifest(cls, path: Path, manifest: dict) -> None:
        """Subclasses range-check the manifest values they use (stored search defaults)."""

    def _check_arrays(self, path: Path) -> None:
        """Subclasses verify array shapes against each other (corruption that keeps sizes)."""

    def _scratch(self):
        """This thread's search scratch, made by ``_new_scratch`` on first use and kept between calls.

        Allocating a collection-sized buffer per query costs more than a short
        query's search on a large collection; per thread, concurrent searches
        never share one.
        """
        try:
            local = self._local
        except AttributeError:
            local = self.__dict__.setdefault("_local", threading.local())
        if not hasattr(local, "ready"):
            self._new_scratch(local)
            local.ready = True
        return local

    def _new_scratch(self, local) -> None:
        """Subclasses put their per-thread buffers on ``local``."""

    # ---------------------------------------------------------------- search
    def check_queries(self, queries) -> SparseVectors:
        if not isinstance(queries, SparseVectors):
            # Unnamed columns (scipy, torch) are taken to be the index's
            # vocabulary when the width matches; otherwise refused below.
            width = queries.shape[-1]
            queries = as_sparse_vectors(queries, self.vocab if width == self.vocab.size else None)
        q = queries
        if q.vocab.size != self.vocab.size:
            raise QueryError(f"query vectors have dimension {q.vocab.size}, the index has {self.vocab.size}")
        if q.vocab is not self.vocab and q.vocab.tokens is not None and self.vocab.tokens is not None \
                and q.vocab.fingerprint != self.vocab.fingerprint:
            raise QueryError("query vectors use a different vocabulary than the index (encoded with another model?)")
        return q


    def search_numbers(self, queries, k: int = 10, threads: int | None = None, allowed=None, **params):
        """Top-k internal doc numbers and scores, shape (n_queries, min(k, len(index))); -1 / -inf pad.

        ``allowed`` (a bool array, one entry per document, e.g. from
        :func:`lsr.index.filters.compile_where`) restricts the search to the
        documents it marks: the kernels skip the others while scanning, so
        the top k are the best *allowed* documents, not a post-filtered top k.
        ``params`` are the fields of ``SEARCH_PARAMS``; another name raises
        :class:`lsr.errors.ParameterError`.
        """
        self.check_search_params(params)
        k = self.check_k(k)
        if allowed is not None:
            params["allowed"] = self.check_allowed(allowed)
        q = self.check_queries(queries)
        scores = np.empty((len(q), k), dtype=np.float32)
        docs = np.empty((len(q), k), dtype=np.int64)
        if len(q) and k:
            self._search(q, k, resolve_threads(threads), scores, docs, **params)
        return docs, scores

    def _search(self, q: SparseVectors, k: int, threads: int, scores, docs, allowed=None) -> None:
        """Fill ``scores`` and ``docs`` (n_queries x k).

        A subclass adds the fields of its ``SEARCH_PARAMS`` as keyword
        arguments (search_numbers has checked the names); none takes
        ``**kwargs``, so nothing is dropped unseen.
        """
        raise NotImplementedError



def run_kernel(serial, parallel, threads: int, n_queries: int, *args) -> None:
    """Call the serial kernel for one query or one thread, else the parallel one."""
    import numba
    if serial is not None and (threads == 1 or n_queries == 1):
        serial(*args)
        return
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        parallel(*args)
    finally:
        numba.set_num_threads(old)
