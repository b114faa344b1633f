"""BM25 as a sparse representation: lexical vectors for the same indexes as SPLADE's.

A BM25 score is a dot product. With ``tf`` a term's count in a document,
``dl`` the document's length in terms and ``avgdl`` the corpus mean,

    weight(d, t) = idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
    idf(t)       = log(1 + (N - df(t) + 0.5) / (df(t) + 0.5))   (Lucene's)

and the query vector holds each term's count in the query ("tf", as
``bm25s`` and Lucene score repeated query terms) or 1 ("binary"). So
documents become *impact* vectors, indexed by lsr's exact and seismic
indexes like any learned-sparse encoding, and lexical, learned-sparse and
dense result lists can be fused (``lsr.retrieval.fusion``).

The vocabulary is the corpus's own analysed terms (lower-cased words of two
or more characters, optionally without English stop words and stemmed with
Snowball: ``bm25s``'s analyser), fixed when the encoder is fitted: a query
term the corpus never had has no dimension and is dropped, as in any
inverted index. Statistics (df, N, avgdl) are the corpus's; they are saved
with the index (``bm25.json`` + ``bm25_df.npy``) so queries are encoded
exactly as the documents were weighted.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..atomic import atomic_file, write_json
from ..errors import DataError, ModelError
from ..layout import BM25_CONFIG as CONFIG
from ..layout import BM25_DF as DF_FILE
from ..layout import BM25_OWN_DF as OWN_DF_FILE
from ..sparse import SparseVectors, Vocabulary
from .names import is_bm25_name, parse_bm25_name  # noqa: F401 (the grammar lives in .names; re-exported)

TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's and bm25s's default

FORMAT = 1


class Analyzer:
    """Text -> terms: lower-case, split on word characters, drop stop words, stem."""

    def __init__(self, stopwords: str | None = "en", stemmer: str | None = "english"):
        self.stopwords_name, self.stemmer_name = stopwords, stemmer
        self.stopwords = frozenset(_stopwords(stopwords))
        self._stem = _stemmer(stemmer)
        self._cache: dict[str, str] = {}

    def __call__(self, text: str) -> list[str]:
        words = [w for w in TOKEN_PATTERN.findall(text.lower()) if w not in self.stopwords]
        if self._stem is None:
            return words
        new = [w for w in set(words) if w not in self._cache]
        if new:  # PyStemmer stems a list in one call; remember each word's stem
            self._cache.update(zip(new, self._stem(new)))
            if len(self._cache) > 1_000_000:
                self._cache.clear()
        return [self._cache.get(w) or self._stem([w])[0] for w in words]


def _stopwords(name: str | None) -> Iterable[str]:
    if not name:
        return ()
    if name not in ("en", "english"):
        raise ValueError(f"stop words {name!r}: only 'en' (English) or none")
    from bm25s.stopwords import STOPWORDS_EN
    return STOPWORDS_EN


def _stemmer(name: str | None):
    if not name:
        return None
    try:
        import Stemmer
    except ImportError:
        raise ImportError("stemming needs PyStemmer: pip install PyStemmer (or pass stemmer=None)") from None
    try:
        return Stemmer.Stemmer(name).stemWords
    except KeyError:
        raise ValueError(f"unknown stemmer language {name!r} (PyStemmer: {', '.join(Stemmer.algorithms())})") \
            from None


class BM25Encoder:
    """Fitted BM25 statistics; encodes documents as impact vectors and queries as term counts.

    An :class:`lsr.encoders.Encoder` with no model: ``token_length`` counts
    analysed terms (after stop words), ``max_length`` is 0 (no truncation).
    """

    kind = "bm25"

    def __init__(self, terms: Sequence[str], df: np.ndarray, n_docs: int, avgdl: float, k1: float = 0.9,
                 b: float = 0.4, stopwords: str | None = "en", stemmer: str | None = "english",
                 query_weights: str = "tf"):
        if not k1 >= 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        if query_weights not in ("tf", "binary"):
            raise ValueError(f"query_weights {query_weights!r}: choose 'tf' or 'binary'")
        self.vocab = Vocabulary.from_tokens(terms)
        self.df = np.asarray(df, dtype=np.int64)
        if self.df.shape != (self.vocab.size,):
            raise ValueError(f"df has {self.df.shape} entries for {self.vocab.size} terms")
        self.n_docs, self.avgdl = int(n_docs), float(avgdl)
        self.k1, self.b, self.query_weights = float(k1), float(b), query_weights
        self.analyzer = Analyzer(stopwords, stemmer)
        self._id = {t: i for i, t in enumerate(self.vocab.tokens)}
        self.idf = np.log1p((self.n_docs - self.df + 0.5) / (self.df + 0.5)).astype(np.float32)
        self.max_length = 0  # no truncation: recorded in index manifests like a model's
        self.name = "bm25"  # what an index records; build_index sets the full spec (bm25:k1=...)
        # The documents this encoder weighted, when the statistics above are a whole index's (a segment
        # added to a segmented index, lsr.retrieval.writer): their own df, count and total length.
        self.own: dict | None = None

    def own_stats(self) -> tuple[np.ndarray, int, float]:
        """(df, documents, total length) of the documents this encoder weighted."""
        if self.own is None:
            return self.df, self.n_docs, self.n_docs * self.avgdl
        return self.own["df"], int(self.own["docs"]), float(self.own["length"])

    def extended(self, texts: Sequence[str], base: BM25Encoder | None = None) -> BM25Encoder:
        """An encoder for new documents ``texts`` joining an index whose statistics are ``base`` (default:
        this one): vocabulary extended with their new terms (old term numbers unchanged), df, N and
        average length global; it records the new documents' own statistics for later combinations."""
        base = base or self
        terms = list(base.vocab.tokens)
        ids = {t: i for i, t in enumerate(terms)}
        own_df: dict[int, int] = {}
        length = 0
        for text in texts:
            analysed = self.analyzer(text)
            length += len(analysed)
            for t in dict.fromkeys(analysed):
                i = ids.setdefault(t, len(ids))
                if i == len(terms):
                    terms.append(t)
                own_df[i] = own_df.get(i, 0) + 1
        df = np.zeros(len(terms), np.int64)
        df[:len(base.df)] = base.df
        own = np.zeros(len(terms), np.int64)
        own[list(own_df)] = list(own_df.values())
        n = base.n_docs + len(texts)
        total = base.n_docs * base.avgdl + length
        out = BM25Encoder(terms, df + own, n, max(total / max(n, 1), 1e-9), self.k1, self.b,
                          self.analyzer.stopwords_name, self.analyzer.stemmer_name, self.query_weights)
        out.name = self.name
        out.own = {"df": own, "docs": len(texts), "length": float(length)}
        return out

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(cls, texts: Iterable[str], k1: float = 0.9, b: float = 0.4, stopwords: str | None = "en",
            stemmer: str | None = "english", query_weights: str = "tf", progress: bool = False,
            corpus: str = "the corpus") -> BM25Encoder:
        """Corpus statistics from ``texts`` (one pass; terms in first-seen order).

        ``corpus`` names the texts' source (a dataset id or folder) in the
        DataError raised when there is nothing to fit on: no document, or
        no document with an indexable term (every text empty, or only stop
        words and one-character words).
        """
        from tqdm.auto import tqdm
        analyzer = Analyzer(stopwords, stemmer)
        ids: dict[str, int] = {}
        df: list[int] = []
        n, total = 0, 0
        for text in tqdm(texts, desc="bm25 statistics", unit="doc", disable=not progress, mininterval=1.0):
            terms = analyzer(text)
            total += len(terms)
            n += 1
            for t in dict.fromkeys(terms):  # first-seen order: a set's order changes between processes
                i = ids.setdefault(t, len(ids))
                if i == len(df):
                    df.append(0)
                df[i] += 1
        if n == 0:
            raise DataError(f"{corpus}: no documents; BM25 needs at least one document to fit its statistics on")
        if not ids:
            raise DataError(f"{corpus}: none of its {n} documents has an indexable term (BM25 keeps lower-cased "
                            f"words of two or more characters{', without stop words' if stopwords else ''}); "
                            "is the corpus's text field empty?")
        return cls(list(ids), np.array(df, dtype=np.int64), n, max(total / n, 1e-9), k1, b, stopwords, stemmer,
                   query_weights)

    # --------------------------------------------------------------- encode
    def _vectors(self, texts: Sequence[str], document: bool) -> SparseVectors:
        indptr, indices, values = [0], [], []
        for text in texts:
            terms = self.analyzer(text)
            counts = Counter(t for t in terms if t in self._id)
            cols = np.fromiter((self._id[t] for t in counts), dtype=np.int32, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
            order = np.argsort(cols)
            cols, tf = cols[order], tf[order]
            if document:
                norm = self.k1 * (1.0 - self.b + self.b * len(terms) / self.avgdl)
                w = self.idf[cols] * tf / (tf + norm)
            else:
                w = tf if self.query_weights == "tf" else np.ones_like(tf)
            keep = w > 0  # a term in every document has idf > 0 still; k1 = 0 gives tf/tf = 1
            indices.append(cols[keep])
            values.append(w[keep].astype(np.float32))
            indptr.append(indptr[-1] + int(keep.sum()))
        cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
        return SparseVectors(np.array(indptr, dtype=np.int64), cat(indices, np.int32), cat(values, np.float32),
                             self.vocab)

    def encode_documents(self, texts: Sequence[str], progress=None) -> SparseVectors:
        out = self._vectors(texts, document=True)
        if progress is not None:
            progress(len(texts))
        return out

    def token_length(self, text: str) -> int:
        return len(self.analyzer(text))

    def encode_queries(self, texts: Sequence[str]) -> SparseVectors:
        return self._vectors(texts, document=False)

    # ------------------------------------------------------------ save/load
    def config(self) -> dict:
        return {"format": FORMAT, "kind": "bm25", "k1": self.k1, "b": self.b, "n_docs": self.n_docs,
                "avgdl": self.avgdl, "stopwords": self.analyzer.stopwords_name,
                "stemmer": self.analyzer.stemmer_name, "query_weights": self.query_weights,
                "terms": list(self.vocab.tokens)}

    def save(self, folder) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(folder / DF_FILE, "wb") as f:
            np.save(f, self.df)
        config = self.config()
        if self.own is not None:
            with atomic_file(folder / OWN_DF_FILE, "wb") as f:
                np.save(f, np.asarray(self.own["df"], np.int64))
            config["own"] = {"docs": int(self.own["docs"]), "length": float(self.own["length"])}
        write_json(folder / CONFIG, config, indent=None)  # last: its presence means complete
        return folder

    @classmethod
    def load(cls, folder, query_weights: str | None = None) -> BM25Encoder:
        folder = Path(folder)
        path = folder / CONFIG
        if not path.exists():
            raise ModelError(f"{folder}: no BM25 statistics ({CONFIG}); was the index built with --model bm25?")
        try:
            cfg = json.loads(path.read_text())
            df = np.load(folder / DF_FILE, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - a damaged .npy header fails in numpy's literal parser, any way
            raise ModelError(f"{folder}: unreadable BM25 statistics ({type(e).__name__}: {e})") from None
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
            got = cfg.get("format") if isinstance(cfg, dict) else type(cfg).__name__
            raise ModelError(f"{path}: BM25 statistics format {got!r}; this lsr reads {FORMAT}")
        try:
            enc = cls(cfg["terms"], df, cfg["n_docs"], cfg["avgdl"], cfg["k1"], cfg["b"], cfg["stopwords"],
                      cfg["stemmer"], query_weights or cfg["query_weights"])
            if "own" in cfg:
                own_df = np.load(folder / OWN_DF_FILE, allow_pickle=False)
                if own_df.shape != enc.df.shape or (own_df < 0).any() or (own_df > enc.df).any():
                    raise ValueError(f"{OWN_DF_FILE} does not fit the statistics")
                enc.own = {"df": own_df, "docs": int(cfg["own"]["docs"]), "length": float(cfg["own"]["length"])}
            return enc
        except (KeyError, TypeError, ValueError, OSError) as e:
            raise ModelError(f"{path}: damaged BM25 statistics ({type(e).__name__}: {e}); rebuild the index") from None


def combine(encoders: Sequence[BM25Encoder], where: str = "the index") -> tuple[BM25Encoder, list[np.ndarray]]:
    """Global statistics over segments, each weighted by its own encoder: (the query encoder, per segment
    the factor global IDF / the IDF its documents were weighted with, per term of its vocabulary).

    Segments' vocabularies are prefixes of the longest (each added segment extends the one before), so a
    query encoded with the global vocabulary searches every segment; a query term's weight for segment s
    becomes ``tf * idf_global / idf_s``, and its score the one global statistics give (BM25's length
    normalisation keeps the average length each segment was written with, until a merge rewrites it).
    """
    longest = max(encoders, key=lambda e: e.vocab.size)
    terms = list(longest.vocab.tokens)
    df = np.zeros(len(terms), np.int64)
    n, total = 0, 0.0
    for e in encoders:
        size = e.vocab.size
        if list(e.vocab.tokens[-1:]) != terms[size - 1:size] or (e.k1, e.b) != (longest.k1, longest.b):
            raise ModelError(f"{where}: segments' BM25 vocabularies or parameters do not agree (corrupt index)")
        own_df, own_n, own_length = e.own_stats()
        df[:size] += own_df
        n += own_n
        total += own_length
    g = BM25Encoder(terms, df, n, max(total / max(n, 1), 1e-9), longest.k1, longest.b,
                    longest.analyzer.stopwords_name, longest.analyzer.stemmer_name, longest.query_weights)
    g.name = longest.name
    return g, [g.idf[:e.vocab.size] / e.idf for e in encoders]

