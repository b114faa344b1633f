"""Typed build and search parameters, per index type.

Each index type names its parameters in a frozen dataclass; a name that is
not a field is refused, at build time and at search time alike, with the
list of names the index type takes (and the closest one, for a typo). No
front door drops a parameter it cannot apply.
"""
from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, fields

from ..errors import ParameterError


@dataclass(frozen=True)
class NoParams:
    """An index type without parameters (exact search scores every posting)."""


@dataclass(frozen=True)
class SeismicSearchParams:
    """Seismic search; None takes the index's stored default (``lsr tune`` writes them)."""

    query_cut: int | None = None  # lists visited: the query's heaviest terms, >= 1
    heap_factor: float | None = None  # skip a block whose summary scores below this x the k-th best, >= 0
    knn: int | None = None  # k-NN graph neighbours scored per hit (0: no refinement)


@functools.cache
def names(params_type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(params_type))


def check(given, params_type, what: str) -> None:
    """Refuse any key of ``given`` that is not a field of ``params_type``; ``what`` names the caller."""
    if not given:  # the common call: nothing to check (this runs on every search)
        return
    known = names(params_type)
    unknown = [name for name in given if name not in known]
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    takes = f"it takes {', '.join(known)}" if known else "it takes none"
    raise ParameterError(f"unknown {what} parameter {name!r} ({takes}){hint}")
