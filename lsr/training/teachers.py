"""Heterogeneous ensemble teachers for distillation (Geng, Ru, Yang 2024).

Teachers of different kinds score each query's candidate list: a dense
bi-encoder (MiniLM), a sparse model (splade-tiny) and BM25 (``bm25s``).
Their scores live on unrelated scales (cosine in [-1, 1], SPLADE dot
products in the tens, BM25 sums of idf), so each teacher's scores are
normalised *per query* before they are combined:

* ``minmax``: (s - min) / (max - min) over the query's candidates, in [0, 1]
  (a query whose candidates all tie gets 0.5 everywhere: no preference);
* ``zscore``: (s - mean) / std over the query's candidates (std 0: all 0).

The distillation target is the (weighted) mean of the normalised scores,
optionally multiplied by ``scale`` (the student's softmax / margins see
score differences, so a [0, 1] target would be too flat; OpenSearch's
recipe uses 30).

Scores are computed once and cached as Parquet (:class:`TeacherCache`):
one file per teacher and chunk of queries, written atomically, so an
interrupted run resumes where it stopped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..atomic import atomic_path
from ..errors import DataError
from ..retrieval.fusion import NORMS, normalise

NORMALISATIONS = NORMS  # per query: lsr.retrieval.fusion.normalise, the one normalisation lsr has


def ensemble(scores: dict[str, np.ndarray], weights: dict[str, float] | None = None, method: str = "minmax",
             scale: float = 1.0) -> np.ndarray:
    """Combine teachers' (n_queries, n_candidates) scores: normalise each per query, weighted mean, times scale."""
    if not scores:
        raise ValueError("no teacher scores to combine")
    names = list(scores)
    shape = np.shape(scores[names[0]])
    if any(np.shape(scores[n]) != shape for n in names):
        raise ValueError("teachers scored different candidate lists: " +
                         ", ".join(f"{n} {np.shape(scores[n])}" for n in names))
    weights = weights or {n: 1.0 for n in names}
    missing = set(names) - set(weights)
    if missing:
        raise ValueError(f"no weight for teacher(s) {', '.join(sorted(missing))}")
    total = sum(weights[n] for n in names)
    if total <= 0:
        raise ValueError("teacher weights must sum to a positive number")
    for n in names:
        s = np.asarray(scores[n], dtype=np.float64)
        if s.ndim != 2:
            raise ValueError(f"teacher {n!r}: scores must be (n_queries, n_candidates), got shape {s.shape}")
        if np.isinf(s).any():  # NaN marks a padded slot; an infinity is a broken teacher
            raise ValueError(f"teacher {n!r}: scores contain infinities")
    out = sum(weights[n] * normalise(scores[n], method) for n in names) / total
    return (out * scale).astype(np.float32)


# ------------------------------------------------------------------ teachers
def _padded(candidates) -> np.ndarray:
    """A (n_queries, longest list) float32 score matrix of NaN: NaN marks a slot past a shorter list."""
    return np.full((len(candidates), max(map(len, candidates), default=0)), np.nan, dtype=np.float32)


def _unique_docs(candidates) -> tuple[list[str], dict[str, int]]:
    """The distinct candidate ids of a chunk (each encoded once) and each one's row."""
    row: dict[str, int] = {}
    for cands in candidates:
        for c in cands:
            row.setdefault(c, len(row))
    return list(row), row


class _DocMemo:
    """Document representations kept across chunks, so each distinct document
    is encoded once per teacher: candidate lists overlap heavily (nfcorpus's
    2,000 examples x 5 candidates hold about 3,000 distinct documents)."""

    def __init__(self, limit: int = 200_000):
        self.limit = limit
        self.rows: dict = {}

    def get(self, ids: list[str], doc_text, encode) -> list:
        """Representations of ``ids`` in order; ``encode(texts)`` returns one row per text."""
        missing = [i for i in dict.fromkeys(ids) if i not in self.rows]
        fresh = dict(zip(missing, encode([doc_text(i) for i in missing]))) if missing else {}
        for i, r in fresh.items():
            if len(self.rows) >= self.limit:
                break
            self.rows[i] = r
        return [fresh[i] if i in fresh else self.rows[i] for i in ids]


