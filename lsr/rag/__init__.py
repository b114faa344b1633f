"""Retrieval for RAG applications: :class:`Retriever` (more to come: packing, generation, adapters)."""
from .retriever import Retriever, RetrievedDoc

__all__ = ["Retriever", "RetrievedDoc"]
