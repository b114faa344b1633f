"""Metadata filters: a ``where`` expression -> one bool per document.

The expression language is the one vector stores made familiar (Chroma,
MongoDB), so RAG code moves over unchanged::

    {"year": 2020}                                  equality
    {"year": {"$gte": 2018, "$lt": 2021}}           comparisons, ANDed
    {"source": {"$in": ["pubmed", "arxiv"]}}        membership ($nin: not in)
    {"title": {"$contains": "vitamin"}}             substring of a string field
    {"url": {"$exists": True}}                      the field is set
    {"$or": [{"year": 2020}, {"open_access": True}]}
    {"$and": [...]}, {"$not": {...}}

Fields are the document store's metadata columns plus ``doc_id``. Several
keys in one dict are ANDed. A document whose field is missing (null)
matches no condition on that field except ``{"$exists": False}`` and the
negations (``$ne``, ``$nin``, ``$not``), as in MongoDB.

The result is what the index kernels take as ``allowed``: they skip the
excluded documents while they scan, so a filtered top k is the best k of
the allowed documents, never a post-filtered (and shorter) top k.
"""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import QueryError

COMPARE = {"$eq": pc.equal, "$ne": pc.not_equal, "$gt": pc.greater, "$gte": pc.greater_equal,
           "$lt": pc.less, "$lte": pc.less_equal}
OPERATORS = (*COMPARE, "$in", "$nin", "$contains", "$exists")
LOGICAL = ("$and", "$or", "$not")
MAX_DEPTH = 32  # levels of filters nested in $and / $or / $not
MAX_CLAUSES = 1000  # field conditions and logical operators in one filter
MAX_VALUES = 100_000  # values in one $in / $nin list
TOO_DEEP = f"where: filters nested more than {MAX_DEPTH} levels deep ($and/$or/$not inside one another); flatten the filter"


