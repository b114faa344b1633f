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


def brief(text, limit: int = 200) -> str:
    """The first line of ``text`` (another library's error, shown inside an lsr message), at most about
    ``limit`` characters: when longer, cut at a word boundary before any quote the cut would leave open,
    and marked with "…". A message is never cut mid-quote or mid-word."""
    lines = str(text).strip().splitlines()
    line = lines[0].strip() if lines else ""
    if len(line) <= limit:
        return line
    cut = line[:limit]
    while True:  # back up to before the last unbalanced quote, until every quote kind is balanced
        open_at = [cut.rindex(q) for q in ("'", '"', "`") if cut.count(q) % 2]
        if not open_at:
            break
        cut = cut[:max(open_at)]
    cut = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return cut.rstrip(" ,;:([{") + " …"


__all__ = ["LsrError", "DataError", "ModelError", "IndexError_", "IndexFormatError", "QueryError", "ParameterError"]
