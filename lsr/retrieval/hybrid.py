"""Hybrid retrieval: fuse the lists of several retrievers over one index directory, with PRF.

An index directory holds up to three lists of the same documents, in one
numbering: ``sparse`` (the index itself; BM25 when built with ``--model
bm25``), ``dense`` (``<index>/dense/``, ``--dense minilm``) and ``bm25``
(``<index>/lexical/``, a BM25 exact index, ``--bm25``).

:class:`HybridSearcher` searches any subset of them ``depth`` deep, applies
pseudo-relevance feedback (:mod:`.prf`) before, after or around fusion, and
fuses the lists (:mod:`.fusion`). Weights come, in order, from the caller,
from the manifest's "hybrid" entry (written by ``lsr tune-hybrid``), or equal.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import layout
from ..errors import IndexError_, ParameterError, QueryError
from .fusion import METHODS, NORMS, fuse
from .hits import Hit, check_request, hits_for
from .lists import DenseList, SparseList, unmatched_as_missing  # noqa: F401 (re-exported)
from .prf import PRF

LISTS = ("sparse", "dense", "bm25")
SETTINGS = layout.HYBRID_SETTINGS


@dataclass
class HybridConfig:
    """What a hybrid search does; stored in the index's manifest by tuning."""

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
    def from_json(cls, d: dict) -> HybridConfig:
        return cls(**d)


