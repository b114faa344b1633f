"""LangChain retriever over an lsr index.

    from lsr.integrations.langchain import LSRRetriever
    retriever = LSRRetriever.from_index("indexes/scifact", mode="hybrid", k=5)
    docs = retriever.invoke("vitamin D and bone fractures")
    docs[0].page_content, docs[0].metadata["score"], docs[0].metadata["doc_id"]

Each hit becomes a ``langchain_core.documents.Document``: ``page_content``
is the title and text, ``id`` the document id, and ``metadata`` the stored
metadata plus ``doc_id``, ``title`` and ``score``. Works wherever LangChain
takes a retriever (chains, ``.batch``, async ``.ainvoke``).
"""
from __future__ import annotations

from typing import Any, Optional

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError:  # pragma: no cover - exercised only without the extra
    from . import missing
    raise missing("langchain-core", "langchain") from None

from . import hit_metadata, hit_text


class LSRRetriever(BaseRetriever):
    """``retriever``: an :class:`lsr.Retriever`; ``k`` hits per query; ``where``: a metadata filter."""

    retriever: Any
    k: int = 4
    where: Optional[dict] = None

    @classmethod
    def from_index(cls, index_dir, mode: str = "sparse", k: int = 4, where: dict | None = None,
                   **load_options) -> "LSRRetriever":
        from ..rag import Retriever
        return cls(retriever=Retriever.load(index_dir, mode=mode, **load_options), k=k, where=where)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs) -> list[Document]:
        k = int(kwargs.get("k", self.k))
        where = kwargs.get("where", self.where)
        hits = self.retriever.search(query, k, where=where)
        return [Document(page_content=hit_text(h), metadata=hit_metadata(h), id=h.doc_id) for h in hits]
