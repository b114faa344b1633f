"""Hybrid retrieval: fuse the lists of several retrievers over one index directory, with PRF.

An index directory can hold up to three representations of the same
documents, in the same document numbering:

* ``sparse``: the index itself (a learned-sparse model, or BM25 when built
  with ``--model bm25``);
* ``dense``: ``<index>/dense/`` (``lsr index ... --dense minilm``);
* ``bm25``: ``<index>/lexical/``, a BM25 exact index (``lsr index ... --bm25``).

:class:`HybridSearcher` searches any subset of them ``depth`` deep, applies
pseudo-relevance feedback (:mod:`.prf`) before, after or around fusion, and
fuses the lists (:mod:`.fusion`). Weights come, in order, from the caller,
from ``<index>/hybrid.json`` (written by ``lsr tune-hybrid``), or equal.
"""
from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

from ..errors import IndexError_, QueryError
from .fusion import METHODS, NORMS, fuse
from .prf import PRF, sparse_rocchio, vector_prf

LISTS = ("sparse", "dense", "bm25")
SETTINGS = "hybrid.json"


@dataclass
class HybridConfig:
    """What a hybrid search does; saved as ``<index>/hybrid.json`` by tuning."""

    lists: tuple = ("sparse", "dense")
    weights: tuple | None = None  # one per list; None: equal
    fusion: str = "convex"
    norm: str = "minmax"
    depth: int = 1000  # hits per list before fusion
    rrf_k: int = 60
    prf: PRF | None = None
    tuned_on: dict = field(default_factory=dict)  # provenance: dataset, metric, value

    def __post_init__(self):
        self.lists = tuple(self.lists)
        bad = [x for x in self.lists if x not in LISTS]
        if bad or not self.lists or len(set(self.lists)) != len(self.lists):
            raise ValueError(f"lists {list(self.lists)}: choose distinct names from {', '.join(LISTS)}")
        if self.weights is not None:
            self.weights = tuple(float(w) for w in self.weights)
            if len(self.weights) != len(self.lists) or any(w < 0 for w in self.weights):
                raise ValueError(f"weights {list(self.weights)}: one non-negative weight per list "
                                 f"({', '.join(self.lists)})")
        if self.fusion not in METHODS:
            raise ValueError(f"fusion {self.fusion!r}; choose from {', '.join(METHODS)}")
        if self.norm not in NORMS:
            raise ValueError(f"normalisation {self.norm!r}; choose from {', '.join(NORMS)}")
        if isinstance(self.prf, dict):
            self.prf = PRF(**self.prf)
        if self.prf is not None and self.prf.lists is not None and not set(self.prf.lists) <= set(self.lists):
            raise ValueError(f"PRF lists {list(self.prf.lists)} are not all among the fused lists {list(self.lists)}")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))  # tuples -> lists: what a JSON file gives back

    @classmethod
    def from_json(cls, d: dict) -> "HybridConfig":
        return cls(**d)


class _SparseList:
    """A sparse index (learned or BM25) as one list of a hybrid search."""

    def __init__(self, searcher):
        self.searcher = searcher
        self._docs = None
        self._lock = threading.Lock()

    def encode(self, texts):
        return self.searcher.encode_queries(texts)

    def search(self, q, depth, allowed=None):
        return self.searcher.index.search_numbers(q, depth, allowed=allowed)

    def feedback(self, q, fb, prf: PRF):
        with self._lock:
            if self._docs is None:  # document vectors for Rocchio, loaded on first use
                self._docs = self.searcher.index.forward_vectors()
        return sparse_rocchio(q, fb, self._docs, prf.fb_docs, prf.fb_terms, prf.alpha, prf.beta)


class _DenseList:
    def __init__(self, index_dir: Path, n_docs: int, model: str | None = None):
        from .dense import FOLDER, DenseIndex
        self.index = DenseIndex.load(index_dir / FOLDER, n_docs=n_docs)
        self.model_name = model or self.index.model
        self._encoder = None
        self._lock = threading.Lock()

    @property
    def encoder(self):
        with self._lock:
            if self._encoder is None:
                from .dense import DenseEncoder
                self._encoder = DenseEncoder(self.model_name)
                if self._encoder.dim != self.index.dim:
                    raise IndexError_(f"dense model {self.model_name!r} gives {self._encoder.dim}-d embeddings, "
                                      f"the index holds {self.index.dim}-d")
        return self._encoder

    def encode(self, texts):
        return self.encoder.encode(texts)

    def search(self, q, depth, allowed=None):
        return self.index.search(q, depth, allowed=allowed)

    def feedback(self, q, fb, prf: PRF):
        return vector_prf(q, fb, self.index.embeddings, prf.fb_docs, prf.alpha, prf.beta, prf.dense_method)


