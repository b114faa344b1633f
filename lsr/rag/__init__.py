"""Retrieval for RAG applications: :class:`Retriever`, and post-retrieval selection (:func:`dedupe`, :func:`pack`)."""
from .pack import Packed, dedupe, pack
from .retriever import RetrievedDoc, Retriever

__all__ = ["Retriever", "RetrievedDoc", "dedupe", "pack", "Packed"]
