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

from pydantic import Field

from ..errors import ParameterError
from . import hit_metadata, hit_text


def _check_search_kwargs(kwargs: dict) -> None:
    bad = [name for name in kwargs if name not in SEARCH_KWARGS]
    if bad:
        raise ParameterError(f"LSRRetriever search_kwargs {bad[0]!r}: it takes {', '.join(SEARCH_KWARGS)} "
                             "(index search parameters such as query_cut go to from_index)")


SEARCH_KWARGS = ("k", "where")


class LSRRetriever(BaseRetriever):
    """``retriever``: an :class:`lsr.Retriever`; ``k`` hits per query; ``where``: a metadata filter.

    ``search_kwargs`` (LangChain's vector-store convention, e.g. ``{"k": 1}``)
    overrides ``k`` and ``where``; any other key is refused rather than ignored.
    Index search parameters (``query_cut``, ...) are set when the index is
    loaded: ``from_index(index, query_cut=3)``.
    """

    retriever: Any
    k: int = 4
    where: Optional[dict] = None
    search_kwargs: dict = Field(default_factory=dict)

    def model_post_init(self, context: Any) -> None:
        _check_search_kwargs(self.search_kwargs)

    @classmethod
    def from_index(cls, index_dir, mode: str = "sparse", k: int = 4, where: dict | None = None,
                   search_kwargs: dict | None = None, **load_options) -> LSRRetriever:
        from ..retrieval import Retriever
        return cls(retriever=Retriever.load(index_dir, mode=mode, **load_options), k=k, where=where,
                   search_kwargs=dict(search_kwargs or {}))

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs) -> list[Document]:
        _check_search_kwargs(kwargs)
        options = {"k": self.k, "where": self.where, **self.search_kwargs, **kwargs}
        hits = self.retriever.search(query, int(options["k"]), where=options["where"])
        return [Document(page_content=hit_text(h), metadata=hit_metadata(h), id=h.doc_id) for h in hits]