class HybridSearcher:
    """Fused search over the representations stored in one index directory.

    ``search_params`` (query_cut, heap_factor, knn for a seismic index) apply
    to the ``sparse`` list, the index itself; the dense and BM25 lists are
    searched exactly. They are checked against the index type here, and
    refused when the configuration does not fuse the sparse list.

    Scores: a hit's ``score`` is the fused score (a weighted sum of
    normalised scores, or of reciprocal ranks), comparable only within one
    query; ``Hit.list_scores`` holds each fused list's raw score for the
    document (None where that list did not retrieve it).

    ``backend``, ``threads`` and ``device`` say how the query models run (the sparse list's and the dense
    list's; :class:`lsr.retrieval.Searcher`): None for ``backend`` means the one each list records.
    """

    def __init__(self, index_dir, config: HybridConfig | None = None, verify: bool = True,
                 backend: str | None = None, threads: int | None = None, device: str | None = None,
                 **search_params):
        from .searcher import Searcher
        self.index_dir = Path(index_dir)
        self.main = Searcher(self.index_dir, verify=verify, backend=backend, threads=threads, device=device)
        self._inference = {"backend": backend, "threads": threads, "device": device}
        if config is None:
            config = self.stored_config(self.index_dir)
        if config is None:
            require_lists_to_fuse(self.index_dir)
            config = recommended(self.available())
        self.config = config
        self.main.index.check_search_params(search_params)
        if search_params and "sparse" not in self.config.lists:
            raise ParameterError(f"search parameters {', '.join(search_params)} apply to the sparse list, which this "
                                 f"hybrid search does not fuse (lists: {', '.join(self.config.lists)})")
        self.search_params = search_params
        self._lists = {}
        for name in self.config.lists:
            self._lists[name] = self._open(name, verify)

    def derive(self, config: HybridConfig | None = None, **search_params) -> HybridSearcher:
        """This search with another config over lists it has open (fusion, norm, weights, rrf_k, PRF, a subset
        of its lists) and/or other sparse search parameters, sharing its open lists and models: the same
        results as a HybridSearcher opened with them, without reloading anything (a server, per request)."""
        import copy
        config = config or self.config
        closed = [n for n in config.lists if n not in self._lists]
        if closed:
            raise ParameterError(f"lists {closed} are not open in this hybrid search (open: {', '.join(self._lists)})")
        self.main.index.check_search_params(search_params)
        if search_params and "sparse" not in config.lists:
            raise ParameterError(f"search parameters {', '.join(search_params)} apply to the sparse list, which this "
                                 f"hybrid search does not fuse (lists: {', '.join(config.lists)})")
        new = copy.copy(self)
        new.config, new.search_params = config, search_params
        new._lists = {n: self._lists[n] for n in config.lists}
        if "sparse" in new._lists:
            new._lists["sparse"] = self._lists["sparse"].with_params(search_params)
        return new

    # -------------------------------------------------------------- lists
    def available(self) -> tuple:
        """The representations this index directory holds."""
        return available_lists(self.index_dir)

    def _open(self, name: str, verify: bool):
        from .searcher import Searcher
        if name == "sparse":
            return SparseList(self.main, self.search_params)
        snapshot = self.main.snapshot
        if name == "dense":  # a segmented index: its segments' lists as one
            dense = snapshot.dense() if snapshot is not None else None
            return DenseList(self.index_dir, len(self.main.index), index=dense, **self._inference)
        lexical = self.index_dir / layout.LEXICAL_DIR
        if "bm25" not in self.available():
            raise IndexError_(f"{self.index_dir} has no BM25 list (build it with `lsr index ... --bm25`)")
        if snapshot is not None:
            return SparseList(Searcher(self.index_dir, verify=verify, snapshot=snapshot, sub=layout.LEXICAL_DIR))
        s = Searcher(lexical, verify=verify)
        if len(s.index) != len(self.main.index):
            raise IndexError_(f"{lexical}: {len(s.index)} documents, the index has {len(self.main.index)}")
        return SparseList(s)

    @staticmethod
    def stored_config(index_dir) -> HybridConfig | None:
        """The tuned settings: the manifest's "hybrid" entry (one atomic commit), else an old lsr's hybrid.json."""
        from ..index import storage
        if layout.is_segmented(index_dir):  # the commit's settings
            from ..index.commit import newest
            stored, path = (newest(index_dir).get("settings") or {}).get("hybrid"), Path(index_dir) / SETTINGS
        else:
            stored, path = storage.read_manifest(Path(index_dir)).get("hybrid"), Path(index_dir) / SETTINGS
        try:
            stored = json.loads(path.read_text()) if stored is None and path.exists() else stored
            return None if stored is None else HybridConfig.from_json(stored)
        except (ValueError, TypeError, AttributeError) as e:
            raise IndexError_(f"{Path(index_dir)}: unreadable hybrid settings ({e})") from None

    def save_config(self, config: HybridConfig | None = None) -> Path:
        """Store ``config`` in the manifest: one rename commits it (a file beside it would need two)."""
        from ..index import storage  # every field is written, so merging into an older entry replaces it
        if self.main.snapshot is not None:  # a segmented index: a new commit with the settings
            from .writer import IndexWriter
            with IndexWriter(self.index_dir, merge=False) as w:
                w.set_settings(hybrid=(config or self.config).to_json())
            return self.index_dir
        storage.update_manifest(self.index_dir, {"hybrid": (config or self.config).to_json()})
        return self.index_dir / layout.MANIFEST

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
        return self._combine(reps, first, k, config, allowed)[:2]

    def _combine(self, reps: dict, first: dict, k: int, config: HybridConfig | None = None, allowed=None):
        """(doc numbers, scores, the lists that went into the last fusion by name)."""
        c = config or self.config
        names = list(c.lists)
        w = c.weights or tuple(1.0 for _ in names)

        def fused(lists, kk):
            if len(names) == 1:  # nothing to fuse: the list's own (raw) scores, in its own order
                return _top(lists[names[0]], kk)
            return fuse([lists[n] for n in names], w, c.fusion, c.norm, kk, c.rrf_k)

        p = c.prf
        if p is None:
            return (*fused(first, k), first)
        takes = set(names if p.lists is None else p.lists)

        def second_round(feedback_of):
            return {n: self._lists[n].search(self._lists[n].feedback(reps[n], feedback_of(n), p), c.depth, allowed)
                    if n in takes else first[n] for n in names}

        if p.when == "after":
            second = second_round(lambda n: first[n][0])
            return (*fused(second, k), second)
        f1 = fused(first, c.depth)
        second = second_round(lambda n: f1[0])
        f2 = fused(second, c.depth)
        if p.when == "before":
            return f2[0][:, :k], f2[1][:, :k], second
        return (*fuse([f1, f2], (1.0 - p.round_weight, p.round_weight), c.fusion, c.norm, k, c.rrf_k), second)

    def search_numbers(self, texts: Sequence[str], k: int = 10, where: dict | None = None):
        """Fused top-``k`` (doc numbers, scores); ``where`` filters every list while it is searched."""
        return self._search(texts, k, where)[:2]

    def _search(self, texts, k, where):
        check_request(texts, k)
        k = min(k, max(len(self.main.index), 1))  # as the indexes do: no k-wide arrays beyond the documents
        allowed = self.main.allowed(where)
        reps = self.encode(texts)
        return self._combine(reps, self.first_round(reps, allowed=allowed), k, allowed=allowed)

    def batch_search_ids(self, texts: Sequence[str], k: int = 10, where: dict | None = None):
        """(doc_ids, scores) arrays of shape (n_queries, k), as :meth:`lsr.retrieval.Searcher.batch_search_ids`."""
        docs, scores = self.search_numbers(texts, k, where)
        return self.main.index.doc_ids.take(docs), scores

    def batch_search(self, texts: Sequence[str], k: int = 10, where: dict | None = None) -> list[list[Hit]]:
        """Hits for each query, best fused score first, each with its lists' raw scores (``list_scores``)."""
        docs, scores, lists = self._search(texts, k, where)
        hits = hits_for(self.main.index.doc_ids, self.main.docstore, docs, scores)
        for qi, row in enumerate(hits):
            raw = {name: dict(zip(d[qi].tolist(), s[qi].tolist())) for name, (d, s) in lists.items()}
            for hit, n in zip(row, docs[qi][docs[qi] >= 0].tolist()):
                hit.list_scores = {name: raw[name].get(n) for name in lists}
        return hits

    def search(self, text: str, k: int = 10, where: dict | None = None) -> list[Hit]:
        return self.batch_search([text], k, where)[0]


