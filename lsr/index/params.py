"""Typed build and search parameters, per index type.

Each index type names its parameters in a frozen dataclass; a name that is
not a field is refused, at build time and at search time alike, with the
list of names the index type takes (and the closest one, for a typo). No
front door drops a parameter it cannot apply. A field may carry a value
rule (its metadata's ``"rule"``): ``check`` and ``check_values`` refuse a
value of the wrong type or out of range, naming the parameter, the value
and the range, with :class:`ParameterValueError`.
"""
from __future__ import annotations

import difflib
import functools
import math
from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import ParameterError


class ParameterValueError(ParameterError, ValueError):
    """A parameter value of the wrong type or out of range.

    A ParameterError (an LsrError: the CLI prints it as an ``error:`` line)
    and a ValueError, which is what these checks raised before they were
    LsrErrors.
    """


@dataclass(frozen=True)
class Rule:
    """A value rule: ``kind`` "integer" or "number" (finite), and ``ok`` the range, described by ``bound``."""

    kind: str
    bound: str
    ok: object

    def problem(self, value) -> str | None:
        """Why ``value`` breaks the rule ("must be ..., got ..."), or None when it keeps it."""
        if isinstance(value, (bool, np.bool_)):
            return f"must be {self.expected}, got {value!r}"
        if self.kind == "integer":
            if not isinstance(value, (int, np.integer)):
                return f"must be {self.expected}, got {value!r}"
            return None if self.ok(int(value)) else f"must be {self.bound}, got {int(value)}"
        if not isinstance(value, (int, float, np.integer, np.floating)):
            return f"must be {self.expected}, got {value!r}"
        x = float(value)
        return None if math.isfinite(x) and self.ok(x) else f"must be {self.bound}, got {x}"

    @property
    def expected(self) -> str:
        """What a value must be: "an integer >= 1", "a finite number >= 0"."""
        return f"an integer {self.bound}" if self.kind == "integer" else self.bound


def _field(rule: Rule, doc: str = ""):
    return field(default=None, metadata={"rule": rule, "doc": doc})


@dataclass(frozen=True)
class NoParams:
    """An index type without parameters (exact search scores every posting)."""


@dataclass(frozen=True)
class SeismicSearchParams:
    """Seismic search; None takes the index's stored default (``lsr tune`` writes them).

    Ranges (``check`` / ``check_values``): query_cut an integer >= 1 (lists
    visited: the query's heaviest terms); heap_factor a finite number >= 0
    (skip a block whose summary scores below this x the k-th best; 0 skips
    none, above 1 skips more, as tests and ``lsr tune`` use); knn an integer
    >= 0 (k-NN graph neighbours scored per hit, 0: no refinement; more than
    the graph stores is clamped to it).
    """

    query_cut: int | None = _field(Rule("integer", ">= 1", lambda x: x >= 1))
    heap_factor: float | None = _field(Rule("number", "a finite number >= 0", lambda x: x >= 0))
    knn: int | None = _field(Rule("integer", ">= 0", lambda x: x >= 0))


@functools.cache
def names(params_type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(params_type))


@functools.cache
def rules(params_type) -> dict:
    """{name: Rule} for the fields of ``params_type`` that carry one."""
    return {f.name: f.metadata["rule"] for f in fields(params_type) if "rule" in f.metadata}


def check(given, params_type, what: str) -> None:
    """Refuse any key of ``given`` that is not a field of ``params_type``, and any value (not None) that
    breaks its field's rule; ``what`` names the caller."""
    if not given:  # the common call: nothing to check (this runs on every search)
        return
    known = names(params_type)
    unknown = [name for name in given if name not in known]
    if not unknown:
        check_values(given, params_type)
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    takes = f"it takes {', '.join(known)}" if known else "it takes none"
    raise ParameterError(f"unknown {what} parameter {name!r} ({takes}){hint}")


def check_values(values, params_type, where: str | None = None) -> None:
    """Refuse a value (not None) of ``values`` ({name: value}) that breaks its field's rule in
    ``params_type``; names without a rule (or unknown to it) are not looked at.

    ``where`` names the source, e.g. an index's ``.../manifest.json`` whose
    stored search defaults are being read: the message then starts with it
    and says how to fix them. Raises :class:`ParameterValueError`.
    """
    table = rules(params_type)
    for name, value in values.items():
        rule = table.get(name)
        if rule is None or value is None:
            continue
        problem = rule.problem(value)
        if problem is not None:
            if where is None:
                raise ParameterValueError(f"{name} {problem}")
            raise ParameterValueError(f"{where}: stored search default {name} {problem} (the manifest is damaged "
                                      "or was edited); rebuild the index")
