"""Retrieval for RAG applications: :class:`Retriever`, and post-retrieval selection (:func:`dedupe`, :func:`pack`)."""
from ..retrieval import Retriever  # re-exported: the object a RAG pipeline retrieves with
from .pack import Packed, dedupe, pack

__all__ = ["Retriever", "dedupe", "pack", "Packed"]
