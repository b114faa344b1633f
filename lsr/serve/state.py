"""What one server process holds: the index's Retrievers (one per mode, opened on first use and shared by
every request), the newest commit it has seen, the writer, the encoders of /encode and the RAG pipeline.

Every request searches through :meth:`lsr.Retriever.with_params`, so a request's results are those of
``lsr.Retriever(index, mode, config, **params)`` for the same request, without reopening anything.
Other processes (workers, `lsr add`) may commit to a segmented index; a process checks for a newer commit
at most every ``refresh_s`` seconds, and at once after its own writes.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ParameterError, QueryError

SPARSE_PARAMS = ("query_cut", "heap_factor", "knn")
FUSION_PARAMS = ("fusion", "norm", "weights", "rrf_k")


@dataclass
class ServeConfig:
    """How `lsr serve` runs one index (passed to each worker as JSON)."""

    index_dir: str
    mode: str | None = None  # default mode: hybrid when the index has a dense list, else sparse
    generator: str = "smollm2-135m"
    max_new_tokens: int = 160
    refresh_s: float = 1.0
    verify: str = "full"
    threads: int = 1  # concurrent CPU jobs (searches, encodes) per process; each uses one thread
    backend: str | None = None  # the query models' inference backend; None: the one the index records
    device: str | None = None  # "cpu", "cuda", "cuda:N"; None: cpu
    # Intra-op threads of each model call. A server process (`lsr serve`) runs ``threads`` jobs at once on one
    # thread each and sets 1 (lsr.serve.run); None (an app embedded in a program): lsr's default, as a Retriever.
    model_threads: int | None = None

    def to_json(self) -> dict:
        from dataclasses import asdict
        return asdict(self)


class ServerState:
    def __init__(self, config: ServeConfig):
        from ..retrieval.hybrid import available_lists
        self.config = config
        self.index_dir = Path(config.index_dir)
        self.lists = available_lists(self.index_dir)
        self.default_mode = config.mode or ("hybrid" if "dense" in self.lists else "sparse")
        self._retrievers: dict = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._checked = 0.0
        self._doc_encoder = None
        self._rag = None
        # Open (and verify) the index and load its query models now: a broken index or a missing model fails
        # at start, and the first request is not the slow one.
        self.retriever(self.default_mode).search("warm up", 1)

    # ------------------------------------------------------------ search
    def retriever(self, mode: str | None):
        from ..retrieval import Retriever
        mode = mode or self.default_mode
        if mode == "dense" and "dense" not in self.lists:
            raise QueryError(f"mode 'dense': the index {self.index_dir.name} has no dense list (lists: "
                             f"{', '.join(self.lists)})")
        if mode == "hybrid" and len(self.lists) < 2:
            raise QueryError(f"mode 'hybrid': the index {self.index_dir.name} has one list only (sparse); build it "
                             "with --dense MODEL (and/or --bm25) to fuse")
        self._maybe_refresh()
        with self._lock:
            r = self._retrievers.get(mode)
            if r is None:
                try:
                    r = Retriever.load(self.index_dir, mode=mode, verify=self.config.verify, **self.inference)
                except ValueError as e:
                    raise QueryError(str(e)) from None
                self._retrievers[mode] = r
        return r

    @property
    def inference(self) -> dict:
        """How the query models run: the configured backend (None: the index's), threads and device."""
        return {"backend": self.config.backend, "threads": self.config.model_threads, "device": self.config.device}

    def for_request(self, mode: str | None, params: dict | None):
        """The Retriever answering one request: the mode's, with the request's parameters; always a copy
        of its own, so that the whole request (hits, explanation, generation) reads one commit even when
        a refresh swaps the shared one meanwhile."""
        r = self.retriever(mode)
        params = {k: v for k, v in (params or {}).items() if v is not None}
        if not params:
            return r.with_params(**r.search_params)
        sparse = {k: params[k] for k in SPARSE_PARAMS if k in params}
        fusion = {k: params[k] for k in FUSION_PARAMS if k in params}
        config = None
        if fusion:
            if r.mode != "hybrid":
                raise ParameterError(f"params {', '.join(fusion)} apply to mode 'hybrid', not {r.mode!r}")
            if "norm" in fusion and fusion.get("fusion", r._hybrid.config.fusion) == "rrf":
                raise ParameterError("params.norm applies to convex fusion; rrf fuses ranks, not scores")
            try:
                config = replace(r._hybrid.config, **fusion)
            except (ValueError, TypeError) as e:
                raise ParameterError(f"params: {e}") from None
        try:
            return r.with_params(config, **sparse)
        except ValueError as e:
            raise ParameterError(f"params: {e}") from None

    def _served(self):
        """The default mode's Retriever as it is now (no refresh: cheap, for health and metrics)."""
        with self._lock:
            return self._retrievers[self.default_mode]

    @property
    def docs(self) -> int:
        """Documents searchable (live ones) in the commit served."""
        return len(self._served())

    @property
    def generation(self) -> int | None:
        return self._served().generation

    def _maybe_refresh(self, force: bool = False) -> None:
        """See a newer commit (at most every ``refresh_s``; at once with ``force``). One thread refreshes
        at a time; the others go on with what is open."""
        if not force and time.monotonic() - self._checked < self.config.refresh_s:
            return
        if not self._refresh_lock.acquire(blocking=force):
            return
        try:
            self._checked = time.monotonic()
            with self._lock:
                retrievers = list(self._retrievers.values())
            for r in retrievers:
                r.refresh()  # a no-op unless a newer commit exists; searches in flight keep their snapshot
        finally:
            self._refresh_lock.release()

    # ------------------------------------------------------------ writes
    def write(self, fn, merge: bool = True, wait_s: float = 10.0):
        """Run ``fn(writer)`` inside an IndexWriter and commit (one writer at a time in this process; another
        process's writer is waited for up to ``wait_s``), then serve the new commit at once."""
        from ..errors import IndexError_
        from ..retrieval.writer import IndexWriter
        deadline = time.monotonic() + wait_s
        with self._write_lock:
            while True:
                try:
                    # new documents are encoded on the backends the index records, whatever the queries use
                    with IndexWriter(self.index_dir, progress=False, merge=merge, threads=self.config.model_threads,
                                     device=self.config.device) as w:
                        fn(w)
                        w.commit()
                        report = dict(w.last_report)
                    break
                except IndexError_ as e:
                    if "another" not in str(e) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)  # another process is committing: wait for it
        self._maybe_refresh(force=True)
        return report

    # ------------------------------------------------------------ encode
    def encode(self, texts: list[str], side: str):
        """Sparse vectors of ``texts`` with the index's own model (its query or document side)."""
        searcher = self.retriever("sparse")._searcher
        if side == "query":
            return searcher.encode_queries(texts)
        for i, t in enumerate(texts):
            if not t.strip():
                raise QueryError(f"texts[{i}] is empty")
        if searcher.encoder_kind == "bm25":  # the statistics of the commit served now, not of an older one
            return searcher.encoder.encode_documents(list(texts))
        with self._lock:
            if self._doc_encoder is None:
                from ..encoders import load_encoder
                # the backend the queries use (the index's recorded one unless the server was given another)
                self._doc_encoder = load_encoder(searcher.model_name, max_length=searcher.max_length or 256,
                                                 **{**self.inference, "backend": searcher.backend,
                                                    "device": searcher.device})
            model = self._doc_encoder
        return model.encode_documents(list(texts))

    # ------------------------------------------------------------ RAG
    def rag(self, mode: str | None, k: int, budget: int, max_new_tokens: int | None = None):
        """A RAG pipeline over the mode's Retriever with the server's generator (loaded on first use, shared:
        it answers one question at a time). ``max_new_tokens`` caps this answer's length."""
        from ..rag.pipeline import LocalGenerator, RAGPipeline
        with self._lock:
            if self._rag is None:
                self._rag = LocalGenerator(self.config.generator, self.config.max_new_tokens)
            generator = self._rag
        if max_new_tokens is not None:
            import copy
            generator = copy.copy(generator)  # same model and lock, this answer's own length
            generator.max_new_tokens = int(max_new_tokens)
        return RAGPipeline(self.retriever(mode), generator, k=k, budget=budget)

