"""The contract every sparse encoder keeps: what index building, encoding and search call.

Read off the callers, not invented: :func:`lsr.encoders.shards.encode_corpus`
records ``name``, ``kind``, ``max_length`` and ``vocab.fingerprint`` and calls
``encode_documents(texts, progress=...)``; ``lsr.retrieval.Searcher`` checks
``vocab.fingerprint`` against the index's and calls ``encode_queries(texts)``;
``lsr search --explain`` calls ``token_length(text)``; ``build_index`` sets
``name`` to the full model string (``bm25:k1=...``) it records.

Kept by :class:`.splade.SpladeEncoder` (SPLADE, inference-free models and
every composition, the echo decoder included), :class:`.static.StaticQueryEncoder`
(inference-free query side, torch-free) and :class:`.bm25.BM25Encoder`.
:class:`.dense.DenseEncoder` is not one: it returns dense arrays, for the
dense list of a hybrid index.

``runtime_checkable`` makes ``isinstance(x, Encoder)`` check that the members
exist (not their signatures); the tests pair it with real calls.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # lsr.sparse pulls in pyarrow; `import lsr.encoders` stays light
    from ..sparse import SparseVectors, Vocabulary


@runtime_checkable
class Encoder(Protocol):
    """Texts -> :class:`lsr.sparse.SparseVectors` over one fixed vocabulary."""

    name: str
    """The model string the encoder was made from; recorded in ``encode.json`` and index manifests,
    and given back to :func:`lsr.encoders.load_query_encoder` at search time. Settable."""

    kind: str
    """"splade" (any model with weights, compositions included), "static" (query-only token-weight
    table) or "bm25"; recorded in index manifests (a "bm25" index reloads its saved statistics)."""

    vocab: Vocabulary
    """Dimension i of every vector is ``vocab.tokens[i]``; ``vocab.fingerprint`` must equal the
    index's for the encoder to search it."""

    max_length: int
    """Tokens kept per text (longer texts are truncated); 0 for no truncation (BM25)."""

    def encode_queries(self, texts: Sequence[str]) -> SparseVectors:
        """One vector per text, in order, encoded as queries (an inference-free or task-aware model
        encodes queries differently from documents). Empty ``texts`` -> zero rows."""
        ...

    def encode_documents(self, texts: Sequence[str],
                         progress: Callable[[int], object] | None = None) -> SparseVectors:
        """One vector per text, in order, encoded as documents; ``progress(n)`` is called with the
        number of texts done after each batch. A query-only encoder raises ModelError."""
        ...

    def token_length(self, text: str) -> int:
        """The length of ``text`` in the encoder's own units (tokens, or analysed terms for BM25)
        before truncation: compare with ``max_length`` to see what a long text loses."""
        ...


def encode_distinct(texts: Sequence[str], encode: Callable, progress=None):
    """``encode`` run on the distinct texts only, its rows expanded back to every text (``progress`` told of the
    copies too); None when all texts differ, for the caller to encode them as they are.

    Encoders encode each distinct text once: a vector then never depends on the batch its text landed in
    (float32 kernels round differently with the batch's padding and shape, so two copies of one document
    could score 1e-6 apart and swap with a copy that is judged), and duplicates cost nothing.
    """
    import numpy as np
    first: dict[str, int] = {}
    where = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.int64, count=len(texts))
    if len(first) == len(texts):
        return None
    out = encode(list(first))[where]
    if callable(progress):
        progress(len(texts) - len(first))
    return out
