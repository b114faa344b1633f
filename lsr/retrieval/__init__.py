"""Text -> hits: the search front doors over index directories, hybrid fusion, PRF, index building.

* :class:`Searcher`: one sparse index and the query encoder it records;
* :class:`HybridSearcher`: fused sparse / dense / BM25 lists of one index directory, with PRF;
* :class:`Retriever`: the RAG-facing API over either (sparse, hybrid or dense mode);
* :func:`build_index`: dataset -> encoder -> index directory (with dense and BM25 lists);
* :class:`IndexWriter`: add, update, delete documents in place; merge segments.

Every front door's ``search(text, k)`` returns a list of :class:`Hit` and
``batch_search(texts, k)`` a list of such lists, one per query.
"""
from .build import build_index
from .fusion import fuse, normalise
from .hits import Hit, hits_for
from .hybrid import HybridConfig, HybridSearcher, recommended
from .prf import PRF, sparse_rocchio, vector_prf
from .retriever import Retriever
from .searcher import Searcher
from .writer import IndexWriter

__all__ = ["IndexWriter", "Searcher", "HybridSearcher", "Retriever", "Hit", "hits_for", "build_index", "fuse", "normalise",
           "HybridConfig", "recommended", "PRF", "sparse_rocchio", "vector_prf"]