class Teacher:
    """Scores (query, candidate documents) pairs; higher is more relevant."""

    name = "teacher"

    def score(self, queries: Sequence[str], candidates: Sequence[Sequence[str]],
              doc_text: Callable[[str], str]) -> np.ndarray:
        raise NotImplementedError


class DenseTeacher(Teacher):
    """A sentence-transformers bi-encoder (default the bundled MiniLM); cosine similarity."""

    def __init__(self, model: str = "minilm", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        from ..encoders.registry import resolve_model
        self.name = f"dense:{model}"
        self.model = SentenceTransformer(str(resolve_model(model, expect="dense", role="dense teacher").path),
                                         device="cpu")
        self.batch_size = batch_size
        self._memo = _DocMemo()

    def _encode(self, texts):
        return self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True)

    def score(self, queries, candidates, doc_text):
        q = self._encode(queries)
        unique, row = _unique_docs(candidates)
        d = np.stack(self._memo.get(unique, doc_text, self._encode)) if unique else np.zeros((0, q.shape[1]))
        out = _padded(candidates)
        for i, cands in enumerate(candidates):
            if cands:
                out[i, :len(cands)] = d[[row[c] for c in cands]] @ q[i]
        return out


class SparseTeacher(Teacher):
    """A sparse encoder lsr can load (default splade-tiny); dot product of its vectors."""

    def __init__(self, model: str = "splade-tiny", max_length: int = 256):
        from ..encoders import load_encoder
        self.name = f"sparse:{model}"
        self.encoder = load_encoder(model, max_length=max_length)
        self._memo = _DocMemo()

    def _encode(self, texts):
        m = self.encoder.encode_documents(list(texts)).to_scipy()
        return [m[i] for i in range(m.shape[0])]

    def score(self, queries, candidates, doc_text):
        import scipy.sparse as sp
        q = self.encoder.encode_queries(list(queries)).to_scipy()
        unique, row = _unique_docs(candidates)
        d = sp.vstack(self._memo.get(unique, doc_text, self._encode), format="csr") if unique else None
        out = _padded(candidates)
        for i, cands in enumerate(candidates):
            if cands:
                out[i, :len(cands)] = (d[[row[c] for c in cands]] @ q[i].T).toarray().ravel()
        return out


class BM25Teacher(Teacher):
    """BM25 over the whole corpus with ``bm25s`` (its scores use the corpus's own statistics)."""

    def __init__(self, doc_ids: Sequence[str], texts: Sequence[str], k1: float = 0.9, b: float = 0.4,
                 stemmer: str | None = "english"):
        try:
            import bm25s
        except ImportError as e:
            raise ImportError("the BM25 teacher needs bm25s: pip install 'lsr[train]'") from e
        self.name = "bm25"
        self._bm25s = bm25s
        self.stemmer = None
        if stemmer:
            import Stemmer
            self.stemmer = Stemmer.Stemmer(stemmer)
        self.position = {d: i for i, d in enumerate(doc_ids)}
        self.model = bm25s.BM25(k1=k1, b=b)
        self.model.index(bm25s.tokenize(list(texts), stopwords="en", stemmer=self.stemmer, show_progress=False),
                         show_progress=False)

    def score(self, queries, candidates, doc_text=None):
        out = _padded(candidates)
        tokens = self._bm25s.tokenize(list(queries), stopwords="en", stemmer=self.stemmer, return_ids=False,
                                      show_progress=False)
        for i, cands in enumerate(candidates):
            if not cands:
                continue
            unknown = [c for c in cands if c not in self.position]
            if unknown:
                raise DataError(f"BM25 teacher: candidate {unknown[0]!r} is not in the indexed corpus")
            rows = [self.position[c] for c in cands]
            out[i, :len(cands)] = self.model.get_scores(tokens[i])[rows] if tokens[i] else 0.0
        return out


