"""lsr: learned sparse retrieval."""
__version__ = "0.1.0"
__all__ = ["Retriever", "Hit", "IndexWriter", "__version__"]


def __getattr__(name):
    # `from lsr import Retriever` without importing the retrieval stack on `import lsr`
    if name in ("Retriever", "Hit", "IndexWriter"):
        from . import retrieval
        return getattr(retrieval, name)
    raise AttributeError(f"module 'lsr' has no attribute {name!r}")
