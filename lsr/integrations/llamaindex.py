"""LlamaIndex retriever over an lsr index.

    from lsr.integrations.llamaindex import LSRLlamaRetriever
    retriever = LSRLlamaRetriever.from_index("indexes/scifact", mode="hybrid", k=5)
    nodes = retriever.retrieve("vitamin D and bone fractures")
    nodes[0].score, nodes[0].node.node_id, nodes[0].node.metadata["title"]

Each hit becomes a ``NodeWithScore`` around a ``TextNode`` whose ``id_`` is
the document id, ``text`` the title and text, and ``metadata`` the stored
metadata plus ``doc_id``, ``title`` and ``score``; it plugs into query
engines like any LlamaIndex retriever.
"""
from __future__ import annotations

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError:  # pragma: no cover - exercised only without the extra
    from . import missing
    raise missing("llama-index-core", "llamaindex") from None

from . import hit_metadata, hit_text


class LSRLlamaRetriever(BaseRetriever):
    """``retriever``: an :class:`lsr.Retriever`; ``k`` hits per query; ``where``: a metadata filter."""

    def __init__(self, retriever, k: int = 4, where: dict | None = None, **kwargs):
        self.retriever, self.k, self.where = retriever, int(k), where
        super().__init__(**kwargs)

    @classmethod
    def from_index(cls, index_dir, mode: str = "sparse", k: int = 4, where: dict | None = None,
                   **load_options) -> LSRLlamaRetriever:
        from ..retrieval import Retriever
        return cls(Retriever.load(index_dir, mode=mode, **load_options), k=k, where=where)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.retriever.search(query_bundle.query_str, self.k, where=self.where)
        # doc_id and score are bookkeeping: kept out of the text LlamaIndex shows an LLM or embeds.
        nodes = []
        for h in hits:
            node = TextNode(text=hit_text(h), id_=h.doc_id, metadata=hit_metadata(h),
                            excluded_llm_metadata_keys=["doc_id", "score"],
                            excluded_embed_metadata_keys=["doc_id", "score"])
            nodes.append(NodeWithScore(node=node, score=h.score))
        return nodes