# --------------------------------------------------------------------- cache
class TeacherCache:
    """Teacher scores of (query_id, doc_id) pairs as Parquet, one folder per teacher.

    ``compute`` scores the queries not yet cached in chunks, each chunk written
    to its own file atomically (temp file + rename): an interrupted run loses at
    most the chunk in progress, and a rerun skips what is done.
    """

    def __init__(self, folder):
        self.folder = Path(folder)

    def _dir(self, teacher_name: str) -> Path:
        return self.folder / teacher_name.replace("/", "_").replace(":", "-")

    def done(self, teacher_name: str) -> set[str]:
        import pyarrow.parquet as pq
        d = self._dir(teacher_name)
        ids: set[str] = set()
        for f in sorted(d.glob("part-*.parquet")):
            ids.update(pq.read_table(f, columns=["query_id"]).column("query_id").to_pylist())
        return ids

    def compute(self, teacher: Teacher, query_ids: Sequence[str], queries: Sequence[str],
                candidates: Sequence[Sequence[str]], doc_text: Callable[[str], str], chunk: int = 64,
                progress: bool = False) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        from tqdm.auto import tqdm
        if not (len(query_ids) == len(queries) == len(candidates)):
            raise ValueError("query_ids, queries and candidates must have the same length")
        d = self._dir(teacher.name)
        d.mkdir(parents=True, exist_ok=True)
        done = self.done(teacher.name)
        todo = [i for i, q in enumerate(query_ids) if q not in done]
        n_parts = len(list(d.glob("part-*.parquet")))
        bar = tqdm(total=len(query_ids), initial=len(query_ids) - len(todo), desc=f"teacher {teacher.name}",
                   unit="query", disable=not progress)
        for start in range(0, len(todo), chunk):
            rows = todo[start:start + chunk]
            scores = teacher.score([queries[i] for i in rows], [candidates[i] for i in rows], doc_text)
            qid, did, val = [], [], []
            for r, i in enumerate(rows):
                for j, c in enumerate(candidates[i]):
                    qid.append(query_ids[i])
                    did.append(c)
                    val.append(float(scores[r, j]))
            if not np.isfinite(val).all():
                raise DataError(f"teacher {teacher.name} produced a non-finite score (query {query_ids[rows[0]]}...)")
            table = pa.table({"query_id": pa.array(qid, pa.string()), "doc_id": pa.array(did, pa.string()),
                              "score": pa.array(val, pa.float32())})
            path = d / f"part-{n_parts:05d}.parquet"
            with atomic_path(path) as tmp:
                pq.write_table(table, tmp)
            n_parts += 1
            bar.update(len(rows))
        bar.close()

    def load(self, teacher_name: str, query_ids: Sequence[str], candidates: Sequence[Sequence[str]]) -> np.ndarray:
        """(n_queries, max candidates) scores in the given order; NaN where a list is shorter."""
        import pyarrow.parquet as pq
        d = self._dir(teacher_name)
        parts = sorted(d.glob("part-*.parquet"))
        if not parts:
            raise DataError(f"no cached scores for teacher {teacher_name!r} in {d}")
        lookup: dict[tuple[str, str], float] = {}
        for f in parts:
            t = pq.read_table(f)
            lookup.update(zip(zip(t.column("query_id").to_pylist(), t.column("doc_id").to_pylist()),
                              t.column("score").to_pylist()))
        out = _padded(candidates)
        for i, (q, cands) in enumerate(zip(query_ids, candidates)):
            for j, c in enumerate(cands):
                try:
                    out[i, j] = lookup[(q, c)]
                except KeyError:
                    raise DataError(f"teacher {teacher_name!r} has no cached score for query {q!r}, "
                                    f"document {c!r} (run compute first)") from None
        return out
