"""Retrieval beyond one sparse list: BM25 vectors, dense search, fusion, PRF (text -> hits)."""
from .bm25 import BM25Encoder
from .fusion import fuse, normalise
from .hybrid import HybridConfig, HybridSearcher, recommended
from .prf import PRF, sparse_rocchio, vector_prf

__all__ = ["BM25Encoder", "fuse", "normalise", "HybridConfig", "HybridSearcher", "recommended", "PRF",
           "sparse_rocchio", "vector_prf"]