def parse_where(text: str) -> dict:
    """A ``--where`` argument (JSON) as a filter dict, with the JSON error named."""
    try:
        where = json.loads(text)
    except json.JSONDecodeError as e:
        raise QueryError(f"--where {_shown(text)}: not valid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:  # the JSON decoder's own nesting limit (about 1,000 levels)
        raise QueryError(TOO_DEEP) from None
    if not isinstance(where, dict):
        raise QueryError(f"--where {_shown(text)}: expected a JSON object such as '{{\"year\": 2020}}'")
    check_where(where)
    return where


def _shown(text: str, limit: int = 120) -> str:
    """``text`` quoted for a message, shortened in the middle when long (both quotes always kept)."""
    return repr(text) if len(text) <= limit else repr(text[:limit // 2]) + " … " + repr(text[-limit // 4:])


def check_where(where) -> None:
    """Refuse a filter beyond the limits (``MAX_DEPTH`` levels, ``MAX_CLAUSES`` conditions, ``MAX_VALUES``
    values in one list) with a :class:`QueryError` naming the limit. Walks the filter with a stack, not
    recursion, so any depth is measured safely; the filter's syntax is checked later, by :func:`compile_where`."""
    stack, clauses = [(where, 1)], 0
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise QueryError(TOO_DEEP)
        if not isinstance(node, dict):
            continue  # compile_where names what it should be
        for key, cond in node.items():
            clauses += 1
            if key in LOGICAL:
                children = [cond] if key == "$not" else cond if isinstance(cond, (list, tuple)) else []
                clauses += len(children)
                stack.extend((child, depth + 1) for child in children)
            elif isinstance(cond, dict):
                clauses += len(cond)
                for op, value in cond.items():
                    if op in ("$in", "$nin") and isinstance(value, (list, tuple, set)) and len(value) > MAX_VALUES:
                        raise QueryError(f"where: {key!r} {op} lists {len(value):,} values; at most {MAX_VALUES:,} "
                                         "in one list")
            if clauses > MAX_CLAUSES:
                raise QueryError(f"where: more than {MAX_CLAUSES:,} conditions in one filter; at most {MAX_CLAUSES:,}")


def compile_where(where: dict, columns, n: int | None = None) -> np.ndarray:
    """Evaluate ``where`` over ``columns`` (a mapping ``name -> pyarrow array``,
    one row per document; only the named columns are read) into a bool array
    of ``n`` entries: True for the documents it keeps."""
    if not isinstance(where, dict):
        raise QueryError(f"where must be a dict such as {{'year': 2020}}, got {type(where).__name__}")
    check_where(where)
    if n is None:
        n = len(next(iter(columns.values()))) if columns else 0
    mask = _node(where, columns, n)
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _node(where: dict, columns, n: int) -> pa.Array:
    out = pa.array(np.ones(n, dtype=np.bool_))
    for key, cond in where.items():
        if key in LOGICAL:
            part = _logical(key, cond, columns, n)
        elif key.startswith("$"):
            raise QueryError(f"where: unknown operator {key!r} at the top level (use {', '.join(LOGICAL)})")
        else:
            part = _field(key, cond, columns)
        out = pc.and_(out, part)
    return out


def _logical(op: str, cond, columns, n: int) -> pa.Array:
    if op == "$not":
        if not isinstance(cond, dict):
            raise QueryError("where: $not takes one filter dict")
        return pc.invert(_node(cond, columns, n))
    if not isinstance(cond, (list, tuple)) or not cond or not all(isinstance(c, dict) for c in cond):
        raise QueryError(f"where: {op} takes a non-empty list of filter dicts")
    parts = [_node(c, columns, n) for c in cond]
    out = parts[0]
    for p in parts[1:]:
        out = pc.and_(out, p) if op == "$and" else pc.or_(out, p)
    return out


def _field(name: str, cond, columns) -> pa.Array:
    if name not in columns:
        have = ", ".join(sorted(columns)) or "none"
        raise QueryError(f"where: unknown field {name!r} (this index's documents have: {have})")
    col = columns[name]
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not isinstance(cond, dict) or not cond or not all(str(k).startswith("$") for k in cond):
        cond = {"$eq": cond}  # {"year": 2020}; a dict value without operators is compared as a value
    out = None
    for op, value in cond.items():
        part = _condition(name, col, op, value)
        out = part if out is None else pc.and_(out, part)
    return out


def _kind(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_temporal(t):
        return "time"
    return str(t)


def _value_kind(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "text"
    return type(v).__name__


def _check_kind(name: str, col: pa.Array, op: str, value) -> None:
    """Refuse a comparison Arrow would make by silently casting (``"10" > 9`` as text)."""
    ck, vk = _kind(col.type), _value_kind(value)
    if ck == vk or (ck == "time" and vk == "text"):  # dates are written as ISO text
        return
    raise QueryError(f"where: {name!r} holds {ck} values ({col.type}); {op} {value!r} is {vk}")


def _condition(name: str, col: pa.Array, op: str, value) -> pa.Array:
    # Missing values: null results become False, except under negation,
    # where "not equal to x" includes "has no value" (MongoDB's rule).
    negated = op in ("$ne", "$nin")
    try:
        if op == "$exists":
            present = pc.is_valid(col)
            return present if value else pc.invert(present)
        if op in ("$in", "$nin"):
            if not isinstance(value, (list, tuple, set)):
                raise QueryError(f"where: {name!r} {op} takes a list, got {value!r}")
            for v in value:
                _check_kind(name, col, op, v)
            values = pa.array(list(value))
            if len(values) and values.type != col.type and not pa.types.is_null(values.type):
                values = values.cast(col.type)
            hit = pc.fill_null(pc.is_in(col, value_set=values), False)
            return pc.invert(hit) if op == "$nin" else hit
        if op == "$contains":
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                return pc.fill_null(pc.match_substring(col, str(value)), False)
            if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
                flat_hit = pc.equal(pc.list_flatten(col), pa.scalar(value).cast(col.type.value_type))
                parents = pc.list_parent_indices(col).to_numpy()
                found = np.zeros(len(col), dtype=np.bool_)
                found[parents[np.asarray(flat_hit.fill_null(False).to_numpy(zero_copy_only=False))]] = True
                return pa.array(found)
            raise QueryError(f"where: {name!r} holds {col.type} values; $contains needs text or a list")
        if op in COMPARE:
            if isinstance(value, (dict, list)):
                raise QueryError(f"where: {name!r} {op} takes a single value, got {value!r}")
            if value is None:
                raise QueryError(f"where: {name!r} {op} null: use {{'$exists': False}} for a missing value")
            _check_kind(name, col, op, value)
            scalar = pa.scalar(value)
            if scalar.type != col.type:
                scalar = scalar.cast(col.type)
            return pc.fill_null(COMPARE[op](col, scalar), negated)
    except QueryError:
        raise
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError, ValueError) as e:
        raise QueryError(f"where: cannot compare {name!r} ({col.type} values) with {value!r} "
                         f"using {op} ({str(e).splitlines()[0]})") from None
    raise QueryError(f"where: unknown operator {op!r} for {name!r} (use {', '.join(OPERATORS)})")