def _top(result, k: int):
    """The first ``k`` columns of a (docs, scores) result, padded with -1 / -inf when it has fewer."""
    docs, scores = np.asarray(result[0]), np.asarray(result[1], dtype=np.float32)
    if docs.shape[1] >= k:
        return docs[:, :k], scores[:, :k]
    pad = k - docs.shape[1]
    return (np.concatenate([docs, np.full((len(docs), pad), -1, docs.dtype)], 1),
            np.concatenate([scores, np.full((len(docs), pad), -np.inf, np.float32)], 1))


def require_lists_to_fuse(index_dir) -> None:
    """Refuse a default hybrid search over an index whose only list is its sparse one: a one-list
    "fusion" would search it with rescaled scores and call that hybrid."""
    if available_lists(index_dir) == ("sparse",):
        raise IndexError_(f"{index_dir} has no dense or BM25 list to fuse with its sparse one (build it with "
                          "`lsr index ... --dense minilm` or `--bm25`)")


def available_lists(index_dir) -> tuple:
    """The representations an index directory holds ("sparse" always)."""
    index_dir = Path(index_dir)
    out = ["sparse"]
    if layout.is_segmented(index_dir):  # every segment holds the same lists (the writer builds them alike)
        from ..index.commit import newest
        index_dir = index_dir / newest(index_dir)["segments"][0]["name"]
    if layout.has_dense(index_dir):
        out.append("dense")
    if layout.has_lexical(index_dir):
        out.append("bm25")
    return tuple(out)


# Chosen by bench/hybrid.py (docs/RESULTS.md, "Hybrid retrieval"): fusion settings and PRF tuned on
# scifact train + nfcorpus dev, then applied unchanged to every collection.
RECOMMENDED = dict(lists=("bm25", "sparse", "dense"), weights=(0.3, 0.2, 0.5), fusion="convex", norm="zscore",
                   prf=PRF(fb_docs=10, fb_terms=20, alpha=1.0, beta=0.05, when="after", lists=("bm25",)))


