"""The sparse-vector type (CSR + vocabulary) and its Parquet files."""
from .csr import SparseVectors, as_sparse_vectors
from .parquet import VectorWriter, iter_vectors, read_metadata, read_vectors, write_vectors
from .vocab import Vocabulary

__all__ = ["SparseVectors", "Vocabulary", "as_sparse_vectors", "VectorWriter", "iter_vectors",
           "read_metadata", "read_vectors", "write_vectors"]
