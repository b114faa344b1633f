"""Adapters that put :class:`lsr.Retriever` behind other frameworks' retriever interfaces.

* :mod:`lsr.integrations.langchain`: ``LSRRetriever``, a LangChain ``BaseRetriever``
  (``pip install "lsr[langchain]"``);
* :mod:`lsr.integrations.llamaindex`: ``LSRLlamaRetriever``, a LlamaIndex
  ``BaseRetriever`` (``pip install "lsr[llamaindex]"``).

Each module imports its framework when it is imported, and only then, so
``import lsr`` never needs either.
"""


def hit_metadata(hit) -> dict:
    """A hit's metadata as the frameworks carry it: the stored fields plus doc_id, title and score, and for a
    hybrid hit ``list_scores`` (each fused list's raw score; ``score`` is then the fused one)."""
    meta = dict(hit.metadata or {})
    meta.update(doc_id=hit.doc_id, score=hit.score)
    if getattr(hit, "list_scores", None) is not None:
        meta["list_scores"] = dict(hit.list_scores)
    if hit.title:
        meta["title"] = hit.title
    return meta


def hit_text(hit) -> str:
    """What the frameworks index as the document's content: title, then text."""
    return "\n".join(x for x in ((hit.title or "").strip(), (hit.text or "").strip()) if x)


def missing(package: str, extra: str) -> ImportError:
    return ImportError(f"this adapter needs {package}: pip install \"lsr[{extra}]\" (or pip install {package})")
