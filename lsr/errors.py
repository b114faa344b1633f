"""Errors lsr raises on bad input.

Every error names the thing that is wrong and where it is (file and line,
index directory, model name), so the CLI can print it as-is and exit non-zero.
"""


class LsrError(Exception):
    """Base class: a problem with the user's input, data, model or index."""


class DataError(LsrError):
    """Malformed or missing data (corpus, queries, qrels, vector files)."""


class ModelError(LsrError):
    """A model name that cannot be resolved or loaded."""


class IndexError_(LsrError):
    """A missing, corrupt, truncated or version-mismatched index."""


class QueryError(LsrError):
    """A query that cannot be searched (empty, wrong vocabulary)."""


# Public alias: the trailing underscore only avoids shadowing the builtin here.
IndexFormatError = IndexError_


class ParameterError(LsrError, TypeError):
    """An unknown or ill-typed build / search parameter (a TypeError too, as Python raises for a bad keyword)."""


__all__ = ["LsrError", "DataError", "ModelError", "IndexError_", "IndexFormatError", "QueryError", "ParameterError"]
