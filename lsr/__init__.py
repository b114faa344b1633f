"""lsr: learned sparse retrieval."""
__version__ = "0.1.0"


def __getattr__(name):
    # `from lsr import Retriever` without importing the retrieval stack on `import lsr`
    if name in ("Retriever", "RetrievedDoc"):
        from . import rag
        return getattr(rag, name)
    raise AttributeError(f"module 'lsr' has no attribute {name!r}")