def recommended(available: Sequence[str] | None = None) -> HybridConfig:
    """What ``lsr search --hybrid`` does on an index no one has tuned (measured in docs/RESULTS.md).

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


def config_from_options(index_dir, hybrid: bool = False, lists: Sequence[str] | None = None,
                        fusion: str | None = None, norm: str | None = None, weights: Sequence[float] | None = None,
                        prf: str | None = None, fb_docs: int | None = None, fb_terms: int | None = None,
                        prf_beta: float | None = None) -> HybridConfig | None:
    """The HybridConfig that search options ask for over ``index_dir``, or None for a plain sparse search.

    Starts from the index's stored settings (``lsr tune-hybrid``) or the
    recommended default. ``hybrid`` keeps that configuration's lists;
    ``lists`` picks others (their stored weights are dropped: they belong to
    other lists); with neither, only the index's own sparse list is searched
    (with PRF or fusion options). ``fusion``, ``norm``, ``weights`` and
    ``prf`` ("after", "before", "both" or "none") override the base, and
    ``fb_docs`` / ``fb_terms`` / ``prf_beta`` its PRF. A setting that cannot
    apply (feedback options without feedback, a bad name, a weight count that
    does not match the lists) raises :class:`lsr.errors.ParameterError`.
    """
    lists = [str(x).strip() for x in lists if str(x).strip()] if lists else None
    feedback = {"fb_docs": fb_docs, "fb_terms": fb_terms, "beta": prf_beta}
    feedback = {key: value for key, value in feedback.items() if value is not None}
    if not (hybrid or lists or fusion or norm or weights or feedback or (prf and prf != "none")):
        return None
    if hybrid and not lists:
        require_lists_to_fuse(index_dir)
    base = HybridSearcher.stored_config(index_dir) or recommended(available_lists(index_dir))
    settings = base.to_json()
    if lists or not hybrid:
        chosen = lists or ["sparse"]
        if chosen != list(base.lists):
            settings["lists"], settings["weights"] = chosen, None
    p = dict(settings["prf"]) if settings.get("prf") else None
    if p and p.get("lists"):  # feedback only for lists that are fused
        p["lists"] = [x for x in p["lists"] if x in settings["lists"]] or None
        if p["lists"] is None and not prf:
            p = None  # the stored PRF was for lists not searched now
    if prf == "none":
        p = None
    elif prf:
        p = {**(p or {}), "when": prf}
    if feedback:
        if p is None:
            names = ", ".join(("prf_beta" if key == "beta" else key) for key in feedback)
            raise ParameterError(f"{names}: pseudo-relevance feedback settings, but this search does no feedback "
                                 "(ask for it with prf='after', 'before' or 'both'; CLI: --prf after)")
        p.update(feedback)
    settings["prf"] = p
    given = [name for name, value in (("fusion", fusion), ("norm", norm), ("weights", weights)) if value]
    if given and len(settings["lists"]) == 1:  # a one-list "fusion" would silently be that list's own search
        have = available_lists(index_dir)
        more = (f"fuse more with hybrid=True or lists=[...] (CLI: --hybrid or --lists "
                f"{','.join(have)})" if len(have) > 1 else
                f"{index_dir} holds only its sparse list: add one with `lsr index ... --dense minilm` or `--bm25`")
        raise ParameterError(f"{', '.join(given)}: fusion settings, but this search fuses one list "
                             f"({settings['lists'][0]}); {more}")
    if fusion:
        settings["fusion"] = fusion
    if norm:
        settings["norm"] = norm
    if weights:
        settings["weights"] = [float(w) for w in weights]
    try:
        return HybridConfig.from_json(settings)
    except (ValueError, TypeError) as e:
        raise ParameterError(str(e)) from None