class HybridSearcher:
    """Fused search over the representations stored in one index directory."""

    def __init__(self, index_dir, config: HybridConfig | None = None, verify: bool = True):
        from ..pipeline import Searcher
        self.index_dir = Path(index_dir)
        self.main = Searcher(self.index_dir, verify=verify)
        self.config = config or self.stored_config(self.index_dir) or recommended(self.available())
        self._lists = {}
        for name in self.config.lists:
            self._lists[name] = self._open(name, verify)

    # -------------------------------------------------------------- lists
    def available(self) -> tuple:
        """The representations this index directory holds."""
        return available_lists(self.index_dir)

    def _open(self, name: str, verify: bool):
        from ..pipeline import Searcher
        if name == "sparse":
            return _SparseList(self.main)
        if name == "dense":
            return _DenseList(self.index_dir, len(self.main.index))
        lexical = self.index_dir / "lexical"
        if not (lexical / "manifest.json").exists():
            raise IndexError_(f"{self.index_dir} has no BM25 list (build it with `lsr index ... --bm25`)")
        s = Searcher(lexical, verify=verify)
        if len(s.index) != len(self.main.index):
            raise IndexError_(f"{lexical}: {len(s.index)} documents, the index has {len(self.main.index)}")
        return _SparseList(s)

    @staticmethod
    def stored_config(index_dir) -> HybridConfig | None:
        path = Path(index_dir) / SETTINGS
        if not path.exists():
            return None
        try:
            return HybridConfig.from_json(json.loads(path.read_text()))
        except (ValueError, TypeError) as e:
            raise IndexError_(f"{path}: unreadable hybrid settings ({e})") from None

    def save_config(self, config: HybridConfig | None = None) -> Path:
        import os
        path = self.index_dir / SETTINGS
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps((config or self.config).to_json(), indent=2))
        os.replace(tmp, path)
        return path

    # ------------------------------------------------------------- search
    def encode(self, texts: Sequence[str]) -> dict:
        """Query representations per list (the expensive part; reusable across configs)."""
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise QueryError("query is empty" if len(texts) == 1 else f"query {i} is empty")
        return {name: lst.encode(list(texts)) for name, lst in self._lists.items()}

    def first_round(self, reps: dict, depth: int | None = None, allowed=None) -> dict:
        depth = depth or self.config.depth
        return {name: self._lists[name].search(reps[name], depth, allowed) for name in reps}

    def combine(self, reps: dict, first: dict, k: int, config: HybridConfig | None = None, allowed=None):
        """PRF and fusion of first-round lists into top-``k`` (doc numbers, scores);
        ``allowed`` (the metadata filter's mask) applies to the PRF round's searches too."""
        c = config or self.config
        names = list(c.lists)
        w = c.weights or tuple(1.0 for _ in names)

        def fused(lists, kk):
            return fuse([lists[n] for n in names], w, c.fusion, c.norm, kk, c.rrf_k)

        p = c.prf
        if p is None:
            return fused(first, k)
        takes = set(names if p.lists is None else p.lists)

        def second_round(feedback_of):
            return {n: self._lists[n].search(self._lists[n].feedback(reps[n], feedback_of(n), p), c.depth, allowed)
                    if n in takes else first[n] for n in names}

        if p.when == "after":
            return fused(second_round(lambda n: first[n][0]), k)
        f1 = fused(first, c.depth)
        f2 = fused(second_round(lambda n: f1[0]), c.depth)
        if p.when == "before":
            return f2[0][:, :k], f2[1][:, :k]
        return fuse([f1, f2], (1.0 - p.round_weight, p.round_weight), c.fusion, c.norm, k, c.rrf_k)

    def search_numbers(self, texts: Sequence[str], k: int = 10, where: dict | None = None):
        """Fused top-``k`` (doc numbers, scores); ``where`` filters every list while it is searched."""
        allowed = self.main.allowed(where)
        reps = self.encode(texts)
        return self.combine(reps, self.first_round(reps, allowed=allowed), k, allowed=allowed)

    def batch_search(self, texts: Sequence[str], k: int = 10, where: dict | None = None, **_ignored):
        """(doc_ids, scores) of shape (n_queries, k), like :meth:`lsr.pipeline.Searcher.batch_search`."""
        docs, scores = self.search_numbers(texts, k, where)
        return self.main.index.doc_ids.take(docs), scores

    def search(self, text: str, k: int = 10, where: dict | None = None):
        from ..pipeline import hits_for
        docs, scores = self.search_numbers([text], k, where)
        return hits_for(self.main.index.doc_ids, self.main.docstore, docs, scores)[0]


def available_lists(index_dir) -> tuple:
    """The representations an index directory holds ("sparse" always)."""
    index_dir = Path(index_dir)
    out = ["sparse"]
    if (index_dir / "dense" / "dense.json").exists():
        out.append("dense")
    if (index_dir / "lexical" / "manifest.json").exists():
        out.append("bm25")
    return tuple(out)


# Chosen by bench/hybrid.py (docs/RESULTS.md, "Hybrid retrieval"): fusion settings and PRF tuned on
# scifact train + nfcorpus dev, then applied unchanged to every collection.
RECOMMENDED = dict(lists=("bm25", "sparse", "dense"), weights=(0.3, 0.2, 0.5), fusion="convex", norm="zscore",
                   prf=PRF(fb_docs=10, fb_terms=20, alpha=1.0, beta=0.05, when="after", lists=("bm25",)))


def recommended(available: Sequence[str] | None = None) -> HybridConfig:
    """What ``lsr search --dense`` does on an index no one has tuned (measured in docs/RESULTS.md).

    With ``available``, lists the index lacks are left out (the remaining
    weights keep their ratios; a convex fusion's ranking depends on nothing else).
    """
    c = HybridConfig(**RECOMMENDED)
    if available is None or set(c.lists) <= set(available):
        return c
    keep = [i for i, n in enumerate(c.lists) if n in available] or [c.lists.index("sparse")]
    lists = tuple(c.lists[i] for i in keep)
    prf = c.prf
    if prf is not None and prf.lists is not None:  # feedback only for lists that are still fused
        left = tuple(n for n in prf.lists if n in lists)
        prf = replace(prf, lists=left) if left else None
    return HybridConfig(lists=lists, weights=tuple(c.weights[i] for i in keep) if c.weights else None,
                        fusion=c.fusion, norm=c.norm, depth=c.depth, rrf_k=c.rrf_k, prf=prf)
